/**
 * The text side of the embedded embedders (glove, hash): one tokenizer and
 * signed feature hashing, both deterministic and allocation-light.
 *
 * Tokens, after NFKC normalization and lowercasing (curly apostrophes become
 * "'"):
 * - words: runs of letters, marks and digits with inner apostrophes
 *   ("mara's", "don't", "1999");
 * - character runs: scripts written without spaces between words (Han,
 *   Hiragana, Katakana, Thai, Lao, Khmer, Myanmar), featurized as character
 *   unigrams and bigrams, the usual units of Chinese retrieval;
 * - symbols: emoji and other pictographs, one token each.
 *
 * Hashed features go into a block of `dim` components: index and sign come
 * from FNV-1a (src/text/random.ts) with a seed per feature kind, finished by
 * MurmurHash3's fmix32 so that `% dim` spreads well. A word gives its own
 * feature and its character trigrams (with "<" and ">" marking its ends), so
 * "Eldorian" still shares most of its features with "Eldoria".
 */
import { fnv1a, FNV_PRIME } from '../../text/random.js';

/** Scripts whose words are not separated by spaces: embedded as characters. */
const CHARACTER_SCRIPTS = '\\p{Script=Han}\\p{Script=Hiragana}\\p{Script=Katakana}\\p{Script=Thai}\\p{Script=Lao}\\p{Script=Khmer}\\p{Script=Myanmar}';

/**
 * Group 1 a character run, group 2 a word, group 3 a pictograph. A word
 * never takes characters of the character scripts (the lookahead), so
 * "Mara说" is the word "mara" and the run "说". scripts/build-embeddings.mjs
 * keeps only vocabulary words this pattern can produce (TOKEN_WORD there).
 */
const TOKEN_RE = new RegExp(
  `([${CHARACTER_SCRIPTS}][${CHARACTER_SCRIPTS}\\p{M}]*)` +
    `|((?:(?![${CHARACTER_SCRIPTS}])[\\p{L}\\p{M}\\p{N}])+(?:'(?:(?![${CHARACTER_SCRIPTS}])[\\p{L}\\p{M}\\p{N}])+)*)` +
    `|(\\p{Extended_Pictographic})`,
  'gu',
);

/** What a visitor of the tokens of a text receives. */
export interface TokenVisitor {
  word(token: string): void;
  characters(run: string): void;
  symbol(symbol: string): void;
}

/**
 * Characters of a text that are embedded; the rest is ignored. A memory's
 * gist is in its beginning, and the bound keeps one embedding's work small
 * whatever a message or reply holds (a multi-megabyte single "word" would
 * otherwise cost V8 seconds in string slicing).
 */
export const MAX_EMBED_CHARS = 16_384;

/** Normalizes `text` (NFKC, lowercase, one apostrophe) and hands each token to `visitor`, in order; only the first MAX_EMBED_CHARS count. */
export function scanTokens(text: string, visitor: TokenVisitor): void {
  const bounded = text.length > MAX_EMBED_CHARS ? text.slice(0, MAX_EMBED_CHARS) : text;
  if (ASCII_RE.test(bounded)) return scanAscii(bounded.toLowerCase(), visitor);
  const normalized = bounded.normalize('NFKC').toLowerCase().replace(/[\u2018\u2019\u02bc\u0060\u00b4]/g, "'");
  TOKEN_RE.lastIndex = 0;
  let m: RegExpExecArray | null;
  while ((m = TOKEN_RE.exec(normalized)) !== null) {
    if (m[2] !== undefined) visitor.word(m[2]);
    else if (m[1] !== undefined) visitor.characters(m[1]);
    else if (m[3] !== undefined) visitor.symbol(m[3]);
  }
}

const ASCII_RE = /^[\x00-\x7f]*$/;

/** a-z or 0-9 (the text is lowercased). */
function isWordChar(c: number): boolean {
  return (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39);
}

/** Apostrophe, or the backtick that normalization turns into one. */
function isApostrophe(c: number): boolean {
  return c === 0x27 || c === 0x60;
}

/**
 * scanTokens for lowercased ASCII text, where NFKC changes nothing, no
 * character script or pictograph can occur, and a word is a run of a-z/0-9
 * with inner apostrophes: the same tokens as TOKEN_RE, several times faster
 * (most messages and replies of English role-play are ASCII).
 */
