import t from 'tap';
import { RegexGuard } from '../../src/text/regex-guard.js';

/** Backtracks about 2^30 times on 29 a's and a "!" (each group can take an "a" two ways). */
const EVIL = { source: '(?:a|a){10}(?:a|a){10}(?:a|a){10}$', flags: '' };
const TEXT = `FOO ${'a'.repeat(29)}!`;

t.test('patterns give the answers RegExp gives, flags included', async (t) => {
  const guard = new RegexGuard();
  t.teardown(() => guard.close());
  const cases = [
    { source: 'foo', flags: 'i' },
    { source: 'foo', flags: '' },
    { source: '^.$', flags: 'u' },
    { source: '^.$', flags: '' },
    { source: '\\bstatus\\b', flags: 'iu' },
  ];
  for (const text of ['FOO', '😀', 'a status report', '']) {
    t.same(guard.test(cases, text), cases.map((c) => new RegExp(c.source, c.flags).test(text)), JSON.stringify(text));
  }
  t.same(guard.test([], 'x'), []);
});

t.test('a pattern that runs past the deadline counts as not matching and is disabled; the others still answer', async (t) => {
  const disabled: string[] = [];
  const guard = new RegexGuard({ timeoutMs: 100, onTimeout: (r, ms) => disabled.push(`${r.source} ${ms}`) });
  t.teardown(() => guard.close());
  const patterns = [{ source: 'foo', flags: 'i' }, EVIL, { source: 'a+!', flags: '' }, { source: 'bar', flags: '' }];
  t.same(guard.test(patterns, TEXT), [true, false, true, false], 'before, the pattern itself, after');
  t.same(disabled, [`${EVIL.source} 100`], 'reported once');
  t.ok(guard.isDisabled(EVIL));
  t.same(guard.test(patterns, TEXT), [true, false, true, false], 'the same answers next time');
  t.same(disabled.length, 1, 'without running it again');
  t.same(guard.test([{ source: 'a{29}!', flags: '' }], TEXT), [true], 'the replaced helper serves later jobs');
});
