import t from 'tap';
import { mulberry32 } from '../../src/text/random.js';
import { countTokens, isCjk, isSentenceEnd, spaced, streamPieces, tokenize } from '../../src/text/tokens.js';

/** Joins tokens the way the script provider streams them. */
function join(tokens: readonly string[]): string {
  let out = '';
  let prev: string | undefined;
  for (const tok of tokens) {
    out += spaced(prev, tok);
    prev = tok;
  }
  return out;
}

t.test('tokenize', async (t) => {
  const cases: [string, string[]][] = [
    ['Hello, world!', ['Hello', ',', 'world', '!']],
    ["don't stop", ["don't", 'stop']],
    ["it’s rock'n'roll", ['it’s', "rock'n'roll"]],
    ["'quoted'", ["'", 'quoted', "'"]],
    ["don't'", ["don't", "'"]],
    ['古风剑客你好', ['古', '风', '剑', '客', '你', '好']],
    ['今日は良い天気です。', ['今', '日', 'は', '良', 'い', '天', '気', 'で', 'す', '。']],
    ['カタカナ ひらがな', ['カ', 'タ', 'カ', 'ナ', 'ひ', 'ら', 'が', 'な']],
    ['안녕하세요', ['안', '녕', '하', '세', '요']],
    ['Hello 世界!', ['Hello', '世', '界', '!']],
    ['天色已晚，你为何独坐山崖？', ['天', '色', '已', '晚', '，', '你', '为', '何', '独', '坐', '山', '崖', '？']],
    ['abc123 4.5', ['abc123', '4', '.', '5']],
    ['café naïve', ['café', 'naïve']],
    ['a\u0301b', ['a\u0301b']],
    ['e-mail', ['e', '-', 'mail']],
    ['#tag @me $5', ['#', 'tag', '@', 'me', '$', '5']],
    ['  spaced   out  ', ['spaced', 'out']],
    ['x\ny\tz', ['x', 'y', 'z']],
    ['...', ['.', '.', '.']],
    ['', []],
    ['   \n ', []],
  ];
  for (const [text, tokens] of cases) {
    t.same(tokenize(text), tokens, JSON.stringify(text));
    t.equal(countTokens(text), tokens.length, `countTokens ${JSON.stringify(text)}`);
  }
});

t.test('countTokens agrees with tokenize, repeatedly (global regex state)', async (t) => {
  const texts = ['a b c', '古风 剑客', "don't, won't!", '😀 hi', ''];
  for (let round = 0; round < 3; round++) {
    for (const text of texts) t.equal(countTokens(text), tokenize(text).length, `${JSON.stringify(text)} round ${round}`);
  }
});

t.test('isCjk and isSentenceEnd', async (t) => {
  t.same(['古', 'あ', 'ア', '한'].map(isCjk), [true, true, true, true]);
  t.same(['a', '古风', '。', '1', ''].map(isCjk), [false, false, false, false, false]);
  t.same(['.', '!', '?', '。', '！', '？', '…'].map(isSentenceEnd), Array(7).fill(true));
  t.same([',', 'a', '..', '，', ''].map(isSentenceEnd), Array(5).fill(false));
});

t.test('spaced() joining rules', async (t) => {
  t.equal(spaced(undefined, 'Hello'), 'Hello', 'the first token is as is');
  t.equal(spaced('Hello', 'world'), ' world', 'a space between two words');
  t.equal(spaced('world', ','), ',', 'closing punctuation sticks to the word before');
  t.equal(spaced(',', 'next'), ' next', 'a space after closing punctuation before a word');
  t.equal(spaced('(', 'word'), 'word', 'opening punctuation sticks to the word after');
  t.equal(spaced('word', '('), ' (', 'a space before opening punctuation');
  t.equal(spaced('古', '风'), '风', 'never a space between CJK');
  t.equal(spaced('Hello', '世'), '世', 'never a space before CJK');
  t.equal(spaced('世', 'Hello'), 'Hello', 'never a space after CJK');
  t.equal(spaced('。', '好'), '好');
  t.equal(spaced('!', '?'), '?', 'closing punctuation after punctuation: no space');
  t.equal(spaced('!', '"'), ' "', 'a straight quote is not known to open or close: spaced like a word');
  t.equal(spaced('salt', '&'), ' &', 'other symbols are spaced');
  t.equal(spaced('forty', '-'), '-', 'joiners attach to the word before');
  t.equal(spaced('-', 'one'), 'one', 'and to the word after');

  t.equal(join(['Hello', ',', 'world', '!']), 'Hello, world!');
  t.equal(join(['(', 'hi', ')', 'there']), '(hi) there');
  t.equal(join(['“', 'hi', '”', 'ok']), '“hi” ok');
  t.equal(join(['#', 'tag', '@', 'me']), '#tag @me');
  t.equal(join(['5', '%', 'off']), '5% off');
  t.equal(join(['wait', '…', 'what', '?']), 'wait… what?');
  t.equal(join(tokenize("I don't know, friend.")), "I don't know, friend.", 'apostrophes stay inside words');
  t.equal(join(tokenize('古风剑客你好，在下有礼了。')), '古风剑客你好，在下有礼了。');
  t.equal(join(tokenize('天色已晚，在下独坐山崖，只为等一位故人。')), '天色已晚，在下独坐山崖，只为等一位故人。');
  t.equal(join(tokenize('Hello 世界 again')), 'Hello世界again', 'CJK runs absorb the spaces around them');
  t.equal(join(tokenize('The view from the observation ring is excellent tonight, if you like swirling ammonia.')),
    'The view from the observation ring is excellent tonight, if you like swirling ammonia.');
});

