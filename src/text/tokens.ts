/**
 * A small script-aware tokenizer. A token is one CJK character (Han, kana,
 * Hangul), one run of letters/digits of other scripts (a word), or one
 * punctuation mark; whitespace is not a token. It drives the embedded script
 * model, the streaming of scripted replies, and the approximate token counts
 * reported in `usage` (a real LLM provider reports its own).
 */

const TOKEN_RE = /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]|[\p{L}\p{N}\p{M}]+(?:['’][\p{L}\p{N}\p{M}]+)*|[^\s\p{L}\p{N}\p{M}]/gu;
const CJK_RE = /^[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]$/u;
const WORD_RE = /^[\p{L}\p{N}\p{M}]/u;
/** Punctuation that attaches to the word before it ("word," "word."). */
const CLOSING_RE = /^[.,!?;:%)\]}»”’…、。，！？；：）」』】]$/u;
/** Punctuation that attaches to the word after it ("(word" "“word"). */
const OPENING_RE = /^[([{«“‘「『【#@$]$/u;
/** Symbols that join the words on both sides ("forty-one", "and/or"). */
const JOINER_RE = /^[-/_~·]$/u;

export function tokenize(text: string): string[] {
  return text.match(TOKEN_RE) ?? [];
}

export function countTokens(text: string): number {
  let n = 0;
  TOKEN_RE.lastIndex = 0;
  while (TOKEN_RE.exec(text) !== null) n++;
  return n;
}

export function isCjk(token: string): boolean {
  return CJK_RE.test(token);
}

export function isSentenceEnd(token: string): boolean {
  return /^[.!?。！？…]$/u.test(token);
}

/**
 * The text to emit for `token` when it follows `prev`: no space around CJK,
 * before closing punctuation, after opening punctuation, or on either side of
 * a joiner ("forty-one"); one space otherwise (between words, after closing
 * punctuation, around other symbols: "salt & pepper").
 */
export function spaced(prev: string | undefined, token: string): string {
  if (prev === undefined) return token;
  if (isCjk(token) || isCjk(prev)) return token;
  if (CLOSING_RE.test(token) || JOINER_RE.test(token)) return token;
  if (OPENING_RE.test(prev) || JOINER_RE.test(prev)) return token;
  return ' ' + token;
}

/**
 * Splits text for streaming, keeping every character (whitespace included):
 * concatenating the pieces gives back the input exactly.
 */
export function streamPieces(text: string): string[] {
  const pieces: string[] = [];
  const re = /\s*(?:[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Hangul}]|[\p{L}\p{N}\p{M}'’]+|[^\s\p{L}\p{N}\p{M}])|\s+$/gu;
  let m: RegExpExecArray | null;
  let last = 0;
  while ((m = re.exec(text)) !== null) {
    if (m[0] === '') {
      re.lastIndex++;
      continue;
    }
    pieces.push(m[0]);
    last = re.lastIndex;
  }
  if (last < text.length) pieces.push(text.slice(last));
  return pieces;
}
