import t from 'tap';
import { checkRegex, MAX_PATTERN_LENGTH, MAX_UNBOUNDED } from '../../src/characters/safe-regex.js';

const NESTED = 'a repeated group contains a repetition or an alternation (nested quantifiers backtrack exponentially)';
const BACKREF = 'back-references are not allowed';
const tooMany = (n: number) =>
  `${n} unbounded repetitions (*, +, {n,} or {n,m} with m > 10) can take time growing faster than the square of the message length; use at most ${MAX_UNBOUNDED - 1}, or ${MAX_UNBOUNDED} in a pattern anchored with ^`;

t.test('limits', async (t) => {
  t.equal(MAX_UNBOUNDED, 2);
  t.equal(MAX_PATTERN_LENGTH, 500);
});

t.test('ordinary patterns are accepted', async (t) => {
  const ok = [
    '^(hi|hello)\\b',
    '.+',
    '.*',
    '\\d{1,3}',
    '^[a-z]+@[a-z]+',
    '^(再见|告辞|后会有期|保重)',
    '^(hello|hi|hey|good (evening|morning|afternoon)|greetings)',
    '^(status|report)|status report|sitrep',
    'foo(?=bar)',
    'foo(?!bar)',
    '(?<=a)b',
    '(?<!a)b',
    '(?<year>\\d{4})-(?<month>\\d{2})',
    '[()|*]+',
    '[(]x[)]',
    '[+*?{}]+',
    '[\\]]+',
    '[^)]+',
    '^\\(a+\\)+',
    '(ab){2,5}',
    '(?:ab)+',
    '(?:[a-z]\\d)+',
    '(a)(b)+',
    '(a+)?',
    '(a|b)?',
    '(a+){2}',
    '(a{2})+',
    '(ab?){1,10}',
    '(foo|bar){0,3}',
    '([a-z]+)?x',
    '(a|b){1,10}',
    'x{1,100}',
    '\\u{1F600}+',
    '^\\p{L}+\\s\\p{N}+',
    '^.*a.*b',
    '^a{2,}b{3,}',
    'x?',
    'a'.repeat(MAX_PATTERN_LENGTH),
    '',
  ];
  for (const p of ok) {
    t.equal(checkRegex(p, 'iu'), undefined, `accepts /${p.length > 40 ? p.slice(0, 10) + '…' : p}/`);
  }
});

t.test('nested quantifiers are rejected', async (t) => {
  const bad = [
    // A bounded but variable count inside an unbounded repetition: /(a{1,2})+b/
    // splits a run of a's in Fibonacci-many ways (77 ms on 28 a's, 25 s on 40).
    '(a{1,2})+',
    '(a{1,5})+b',
    '(a?a)*',
    // Conservative: an optional part inside an unbounded repetition is refused even
    // where the parts cannot overlap (write a[a+]* for this one).
    '(a[+]?)+',
    '(a+)+$',
    '(a|aa)*',
    '(?:x+)*',
    '(\\w+\\s?)+',
    '(a*)*',
    '(a+)+?',
    '(a+){2,}',
    '(a+){1,101}',
    '(a|b){1,200}',
    '((a+))+',
    '(x(a+)y)+',
    '(?:a|b)+',
    '(?<n>a+)+',
    '^(([a-z])+.)+[A-Z]([a-z])+$',
    '(.*a)+',
  ];
  for (const p of bad) t.equal(checkRegex(p, 'iu'), NESTED, `rejects /${p}/`);
  // A small variable count around a variable repetition: the splits grow as a power of the length.
  for (const p of ['(a+){1,10}', '(a{1,5}){2,8}', '(\\w+){1,3}$', '(?:a*b?){0,4}']) {
    t.equal(checkRegex(p, 'iu'), 'a group repeated a variable number of times contains a repetition of variable count (nested quantifiers backtrack polynomially or worse)', `rejects /${p}/`);
  }
});

