/**
 * The `hash` embedder: hashed features only (words, their character
 * trigrams, CJK characters and bigrams, emoji; see features.ts), no word
 * list. Texts are close when they share words or parts of words; a
 * paraphrase with other words is not found (docs/embeddings.md has the
 * numbers). It is the baseline the `glove` embedder is measured against, and
 * a choice for a deployment that wants no data file at all.
 */
import { normalize } from '../vector/types.js';
import { FeatureHasher, scanTokens, STOPWORDS, stripClitic } from './features.js';
import { type Embedder, embeddingError } from './types.js';

export interface HashEmbedderOptions {
  /** Components per vector (default 256). */
  readonly dim?: number;
}

export const DEFAULT_HASH_DIM = 256;

/** Checks the caller's signal, then embeds each text with `one` (synchronous: microseconds per text). */
export function embedEach(texts: readonly string[], signal: AbortSignal | undefined, one: (text: string) => Float32Array): Promise<Float32Array[]> {
  try {
    signal?.throwIfAborted();
    return Promise.resolve(texts.map(one));
  } catch (err) {
    return Promise.reject(err);
  }
}

export class HashEmbedder implements Embedder {
  readonly name = 'hash';
  readonly dim: number;

  constructor(options: HashEmbedderOptions = {}) {
    const dim = options.dim ?? DEFAULT_HASH_DIM;
    if (!Number.isInteger(dim) || dim < 8 || dim > 65_536) throw embeddingError('hash', `options.dim must be an integer from 8 to 65536 (got ${dim})`);
    this.dim = dim;
  }

  async init(): Promise<void> {}

  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    return embedEach(texts, signal, (text) => this.embedOne(text));
  }

  /** One text's vector, synchronously. */
  embedOne(text: string): Float32Array {
    const out = new Float32Array(this.dim);
    const hasher = new FeatureHasher(out, 0, this.dim);
    scanTokens(text, {
      word(token) {
        if (STOPWORDS.has(token)) return;
        const base = stripClitic(token);
        if (base !== '' && !STOPWORDS.has(base)) hasher.word(base, 1);
      },
      characters: (run) => hasher.characters(run),
      symbol: (symbol) => hasher.symbol(symbol),
    });
    return normalize(out);
  }

  async close(): Promise<void> {}
}
