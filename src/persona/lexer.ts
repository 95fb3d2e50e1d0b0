/**
 * Persona DSL lexer: text → tokens with 1-based line and column (columns
 * count code points). Pure and total: it never throws, reads at most
 * MAX_PERSONA_LENGTH code units, and reports every lexical error with its
 * position while still producing a token (an `invalid` one) where the error
 * was, so that the parser neither stops nor reports the same spot again.
 *
 * Line breaks are "\n", "\r\n" and a lone "\r". Other Unicode white space
 * (including the ideographic space U+3000 that Chinese input methods type)
 * separates tokens like a space.
 */
import { IssueSink } from './issues.js';
import { MAX_PERSONA_LENGTH, MAX_STRING_LENGTH } from './limits.js';
import type { LexResult, Position, PunctuationKind, Token, TokenKind } from './types.js';

/** Identifiers: a letter (any script) or "_", then letters, combining marks, digits, "_" and "-". */
export const IDENTIFIER_RE = /^[\p{L}_][\p{L}\p{M}\p{Nd}_-]*$/u;
const IDENTIFIER = /[\p{L}_][\p{L}\p{M}\p{Nd}_-]*/uy;
const IDENTIFIER_START = /^[\p{L}_]$/u;
const NUMBER_TAIL_CHAR = /^[\p{L}\p{M}\p{Nd}_.+-]$/u;
const NUMBER = /[+-]?(?:\d+(?:\.\d+)?|\.\d+)(?:[eE][+-]?\d+)?/y;
/** What a malformed number runs on with ("0.7x", "1.2.3", "1e"). */
const NUMBER_TAIL = /[\p{L}\p{M}\p{Nd}_.+-]*/uy;
const SPACE = /^[\p{White_Space}\uFEFF]$/u;
const PRINTABLE = /^[\p{L}\p{M}\p{N}\p{P}\p{S}]$/u;
const HEX4 = /^[0-9a-fA-F]{4}$/;

const PUNCTUATION: Readonly<Record<string, PunctuationKind>> = { ':': 'colon', ';': 'semicolon', ',': 'comma', '[': 'lbracket', ']': 'rbracket' };
/** Full-width punctuation that Chinese and Japanese input methods type in place of the ASCII marks. */
const FULL_WIDTH: Readonly<Record<string, string>> = { '：': ':', '；': ';', '，': ',', '、': ',', '［': '[', '］': ']', '＃': '#' };
/** Typographic quotes and their closing marks; they do not delimit strings. */
const CURLY_QUOTES: Readonly<Record<string, string>> = { '“': '”', '‘': '’', '「': '」', '『': '』', '＂': '＂', '＇': '＇' };

const SIMPLE_ESCAPES: Readonly<Record<string, string>> = { '"': '"', "'": "'", '\\': '\\', n: '\n', t: '\t' };

const isHighSurrogate = (c: number) => c >= 0xd800 && c <= 0xdbff;
const isLowSurrogate = (c: number) => c >= 0xdc00 && c <= 0xdfff;

/** A character for a message: `"@"`, `"：" (U+FF1A)`, or `U+200B` for invisible ones. */
export function showCharacter(ch: string): string {
  const cp = ch.codePointAt(0) ?? 0;
  const hex = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
  if (!PRINTABLE.test(ch)) return hex;
  return cp < 0x80 ? `"${ch}"` : `"${ch}" (${hex})`;
}

/** Number of code points in s[from, to). */
function codePoints(s: string, from: number, to: number): number {
  let n = 0;
  for (let k = from; k < to; k++) {
    if (k > from && isLowSurrogate(s.charCodeAt(k)) && isHighSurrogate(s.charCodeAt(k - 1))) continue;
    n++;
  }
  return n;
}

