import t from 'tap';
import { lex } from '../../src/persona/lexer.js';
import { MAX_LIST_DEPTH, MAX_STATEMENTS } from '../../src/persona/limits.js';
import { parse } from '../../src/persona/parser.js';
import type { Token, ValueNode } from '../../src/persona/types.js';

const show = (v: ValueNode): string => {
  switch (v.kind) {
    case 'number': return String(v.value);
    case 'string': return JSON.stringify(v.value);
    case 'identifier': return v.value;
    case 'list': return `[${v.items.map(show).join(', ')}]`;
    case 'invalid': return '<invalid>';
  }
};
const parsed = (text: string) => parse(lex(text).tokens);
/** Statements as "key: value" strings. */
const stmts = (text: string): string[] => parsed(text).statements.map((s) => `${s.key}: ${show(s.value)}`);
/** Parser errors as "line:column: message". */
const errs = (text: string): string[] => parsed(text).errors.map((e) => `${e.line}:${e.column}: ${e.message}`);

t.test('the seed persona, with positions', async (t) => {
  const r = parsed('trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"');
  t.same(r.errors, []);
  t.same(r.statements, [
    { key: 'trust', line: 1, column: 1, value: { kind: 'number', value: 0.7, line: 1, column: 8 } },
    { key: 'react_to_conflict', line: 1, column: 13, value: { kind: 'string', value: 'withdraw', line: 1, column: 32 } },
    { key: 'core_value', line: 1, column: 44, value: { kind: 'string', value: 'autonomy', line: 1, column: 56 } },
  ]);
});

t.test('";" and line breaks separate alike; empty statements are fine', async (t) => {
  const expected = ['trust: 0.7', 'react_to_conflict: withdraw', 'core_value: autonomy'];
  t.same(stmts('trust: 0.7\nreact_to_conflict: withdraw\ncore_value: autonomy'), expected);
  t.same(stmts(';;\n trust: 0.7;;\n\n\n;react_to_conflict: withdraw ;\n core_value: autonomy;\n;'), expected);
  t.same(stmts('trust: 0.7 # why\n# just a comment\r\nreact_to_conflict: withdraw\rcore_value: autonomy\n'), expected);
  t.same(stmts(''), []);
  t.same(stmts(' ;\n;\t\n'), []);
});

t.test('lists: nested, over several lines, trailing comma, comments inside', async (t) => {
  t.same(stmts('x: [a, "b", 0.5]'), ['x: [a, "b", 0.5]']);
  t.same(stmts('x: []; y: [ ]; z: [1,]'), ['x: []', 'y: []', 'z: [1]']);
  t.same(stmts('x: [[1, [2]], []]'), ['x: [[1, [2]], []]']);
  t.same(stmts('likes: [\n  tea,   # hot\n  "rain on the roof",\n\n  chess,\n]\ntrust: 1'), ['likes: [tea, "rain on the roof", chess]', 'trust: 1']);
  t.same(stmts('x: [\n1\n,\n2\n]'), ['x: [1, 2]'], 'line breaks around commas');
  const deep = `x: ${'['.repeat(MAX_LIST_DEPTH)}1${']'.repeat(MAX_LIST_DEPTH)}`;
  t.same(errs(deep), [], `${MAX_LIST_DEPTH} levels are allowed`);
});

t.test('each syntax error: position, what was expected, what was found', async (t) => {
  const cases: [string, string][] = [
    ['trust: 0.7\nreact_to_conflict: ;', '2:20: expected a value (number, string, identifier or list) after ":", found ";"'],
    ['trust:\n0.7', '1:7: expected a value (number, string, identifier or list) after ":", found a line break; the value goes on the same line as its key'],
    ['trust:\n\nwarmth: 0.7', '1:7: expected a value (number, string, identifier or list) after ":", found a line break'],
    ['x:\n[1,\n2]\ny: 3', '1:3: expected a value (number, string, identifier or list) after ":", found a line break; the value goes on the same line as its key'],
    ['trust:', '1:7: expected a value (number, string, identifier or list) after ":", found the end of the text'],
    ['trust: ]', '1:8: expected a value (number, string, identifier or list) after ":", found "]"'],
    ['trust 0.7', '1:7: expected ":" after the key "trust", found number 0.7'],
    ['trust', '1:6: expected ":" after the key "trust", found the end of the text'],
    ['core value: x', '1:6: expected ":" after the key "core", found identifier "value"; keys cannot contain spaces (use "_")'],
    ['"trust": 0.7', '1:1: expected a key at the start of a statement, found string "trust"; keys are written without quotes'],
    [': 0.7', '1:1: expected a key at the start of a statement, found ":"'],
    ['0.7', '1:1: expected a key at the start of a statement, found number 0.7'],
    ['[a]', '1:1: expected a key at the start of a statement, found "["'],
    ['trust: 0.7 0.8', '1:12: expected ";" or a line break after the value of "trust", found number 0.8'],
    ['likes: tea, cake', '1:11: expected ";" or a line break after the value of "likes", found ","; several values are written as a list: [a, b]'],
    ['speech_style: short and dry', '1:21: expected ";" or a line break after the value of "speech_style", found identifier "and"; text with spaces is written in quotes: "…"'],
    ['trust: 0.7: 1', '1:11: expected ";" or a line break after the value of "trust", found ":"'],
    ['trust: 0.5 warmth: 0.3', '1:12: expected ";" or a line break before the next key "warmth"'],
    ['x: [1 2]', '1:7: expected "," or "]" after a list item, found number 2'],
    ['x: [1,, 2]', '1:7: expected a list item (number, string, identifier or list) or "]", found ","'],
    ['x: [,]', '1:5: expected a list item (number, string, identifier or list) or "]", found ","'],
    ['x: [1; y: 2', '1:6: expected "," or "]" after a list item, found ";"'],
    ['x: [1, 2', '1:9: unterminated list: expected "]" to close the "[" at 1:4, found the end of the text'],
    ['x: [1,\n  2,\n', '3:1: unterminated list: expected "]" to close the "[" at 1:4, found the end of the text'],
    ['x: [a, [b, c]', '1:14: unterminated list: expected "]" to close the "[" at 1:4, found the end of the text'],
    ['likes: [tea, cake\ntrust: 0.5', '2:1: unterminated list: expected "]" to close the "[" at 1:8, found the next statement "trust:"'],
    [`x: ${'['.repeat(MAX_LIST_DEPTH + 1)}1${']'.repeat(MAX_LIST_DEPTH + 1)}`, `1:${4 + MAX_LIST_DEPTH}: lists nested too deep: expected at most ${MAX_LIST_DEPTH} levels of [ ]`],
  ];
  for (const [text, message] of cases) t.same(errs(text), [message], JSON.stringify(text));
});

