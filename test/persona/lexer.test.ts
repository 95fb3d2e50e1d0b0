import t from 'tap';
import { lex } from '../../src/persona/lexer.js';
import { MAX_PERSONA_LENGTH, MAX_STRING_LENGTH } from '../../src/persona/limits.js';
import type { Token } from '../../src/persona/types.js';

/** Tokens as compact "kind value @line:column" strings (eof included). */
const toks = (text: string): string[] =>
  lex(text).tokens.map((tk: Token) => `${tk.kind}${tk.kind === 'eof' || tk.kind === 'newline' ? '' : ` ${JSON.stringify(tk.value)}`} @${tk.line}:${tk.column}`);
const errs = (text: string): string[] => lex(text).errors.map((e) => `${e.line}:${e.column}: ${e.message}`);
const values = (text: string) => lex(text).tokens.filter((tk) => tk.kind !== 'eof').map((tk) => [tk.kind, tk.value]);

t.test('the seed persona', async (t) => {
  const text = 'trust: 0.7; react_to_conflict: "withdraw"; core_value: "autonomy"';
  t.same(errs(text), []);
  t.same(toks(text), [
    'identifier "trust" @1:1', 'colon ":" @1:6', 'number 0.7 @1:8', 'semicolon ";" @1:11',
    'identifier "react_to_conflict" @1:13', 'colon ":" @1:30', 'string "withdraw" @1:32', 'semicolon ";" @1:42',
    'identifier "core_value" @1:44', 'colon ":" @1:54', 'string "autonomy" @1:56', 'eof @1:66',
  ]);
  const tokens = lex(text).tokens;
  t.equal(tokens[6]!.text, '"withdraw"', 'text is the token as written');
  t.equal(tokens[6]!.offset, 31, 'offset is the UTF-16 index');
});

t.test('numbers', async (t) => {
  for (const [text, value] of [
    ['0', 0], ['1', 1], ['0.5', 0.5], ['-0.25', -0.25], ['+2', 2], ['.5', 0.5], ['-.5', -0.5],
    ['1e3', 1000], ['1.5E-2', 0.015], ['2e+1', 20], ['007', 7],
  ] as const) {
    t.same(values(text), [['number', value]], text);
    t.same(errs(text), [], `${text}: no errors`);
  }
  t.same(values('[1,-2]'), [['lbracket', '['], ['number', 1], ['comma', ','], ['number', -2], ['rbracket', ']']], 'punctuation ends a number');
  t.same(values('0.5#c'), [['number', 0.5]], 'so does a comment');
});

t.test('malformed numbers are one error and one invalid token each', async (t) => {
  for (const bad of ['0.7x', '1.2.3', '1e', '1.', '0x10', '5-3', '1e+', '2abc']) {
    t.same(errs(`k: ${bad}`), [`1:4: invalid number "${bad}"; expected a number such as 0.5, -2 or 1e-3`], bad);
    t.same(values(`${bad}`), [['invalid', bad]], `${bad}: one invalid token`);
  }
  t.same(errs('k: 1e999'), ['1:4: number 1e999 is out of range; expected a finite number such as 0.5']);
  t.same(errs('k: -1e400'), ['1:4: number -1e400 is out of range; expected a finite number such as 0.5']);
});

t.test('strings and escapes', async (t) => {
  t.same(values(String.raw`"a\"b" 'c\'d' "\\" "x\ny\tz" '"' "'"`), [
    ['string', 'a"b'], ['string', "c'd"], ['string', '\\'], ['string', 'x\ny\tz'], ['string', '"'], ['string', "'"],
  ]);
  t.same(values(String.raw`"\u00e9\u4E2D"`), [['string', 'é中']], '\\uXXXX, either case');
  t.same(values(String.raw`"\uD83D\uDE00"`), [['string', '😀']], 'a surrogate pair written as two escapes');
  t.same(values('"# not a comment; [not, a, list]"'), [['string', '# not a comment; [not, a, list]']]);
  t.same(values('""'), [['string', '']], 'empty string');
  t.same(values('"tab\there"'), [['string', 'tab\there']], 'a literal tab is allowed');
  t.same(values(`"${'x'.repeat(MAX_STRING_LENGTH)}"`), [['string', 'x'.repeat(MAX_STRING_LENGTH)]], 'a string of the maximum length');
});