t.test('spaced() and hyphenated words', async (t) => {
  // Joiners attach on both sides: the characters' lines say "forty-one".
  t.equal(join(tokenize('forty-one humans')), 'forty-one humans', 'forty-one');
  t.equal(join(tokenize('the rope-makers on Tallow Street')), 'the rope-makers on Tallow Street', 'rope-makers');
});

t.test('streamPieces: examples', async (t) => {
  const cases: [string, string[]][] = [
    ['Hello, world!', ['Hello', ',', ' world', '!']],
    ["don't stop", ["don't", ' stop']],
    ['古风剑客你好', ['古', '风', '剑', '客', '你', '好']],
    ['  spaced   out  ', ['  spaced', '   out', '  ']],
    ['x\ny', ['x', '\ny']],
    ['😀 emoji', ['😀', ' emoji']],
    ['Hello 世界!', ['Hello', ' 世', '界', '!']],
    ['', []],
    ['   ', ['   ']],
  ];
  for (const [text, pieces] of cases) t.same(streamPieces(text), pieces, JSON.stringify(text));
});

t.test('streamPieces: concatenation gives back the input exactly', async (t) => {
  const inputs = [
    '',
    ' ',
    '\n',
    '\n\n\t  ',
    '  leading',
    'trailing  ',
    '  both  ',
    'line one\nline two\r\nline three\n',
    'Hello, world! How are you?',
    "don't won't can't ’tis",
    '古风剑客你好 → 古风剑客微笑点头',
    '  古风剑客，请赐教  ',
    '今日は良い天気です。カタカナ、ひらがな。',
    '안녕하세요, 세계!',
    '😀😁😂 👍🏽 👨‍👩‍👧 🇨🇳',
    'mixed 中文 and English, 日本語も。',
    'é\u0301 combining ñ',
    'tabs\tand\u00a0nbsp\u2003em space',
    '{{.UserInput}} | trimSpace',
    '$100.00 (approx.) — “quoted” «guillemets» […]',
    '\ud800 lone surrogate \udc00',
    'a'.repeat(300),
  ];
  for (const text of inputs) t.equal(streamPieces(text).join(''), text, JSON.stringify(text.slice(0, 40)));

  // Random strings from a pool of awkward characters.
  const pool = ['a', 'Z', '9', ' ', '  ', '\n', '\t', '\r\n', ',', '.', "'", '’', '-', '(', '”', '古', '风', 'は', 'カ', '한', '😀', '👍🏽', '\u0301', '\u00a0', '\u200b', '\ud800', 'é', '…', '。'];
  const rng = mulberry32(12345);
  for (let i = 0; i < 300; i++) {
    let s = '';
    const n = Math.floor(rng() * 20);
    for (let j = 0; j < n; j++) s += pool[Math.floor(rng() * pool.length)];
    const pieces = streamPieces(s);
    t.equal(pieces.join(''), s, `random input #${i} ${JSON.stringify(s)}`);
    t.ok(pieces.every((p) => p.length > 0), `no empty piece in #${i}`);
  }
});

t.test('streamPieces: one piece per token, blanks attached to the next', async (t) => {
  const text = 'The lantern swings, and the bells answer.';
  t.equal(streamPieces(text).length, tokenize(text).length);
  t.same(streamPieces(text).map((p) => p.trim()), tokenize(text));
});