t.test('a statement with a key but no readable value is kept, with an invalid value', async (t) => {
  t.same(stmts('trust 0.7'), ['trust: <invalid>']);
  t.same(stmts('trust: ;'), ['trust: <invalid>']);
  t.same(stmts('x: [1 2]'), ['x: <invalid>']);
  t.same(stmts('"trust": 0.7'), [], 'no key, no statement');
});

t.test('errors already reported by the lexer are not reported again', async (t) => {
  for (const text of ['trust: @', 'trust = 0.7', 'trust: 0.7x', 'x: [1, @, 2]', 'x: [1 @ 2]', 'x: "abc', '@: 1', 'trust: 0.7 @', 'x: “a”']) {
    t.same(errs(text), [], text);
    t.ok(lex(text).errors.length > 0, `${text}: the lexer reports it`);
  }
  t.same(stmts('trust: @; b: [1, @, 2]'), ['trust: <invalid>', 'b: [1, <invalid>, 2]']);
});

t.test('recovery: every broken statement is reported, the others are read', async (t) => {
  const text = [
    'trust: 0.7',
    'react_to_conflict: ;',
    'core_value: [a b]',
    'warmth 0.5',
    'likes: [tea, [x y], cake]; humor: 0.2',
    'mood: calm calm; formality: 0.9',
    'taboo: [politics,',
    'patience: 0.4',
  ].join('\n');
  t.same(errs(text), [
    '2:20: expected a value (number, string, identifier or list) after ":", found ";"',
    '3:16: expected "," or "]" after a list item, found identifier "b"',
    '4:8: expected ":" after the key "warmth", found number 0.5',
    '5:17: expected "," or "]" after a list item, found identifier "y"',
    '6:12: expected ";" or a line break after the value of "mood", found identifier "calm"; text with spaces is written in quotes: "…"',
    '8:1: unterminated list: expected "]" to close the "[" at 7:8, found the next statement "patience:"',
  ]);
  t.same(stmts(text), [
    'trust: 0.7', 'react_to_conflict: <invalid>', 'core_value: <invalid>', 'warmth: <invalid>', 'likes: <invalid>', 'humor: 0.2',
    'mood: calm', 'formality: 0.9', 'taboo: <invalid>', 'patience: 0.4',
  ]);
});

t.test('recovery inside nested lists skips to the end of the statement', async (t) => {
  t.same(stmts('x: [[a b], [c]]; y: 1'), ['x: <invalid>', 'y: 1']);
  t.same(stmts('x: [[a b],\n [c]]\ny: 1'), ['x: <invalid>', 'y: 1'], 'line breaks inside the broken list are skipped');
  t.same(stmts(`x: ${'['.repeat(20)}1${']'.repeat(20)}; y: 1`), ['x: <invalid>', 'y: 1'], 'after a too-deep list');
});

t.test('statements beyond MAX_STATEMENTS are not read', async (t) => {
  const ok = 'a: 1;'.repeat(MAX_STATEMENTS);
  t.equal(parsed(ok).statements.length, MAX_STATEMENTS);
  t.same(errs(ok), []);
  const over = `${ok}\nb: 2; c: 3`;
  t.equal(parsed(over).statements.length, MAX_STATEMENTS);
  t.same(errs(over), [`2:1: too many statements: expected at most ${MAX_STATEMENTS}; the rest is not read`]);
});

t.test('tokens without an eof, or no tokens, are read to their end', async (t) => {
  const tokens = lex('a: 1; b: [2').tokens.slice(0, -1);
  t.same(parse(tokens).statements.map((s) => s.key), ['a', 'b']);
  t.same(parse(tokens).errors.map((e) => `${e.line}:${e.column}: ${e.message}`), ['1:12: unterminated list: expected "]" to close the "[" at 1:10, found the end of the text']);
  t.same(parse([]), { statements: [], errors: [] });
  t.same(parse(undefined as unknown as Token[]), { statements: [], errors: [] });
});