function scanAscii(text: string, visitor: TokenVisitor): void {
  const n = text.length;
  let i = 0;
  while (i < n) {
    if (!isWordChar(text.charCodeAt(i))) {
      i++;
      continue;
    }
    const start = i;
    let backticks = false;
    for (;;) {
      while (i < n && isWordChar(text.charCodeAt(i))) i++;
      if (i + 1 < n && isApostrophe(text.charCodeAt(i)) && isWordChar(text.charCodeAt(i + 1))) {
        backticks ||= text.charCodeAt(i) === 0x60;
        i++;
        continue;
      }
      break;
    }
    const word = text.slice(start, i);
    visitor.word(backticks ? word.replace(/`/g, "'") : word);
  }
}

/**
 * English function words (NLTK's list, their contractions, and the
 * fragments a tokenizer leaves of them). They say little about what a
 * memory is about, so neither embedder uses them.
 */
export const STOPWORDS: ReadonlySet<string> = new Set(
  (
    'a about above after again against all am an and any are as at be because been before being below between both but by ' +
    'can could did do does doing down during each few for from further had has have having he her here hers herself him ' +
    'himself his how i if in into is it its itself just me more most my myself no nor not now of off on once only or other ' +
    'our ours ourselves out over own same she should so some such than that the their theirs them themselves then there ' +
    'these they this those through to too under until up very was we were what when where which while who whom why will ' +
    'with would you your yours yourself yourselves also yet ever shall may might must upon ' +
    "i'm i've i'd i'll you're you've you'd you'll he's he'd he'll she's she'd she'll it's it'd it'll we're we've we'd we'll " +
    "they're they've they'd they'll that's there's here's what's who's where's when's why's how's let's " +
    "isn't aren't wasn't weren't hasn't haven't hadn't doesn't don't didn't won't wouldn't shan't shouldn't can't cannot " +
    "couldn't mustn't mightn't needn't ain't o s t d ll re ve m y n't 's"
  ).split(' '),
);

/**
 * Characters so frequent in Chinese and Japanese that alone they carry
 * nearly nothing (particles, pronouns, "one", "not"...); their bigrams are
 * still used.
 */
const STOP_CHARACTERS: ReadonlySet<string> = new Set(
  Array.from('的了是在我你他她它们这那和就都也很吗呢吧啊呀嘛着过与及或而之其个一不有人么把被让给从对向到为以于所么没哦嗯の、はがをにでともへやかなだです'),
);

/** Clitics split off a word in English text ("mara's" → "mara", "she'd" → "she"). */
const CLITIC_RE = /'(?:s|d|ll|re|ve|m|t)$/;

/** `word` without a trailing clitic ('s, 'd, 'll, 're, 've, 'm, n't). */
export function stripClitic(word: string): string {
  if (word.endsWith("n't")) return word.slice(0, -3);
  return word.replace(CLITIC_RE, '');
}

/** Seeds of the feature kinds: the same string as a word and as a trigram lands elsewhere. */
const SEED_WORD = 0x811c9dc5;
const SEED_TRIGRAM = 0x2545f491;
const SEED_CHARACTER = 0x9e3779b9;
const SEED_BIGRAM = 0x68e31da4;
const SEED_SYMBOL = 0x1b873593;

/** Weight of a word's trigrams together, relative to its own feature. */
const TRIGRAM_WEIGHT = 0.8;
/** Weight of a character bigram, relative to a single character. */
const BIGRAM_WEIGHT = 1.2;

/** MurmurHash3's 32-bit finalizer: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/**
 * Adds hashed features into `out[offset .. offset + dim)`. Each feature adds
 * ±weight at one index; the sign (from a bit the index does not use) makes
 * colliding features cancel on average instead of piling up.
 */
export class FeatureHasher {
  constructor(
    readonly out: Float32Array,
    readonly offset: number,
    readonly dim: number,
  ) {}

  add(feature: string, seed: number, weight: number): void {
    this.#put(fnv1a(feature, seed), weight);
  }

  /** Adds ±weight where the feature whose FNV-1a hash is `hash` lands. */
  #put(hash: number, weight: number): void {
    const h = fmix32(hash);
    const sign = h & 0x8000_0000 ? -weight : weight;
    const i = this.offset + ((h & 0x7fff_ffff) % this.dim);
    this.out[i] = this.out[i]! + sign;
  }

  /**
   * A word: its own feature with `weight`, and its trigrams sharing
   * TRIGRAM_WEIGHT × weight. The trigrams are those of "<word>", hashed from
   * the word's code units without building their strings.
   */
  word(word: string, weight: number): void {
    this.add(word, SEED_WORD, weight);
    const n = word.length;
    const each = (TRIGRAM_WEIGHT * weight) / Math.sqrt(n);
    // Code unit k of "<word>": "<", the word's, ">".
    let a = 0x3c;
    let b = word.charCodeAt(0);
    for (let k = 2; k <= n + 1; k++) {
      const c = k <= n ? word.charCodeAt(k - 1) : 0x3e;
      this.#put(Math.imul(Math.imul(Math.imul(SEED_TRIGRAM ^ a, FNV_PRIME) ^ b, FNV_PRIME) ^ c, FNV_PRIME) >>> 0, each);
      a = b;
      b = c;
    }
  }

  /** A run of a character script: each character (frequent ones skipped) and each bigram. Returns the number of characters. */
  characters(run: string): number {
    const chars = Array.from(run);
    for (let i = 0; i < chars.length; i++) {
      const c = chars[i]!;
      if (!STOP_CHARACTERS.has(c)) this.add(c, SEED_CHARACTER, 1);
      if (i + 1 < chars.length) this.add(c + chars[i + 1]!, SEED_BIGRAM, BIGRAM_WEIGHT);
    }
    return chars.length;
  }

  symbol(symbol: string): void {
    this.add(symbol, SEED_SYMBOL, 1);
  }
}

/** Scales `v[from .. to)` in place by `factor`. */
export function scale(v: Float32Array, factor: number, from = 0, to = v.length): void {
  for (let i = from; i < to; i++) v[i] = v[i]! * factor;
}