t.test('string errors: position, message, one invalid token', async (t) => {
  t.same(errs(String.raw`k: "a\qb"`), [String.raw`1:6: unknown escape "\q"; expected \" \' \\ \n \t or \uXXXX`]);
  t.same(errs(String.raw`k: "\u12"`), [String.raw`1:5: expected 4 hex digits after "\u" (\u00e9)`]);
  t.same(errs(String.raw`k: "\uD83D"`), [String.raw`1:5: "\uD83D" is half of a surrogate pair; expected both halves (\uD83D\uDE00) or the character itself`]);
  t.same(errs(String.raw`k: "\uDE00x"`), [String.raw`1:5: "\uDE00" is half of a surrogate pair; expected both halves (\uD83D\uDE00) or the character itself`]);
  t.same(errs('k: "abc'), ['1:4: unterminated string: expected a closing " before the end of the text']);
  t.same(errs("k: 'abc\nnext: 1"), ["1:4: unterminated string: expected a closing ' before the end of the line"]);
  t.same(errs('k: "abc\\'), ['1:4: unterminated string: expected a closing " before the end of the text'], 'a backslash at the end');
  t.same(errs('k: "a\u0001b"'), ['1:6: control character U+0001 in a string; expected it written as an escape (\\n, \\t or \\uXXXX)']);
  t.same(errs(`k: "${'x'.repeat(MAX_STRING_LENGTH + 1)}"`), [`1:4: string of ${MAX_STRING_LENGTH + 1} characters is too long; expected at most ${MAX_STRING_LENGTH}`]);
  t.same(errs('k: "a\\qb\\zc"'), ['1:6: unknown escape "\\q"; expected \\" \\\' \\\\ \\n \\t or \\uXXXX'], 'one error per string');
  t.same(values("'abc\nx"), [['invalid', 'abc'], ['newline', '\n'], ['identifier', 'x']], 'an unterminated string stops at the line break');
});

t.test('identifiers: any script, digits, "_" and "-"', async (t) => {
  t.same(values('withdraw _x a-b_c9 古风剑客 自由 Ünïcode カタカナー العربية'), [
    ['identifier', 'withdraw'], ['identifier', '_x'], ['identifier', 'a-b_c9'], ['identifier', '古风剑客'], ['identifier', '自由'],
    ['identifier', 'Ünïcode'], ['identifier', 'カタカナー'], ['identifier', 'العربية'],
  ]);
  t.same(values('cafe\u0301'), [['identifier', 'cafe\u0301']], 'combining marks continue an identifier');
  t.same(values('x１２'), [['identifier', 'x１２']], 'full-width digits continue one');
  t.same(values('𠀀字'), [['identifier', '𠀀字']], 'astral-plane letters (CJK extension B)');
});

t.test('comments, line breaks and white space', async (t) => {
  t.same(toks('a: 1 # note: [x\n# whole line\nb: 2'), [
    'identifier "a" @1:1', 'colon ":" @1:2', 'number 1 @1:4', 'newline @1:16', 'newline @2:13',
    'identifier "b" @3:1', 'colon ":" @3:2', 'number 2 @3:4', 'eof @3:5',
  ]);
  t.same(toks('a\r\nb\rc\n'), ['identifier "a" @1:1', 'newline @1:2', 'identifier "b" @2:1', 'newline @2:2', 'identifier "c" @3:1', 'newline @3:2', 'eof @4:1'], '\\r\\n, \\r and \\n');
  t.same(toks('\ufeffa:\t\u3000\u00a01'), ['identifier "a" @1:1', 'colon ":" @1:2', 'number 1 @1:6'].concat('eof @1:7'), 'BOM skipped; tab, ideographic and no-break spaces separate');
  t.same(toks('#only a comment'), ['eof @1:16']);
  t.same(toks(''), ['eof @1:1']);
});

t.test('columns count code points', async (t) => {
  t.same(toks('s: "😀😀"; k: 中文'), ['identifier "s" @1:1', 'colon ":" @1:2', 'string "😀😀" @1:4', 'semicolon ";" @1:8', 'identifier "k" @1:10', 'colon ":" @1:11', 'identifier "中文" @1:13', 'eof @1:15']);
  t.same(errs('s: "😀\\q"'), ['1:6: unknown escape "\\q"; expected \\" \\\' \\\\ \\n \\t or \\uXXXX']);
  t.same(errs('# 😀😀\n😀'), ['2:1: unexpected character "😀" (U+1F600); expected a key, a value, or one of : ; , [ ] #']);
  const tokens = lex('😀 x').tokens;
  t.equal(tokens[1]!.column, 3, 'column after an emoji');
  t.equal(tokens[1]!.offset, 3, 'offset in UTF-16 units');
});