export function lex(text: string): LexResult {
  const sink = new IssueSink();
  let src = typeof text === 'string' ? text : '';
  if (typeof text !== 'string') sink.add({ line: 1, column: 1 }, `expected the persona as text, found ${text === null ? 'null' : typeof text}`);
  let truncated = false;
  if (src.length > MAX_PERSONA_LENGTH) {
    // Never cut a surrogate pair in half.
    const cut = isHighSurrogate(src.charCodeAt(MAX_PERSONA_LENGTH - 1)) ? MAX_PERSONA_LENGTH - 1 : MAX_PERSONA_LENGTH;
    src = src.slice(0, cut);
    truncated = true;
  }
  const n = src.length;
  const tokens: Token[] = [];
  let i = src.charCodeAt(0) === 0xfeff ? 1 : 0; // a byte order mark is not part of the text
  let line = 1;
  let column = 1;

  const here = (): Position => ({ line, column });
  /** The code point at i, as a string of one or two code units. */
  const charAt = (k: number): string => (k < n ? String.fromCodePoint(src.codePointAt(k)!) : '');
  const isLineBreak = (k: number) => {
    const c = src.charCodeAt(k);
    return c === 10 || c === 13;
  };
  const push = (kind: Exclude<TokenKind, 'number'>, value: string, start: number, at: Position) => {
    tokens.push({ kind, value, text: src.slice(start, i), line: at.line, column: at.column, offset: start });
  };

  while (i < n) {
    const c = src.charCodeAt(i);
    if (c === 10 || c === 13) {
      const start = i;
      i += c === 13 && src.charCodeAt(i + 1) === 10 ? 2 : 1;
      push('newline', '\n', start, here());
      line++;
      column = 1;
      continue;
    }
    if (c === 32 || c === 9) {
      i++;
      column++;
      continue;
    }
    const ch = charAt(i);
    const at = here();
    const start = i;
    if (SPACE.test(ch)) {
      i += ch.length;
      column++;
    } else if (ch === '#') {
      skipComment();
    } else if (PUNCTUATION[ch] !== undefined) {
      i++;
      column++;
      push(PUNCTUATION[ch], ch, start, at);
    } else if (ch === '"' || ch === "'") {
      lexString(ch, start, at);
    } else if (isNumberStart(c)) {
      lexNumber(start, at);
    } else if (IDENTIFIER_START.test(ch)) {
      IDENTIFIER.lastIndex = i;
      const word = IDENTIFIER.exec(src)![0];
      i += word.length;
      column += codePoints(word, 0, word.length);
      push('identifier', word, start, at);
    } else if (FULL_WIDTH[ch] !== undefined) {
      const ascii = FULL_WIDTH[ch];
      sink.add(at, `full-width ${showCharacter(ch)} is not part of the syntax; expected "${ascii}"`);
      i += ch.length;
      column++;
      // Read on as if the ASCII mark had been written, so one slip is one error.
      if (ascii === '#') skipComment();
      else push(PUNCTUATION[ascii]!, ascii, start, at);
    } else if (CURLY_QUOTES[ch] !== undefined) {
      lexCurlyQuoted(ch, CURLY_QUOTES[ch], start, at);
    } else {
      // A run of characters that start no token is one error and one token.
      i += ch.length;
      column++;
      while (i < n && isStray(charAt(i))) {
        i += charAt(i).length;
        column++;
      }
      sink.add(at, `unexpected character ${showCharacter(ch)}${strayHint(ch)}`);
      push('invalid', src.slice(start, i), start, at);
    }
  }
  if (truncated) {
    sink.add(here(), `the persona text is too long: expected at most ${MAX_PERSONA_LENGTH} characters (UTF-16 code units); the rest is not read`);
  }
  tokens.push({ kind: 'eof', value: '', text: '', line, column, offset: i });
  return { tokens, errors: sink.issues };

  function skipComment(): void {
    while (i < n && !isLineBreak(i)) {
      i += charAt(i).length;
      column++;
    }
  }

  function isNumberStart(c: number): boolean {
    if (c >= 48 && c <= 57) return true;
    if (c !== 43 && c !== 45 && c !== 46) return false; // + - .
    NUMBER.lastIndex = i;
    return NUMBER.test(src);
  }

  /** True for a character that would not start any token. */
  function isStray(ch: string): boolean {
    if (ch === '' || isLineBreak(i) || SPACE.test(ch) || ch === '#' || ch === '"' || ch === "'") return false;
    if (PUNCTUATION[ch] !== undefined || FULL_WIDTH[ch] !== undefined || CURLY_QUOTES[ch] !== undefined) return false;
    if (IDENTIFIER_START.test(ch)) return false;
    return !isNumberStart(ch.charCodeAt(0));
  }

  function strayHint(ch: string): string {
    if (ch === '=') return '; expected ":" between a key and its value';
    if (ch === '{' || ch === '}' || ch === '(' || ch === ')') return '; lists are written [a, b]';
    if (ch === '-' || ch === '+' || ch === '.') return '; expected a number such as -0.5 or .5';
    return '; expected a key, a value, or one of : ; , [ ] #';
  }

  function lexNumber(start: number, at: Position): void {
    NUMBER.lastIndex = i;
    const digits = NUMBER.exec(src)![0];
    i += digits.length;
    column += digits.length;
    if (i < n && NUMBER_TAIL_CHAR.test(charAt(i))) {
      NUMBER_TAIL.lastIndex = i;
      const tail = NUMBER_TAIL.exec(src)![0];
      i += tail.length;
      column += codePoints(tail, 0, tail.length);
      const written = src.slice(start, i);
      sink.add(at, `invalid number "${written}"; expected a number such as 0.5, -2 or 1e-3`);
      push('invalid', written, start, at);
      return;
    }
    const value = Number(digits);
    if (!Number.isFinite(value)) {
      sink.add(at, `number ${digits} is out of range; expected a finite number such as 0.5`);
      push('invalid', digits, start, at);
      return;
    }
    tokens.push({ kind: 'number', value, text: digits, line: at.line, column: at.column, offset: start });
  }

  function lexString(quote: string, start: number, at: Position): void {
    i++;
    column++;
    let value = '';
    let length = 0;
    let error: { at: Position; message: string } | undefined;
    const fail = (where: Position, message: string) => {
      error ??= { at: where, message };
    };
    const add = (s: string) => {
      if (length < MAX_STRING_LENGTH) value += s;
      length++;
    };
    for (;;) {
      if (i >= n || isLineBreak(i)) {
        fail(at, `unterminated string: expected a closing ${quote} before the end of the ${i >= n ? 'text' : 'line'}`);
        break;
      }
      const ch = charAt(i);
      if (ch === quote) {
        i++;
        column++;
        break;
      }
      if (ch === '\\') {
        const escAt = here();
        const next = charAt(i + 1);
        if (next === '' || isLineBreak(i + 1)) {
          i++;
          column++;
          continue; // reported as unterminated on the next turn
        }
        const simple = SIMPLE_ESCAPES[next];
        if (simple !== undefined) {
          add(simple);
          i += 2;
          column += 2;
        } else if (next === 'u') {
          lexUnicodeEscape(escAt, add, fail);
        } else {
          fail(escAt, `unknown escape "\\${next}"; expected \\" \\' \\\\ \\n \\t or \\uXXXX`);
          add(next);
          i += 1 + next.length;
          column += 2;
        }
        continue;
      }
      const cp = ch.codePointAt(0)!;
      if ((cp < 0x20 && cp !== 9) || cp === 0x7f) {
        fail(here(), `control character ${showCharacter(ch)} in a string; expected it written as an escape (\\n, \\t or \\uXXXX)`);
      }
      add(ch);
      i += ch.length;
      column++;
    }
    if (length > MAX_STRING_LENGTH) fail(at, `string of ${length} characters is too long; expected at most ${MAX_STRING_LENGTH}`);
    if (error) sink.add(error.at, error.message);
    push(error ? 'invalid' : 'string', value, start, at);
  }

  /** At "\u": reads \uXXXX, or a surrogate pair written as two escapes. */
  function lexUnicodeEscape(escAt: Position, add: (s: string) => void, fail: (p: Position, m: string) => void): void {
    const hex = src.slice(i + 2, i + 6);
    if (!HEX4.test(hex)) {
      fail(escAt, 'expected 4 hex digits after "\\u" (\\u00e9)');
      i += 2;
      column += 2;
      return;
    }
    const unit = parseInt(hex, 16);
    i += 6;
    column += 6;
    if (isHighSurrogate(unit)) {
      const low = src.slice(i + 2, i + 6);
      if (src.startsWith('\\u', i) && HEX4.test(low) && isLowSurrogate(parseInt(low, 16))) {
        add(String.fromCharCode(unit, parseInt(low, 16)));
        i += 6;
        column += 6;
        return;
      }
    }
    if (isHighSurrogate(unit) || isLowSurrogate(unit)) {
      fail(escAt, `"\\u${hex}" is half of a surrogate pair; expected both halves (\\uD83D\\uDE00) or the character itself`);
      return;
    }
    add(String.fromCharCode(unit));
  }

  /** “…” and the like: read to the closing mark (or the line end) as one invalid token. */
  function lexCurlyQuoted(open: string, close: string, start: number, at: Position): void {
    i += open.length;
    column++;
    let value = '';
    while (i < n && !isLineBreak(i)) {
      const ch = charAt(i);
      i += ch.length;
      column++;
      if (ch === close) break;
      value += ch;
    }
    sink.add(at, `${showCharacter(open)} is not a string quote; expected a straight quote " or '`);
    push('invalid', value, start, at);
  }
}