t.test('back-references are rejected', async (t) => {
  for (const p of ['(a)\\1', '(a)(b)\\2', '(?<n>a)\\k<n>', '(?<n>a)(?<m>b)\\k<m>']) t.equal(checkRegex(p, 'iu'), BACKREF, `rejects /${p}/`);
  t.equal(checkRegex('(a)\\9', ''), BACKREF, 'any \\1-\\9 is refused (without u, \\9 is valid syntax)');
  t.equal(checkRegex('\\\\1', 'u'), undefined, 'an escaped backslash followed by 1 is not a back-reference');
  t.equal(checkRegex('[\\1]', ''), undefined, 'inside a class (no u flag) \\1 is an octal escape, not a back-reference');
  t.equal(checkRegex('\\k', ''), undefined, '\\k without <name> is not a back-reference');
});

t.test('unbounded quantifiers: one unanchored, two anchored with ^', async (t) => {
  t.equal(checkRegex('a+b', 'iu'), undefined, 'one, unanchored');
  t.equal(checkRegex('.*a.*b', 'iu'), tooMany(2), 'two, unanchored: cubic with the start positions');
  t.equal(checkRegex('^.*a.*b', 'iu'), undefined, 'two, anchored');
  t.equal(checkRegex('^a*b*c*', 'iu'), tooMany(3), 'three, anchored');
  t.equal(checkRegex('^a|.*b.*c', 'iu'), tooMany(2), 'a top-level alternative is not anchored');
  t.equal(checkRegex('^(?:a|b.*c).*d', 'iu'), undefined, 'alternation inside a group keeps the anchor');
  t.equal(checkRegex('^a{2,}b{3,}c{1,}', 'iu'), tooMany(3), '{n,} counts as unbounded');
  t.equal(checkRegex('^a{1,11}b{1,11}c{1,11}', 'iu'), tooMany(3), '{n,m} with m > 10 counts as unbounded');
  t.equal(checkRegex('a{1,10}b{1,10}c{1,10}d{1,10}', 'iu'), undefined, '{n,m} with m <= 10 does not');
  t.equal(checkRegex('a+?b*?', 'iu'), tooMany(2), 'lazy quantifiers count too');
  t.equal(checkRegex('[*+]a*', 'iu'), undefined, 'quantifier characters inside a class do not count');
  t.equal(checkRegex('\\*\\+a*', 'iu'), undefined, 'escaped quantifier characters do not count');
});

t.test('patterns over 500 characters are rejected before compiling', async (t) => {
  t.equal(checkRegex('a'.repeat(501), 'iu'), 'pattern is longer than 500 characters');
  t.equal(checkRegex('('.repeat(600), 'iu'), 'pattern is longer than 500 characters', 'length is checked first');
});

t.test('invalid syntax returns the engine\'s message', async (t) => {
  const cases: [string, string][] = [
    ['(', 'Invalid regular expression: /(/iu: Unterminated group'],
    ['[a-', 'Invalid regular expression: /[a-/iu: Unterminated character class'],
    ['(?<n>x)(?<n>y)', 'Invalid regular expression: /(?<n>x)(?<n>y)/iu: Duplicate capture group name'],
    ['a**', 'Invalid regular expression: /a**/iu: Nothing to repeat'],
    ['\\p{Nope}', 'Invalid regular expression: /\\p{Nope}/iu: Invalid property name'],
  ];
  for (const [p, message] of cases) {
    let expected: string | undefined;
    try {
      new RegExp(p, 'iu');
    } catch (err) {
      expected = (err as Error).message;
    }
    t.equal(checkRegex(p, 'iu'), expected, `/${p}/ gives the engine's message`);
    t.equal(checkRegex(p, 'iu'), message);
  }
  t.equal(checkRegex('x', 'zz'), "Invalid flags supplied to RegExp constructor 'zz'", 'bad flags too');
});

t.test('bounded repetition of a group with an unbounded quantifier', async (t) => {
  // The module doc says "a quantified group that contains an unbounded
  // quantifier or an alternation" is refused, but only *unbounded* outer
  // quantifiers are checked: `(a+){1,100}` and `(\w+\s?){2,100}` are
  // accepted, and on a few dozen characters of input they backtrack
  // exponentially (e.g. /(\w+\s?){2,100}$/ on 'a'.repeat(24) + '!').
  for (const p of ['^(a+){1,100}$', '(\\w+\\s?){2,100}$', '^(a|aa){1,100}$', '(.*,){1,50}x']) {
    t.equal(checkRegex(p, 'iu'), NESTED, `rejects /${p}/`);
  }
});