t.test('full-width punctuation is an error, read as the ASCII mark', async (t) => {
  t.same(errs('trust：0.5；likes：［茶、酒］＃note'), [
    '1:6: full-width "：" (U+FF1A) is not part of the syntax; expected ":"',
    '1:10: full-width "；" (U+FF1B) is not part of the syntax; expected ";"',
    '1:16: full-width "：" (U+FF1A) is not part of the syntax; expected ":"',
    '1:17: full-width "［" (U+FF3B) is not part of the syntax; expected "["',
    '1:19: full-width "、" (U+3001) is not part of the syntax; expected ","',
    '1:21: full-width "］" (U+FF3D) is not part of the syntax; expected "]"',
    '1:22: full-width "＃" (U+FF03) is not part of the syntax; expected "#"',
  ]);
  t.same(values('a：1，2'), [['identifier', 'a'], ['colon', ':'], ['number', 1], ['comma', ','], ['number', 2]]);
});

t.test('curly quotes are an error and one invalid token', async (t) => {
  t.same(errs('k: “tea”; j: 「茶」'), [
    '1:4: "“" (U+201C) is not a string quote; expected a straight quote " or \'',
    '1:14: "「" (U+300C) is not a string quote; expected a straight quote " or \'',
  ]);
  t.same(values('k: “tea”;'), [['identifier', 'k'], ['colon', ':'], ['invalid', 'tea'], ['semicolon', ';']]);
  t.same(values('k: ‘open\nx'), [['identifier', 'k'], ['colon', ':'], ['invalid', 'open'], ['newline', '\n'], ['identifier', 'x']], 'unclosed: to the line end');
});

t.test('stray characters: one error per run, with a hint', async (t) => {
  t.same(errs('trust = 0.5'), ['1:7: unexpected character "="; expected ":" between a key and its value']);
  t.same(errs('k: {a}'), ['1:4: unexpected character "{"; lists are written [a, b]', '1:6: unexpected character "}"; lists are written [a, b]']);
  t.same(errs('k: - 1'), ['1:4: unexpected character "-"; expected a number such as -0.5 or .5']);
  t.same(errs('k: @@@ x'), ['1:4: unexpected character "@"; expected a key, a value, or one of : ; , [ ] #']);
  t.same(values('k: @@@ x'), [['identifier', 'k'], ['colon', ':'], ['invalid', '@@@'], ['identifier', 'x']]);
  t.same(errs('k\u200b: 1'), ['1:2: unexpected character U+200B; expected a key, a value, or one of : ; , [ ] #'], 'invisible characters by code point');
  t.same(errs('k: 1\u0000'), ['1:5: unexpected character U+0000; expected a key, a value, or one of : ; , [ ] #']);
});

t.test('text beyond MAX_PERSONA_LENGTH is not read, and that is reported', async (t) => {
  const long = `a: 1\n${'b'.repeat(MAX_PERSONA_LENGTH)}`;
  const r = lex(long);
  t.same(r.errors.map((e) => `${e.line}:${e.column}: ${e.message}`), [
    `2:${MAX_PERSONA_LENGTH - 5 + 1}: the persona text is too long: expected at most ${MAX_PERSONA_LENGTH} characters (UTF-16 code units); the rest is not read`,
  ]);
  t.equal(r.tokens.at(-2)!.text.length, MAX_PERSONA_LENGTH - 5);
  const pairs = lex('😀'.repeat(MAX_PERSONA_LENGTH));
  t.equal(pairs.tokens.filter((tk) => tk.kind === 'invalid').map((tk) => tk.text).join('').length, MAX_PERSONA_LENGTH, 'a surrogate pair is never cut in half');
  t.equal(lex('x'.repeat(MAX_PERSONA_LENGTH)).errors.length, 0, 'exactly the maximum is fine');
});

t.test('never throws, and always ends with eof', async (t) => {
  for (const input of [undefined, null, 42, {}, [], '\\', '"', "'", '\u0000', '\ud800', '\udc00x', '[', ']', ':', '#', '\r', '“', '-', '+.', '1e']) {
    const r = lex(input as string);
    t.equal(r.tokens.at(-1)?.kind, 'eof', `eof for ${JSON.stringify(input)}`);
  }
  t.same(errs(null as unknown as string), ['1:1: expected the persona as text, found null']);
  t.same(errs(42 as unknown as string), ['1:1: expected the persona as text, found number']);
});
