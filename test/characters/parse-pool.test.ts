import t from 'tap';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ParsePool } from '../../src/characters/parse-pool.js';
import { parseCharacterScript } from '../../src/characters/script.js';

const BUNDLED = fileURLToPath(new URL('../../characters/', import.meta.url));

t.test('a script parsed in a worker equals one parsed inline', async (t) => {
  const pool = new ParsePool({ threads: 1 });
  t.teardown(() => pool.close());
  const file = `${BUNDLED}gufeng-jianke.yaml`;
  const text = readFileSync(file, 'utf8');
  const inline = parseCharacterScript(text, file).character!;
  const { character, issues } = await pool.parseScript(file, text);
  t.same(issues, []);
  t.ok(character);
  const strip = (c: typeof inline) => ({ ...c, triggers: c.triggers.map((tr) => ({ ...tr, respond: tr.respond?.source, regex: tr.regex && String(tr.regex) })) });
  t.same(strip(character!), strip(inline));
  const ctx = { UserInput: ' 古风剑客，请赐教 ', CharacterName: '古风剑客', UserName: 'User', State: 'calm', PreviousState: 'calm', Turn: '1' };
  t.equal(character!.triggers[0]!.respond!.render(ctx), inline.triggers[0]!.respond!.render(ctx), 'templates work after the crossing');
});

t.test('problems come back with file:line:column', async (t) => {
  const pool = new ParsePool({ threads: 1 });
  t.teardown(() => pool.close());
  const { character, issues } = await pool.parseScript('bad.yaml', 'name: x\ntriggers:\n  - on_mention: true\n    respond: "{{.Nope}}"\n');
  t.equal(character, undefined);
  t.match(issues[0], { file: 'bad.yaml', line: 4 });
});

t.test('hostile files cost a worker, not the server', async (t) => {
  // The heap limit leaves room for the TypeScript loader the tests run workers with.
  const pool = new ParsePool({ threads: 1, taskTimeoutMs: 3000, maxHeapMb: 96 });
  t.teardown(() => pool.close());
  // A billion-laughs alias bomb: refused by the alias cap.
  const bomb = ['a: &a ["x","x","x","x","x","x","x","x","x","x"]', ...Array.from({ length: 8 }, (_, i) => `${String.fromCharCode(98 + i)}: &${String.fromCharCode(98 + i)} [*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)},*${String.fromCharCode(97 + i)}]`)].join('\n');
  const r1 = await pool.parseScript('bomb.yaml', bomb);
  t.equal(r1.character, undefined);
  t.ok(r1.issues.length > 0, `alias bomb: ${r1.issues[0]?.message}`);
  // Deep nesting.
  const deep = await pool.parseScript('deep.yaml', 'name: x\nv: ' + '['.repeat(100_000) + ']'.repeat(100_000));
  t.equal(deep.character, undefined, `deep nesting: ${deep.issues[0]?.message}`);
  // The event loop stays free meanwhile: a timer fires while a big file parses.
  const big = 'name: big\ndescription: |\n' + '  lorem ipsum dolor sit amet\n'.repeat(40_000);
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const r2 = await pool.parseScript('big.yaml', big);
  clearInterval(timer);
  t.ok(r2.character || r2.issues.length > 0, 'a result');
  t.ok(ticks > 0, `the event loop ran ${ticks} timer ticks during the parse`);
  // Still serving after all that.
  const ok = await pool.parseScript('ok.yaml', 'name: fine\ntriggers:\n  - on_mention: true\n    respond: hi\n');
  t.equal(ok.character?.name, 'fine');
});

t.test('a parse over the deadline is stopped and reported', async (t) => {
  const pool = new ParsePool({ threads: 1, taskTimeoutMs: 1 });
  t.teardown(() => pool.close());
  const big = 'name: big\nexamples:\n' + '  - "a line of the character speaking"\n'.repeat(50_000);
  const r = await pool.parseScript('slow.yaml', big);
  t.equal(r.character, undefined);
  t.match(r.issues[0]?.message, /parsing took longer than 1 ms and was stopped/);
});

t.test('the deadline counts the parse, not the wait for a worker', async (t) => {
  const text = 'name: queued\nexamples:\n' + '  - "a line of the character speaking"\n'.repeat(4_000);
  // How long one parse takes here, once the worker is up.
  const probe = new ParsePool({ threads: 1, taskTimeoutMs: 60_000 });
  await probe.parseScript('warm.yaml', text);
  let one = 0;
  for (let i = 0; i < 3; i++) {
    const at = performance.now();
    t.ok((await probe.parseScript('probe.yaml', text)).character);
    one = Math.max(one, performance.now() - at);
  }
  await probe.close();
  // A deadline well above one parse, and a queue that lasts three deadlines,
  // behind a worker that is still starting.
  const timeoutMs = Math.max(300, Math.ceil(5 * one));
  const n = Math.ceil((3 * timeoutMs) / one);
  const pool = new ParsePool({ threads: 1, taskTimeoutMs: timeoutMs });
  t.teardown(() => pool.close());
  const at = performance.now();
  const outcomes = await Promise.all(Array.from({ length: n }, (_, i) => pool.parseScript(`f${i}.yaml`, text)));
  const waited = performance.now() - at;
  t.ok(waited > timeoutMs, `the last of ${n} parses (${one.toFixed(0)} ms each) came ${waited.toFixed(0)} ms after the first was queued, past the ${timeoutMs} ms deadline`);
  t.same(outcomes.map((o) => o.issues), outcomes.map(() => []), 'every queued parse loaded');
  t.equal(outcomes.filter((o) => o.character?.name === 'queued').length, n);
});
