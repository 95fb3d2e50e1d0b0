/**
 * The `glove` embedder, npcd's default: offline, no model, microseconds per
 * sentence. A vector has two parts, each normalized and weighted, the whole
 * scaled to unit length:
 *
 * - meaning (the file's `dim` components, 100): the average of the GloVe
 *   vectors of the text's words, each weighted a / (a + p(w)) ("smooth
 *   inverse frequency", Arora et al. 2017, https://openreview.net/forum?id=SyK00v5xx)
 *   with p(w) from the word's frequency rank by Zipf's law, stopwords left
 *   out. "Who made the royal girl's sword?" lands near "The blacksmith
 *   forged a blade for the princess" although they share no word.
 * - form (`hashDim` components, 156): the hashed features of the `hash`
 *   embedder (features.ts), known words weighted as above and unknown ones
 *   fully. Names the word list does not know ("Eldoria", "Mara") and
 *   scripts it does not cover (Chinese: characters and bigrams) are matched
 *   here, and shared words count on top of shared meaning.
 *
 * The form part's share of the vector (its squared weight) is FORM_SHARE
 * plus the rest in proportion to what the word list cannot read: the weight
 * of unknown words, characters and emoji against that of known words. Plain
 * English is then compared mostly by meaning, a question naming "Eldoria"
 * mostly by that name, and Chinese text by its characters alone.
 *
 * The word vectors come from data/embeddings/glove-100d.bin (see
 * word-vectors.ts and docs/embeddings.md for the file and its credits).
 */
import { normalize } from '../vector/types.js';
import { FeatureHasher, scale, scanTokens, STOPWORDS, stripClitic } from './features.js';
import { embedEach } from './hash.js';
import { type Embedder, embeddingError, notReady } from './types.js';
import { DEFAULT_WORD_VECTORS, loadWordVectors, type WordVectors } from './word-vectors.js';

export interface GloveEmbedderOptions {
  /** Word vector file (default: the bundled data/embeddings/glove-100d.bin). */
  readonly file?: string;
  /** Components of the hashed part (default 156: 256 in all with 100-d vectors). */
  readonly hashDim?: number;
}

export const DEFAULT_GLOVE_HASH_DIM = 156;

/** SIF's a: words with p(w) well above it are weighted down (the paper's range is 1e-4 to 1e-3). */
const SIF_A = 1e-3;
/** Euler–Mascheroni: H(n) ≈ ln n + γ normalizes Zipf's p(rank) = 1 / (rank · H(n)). */
const EULER_GAMMA = 0.5772156649;
/**
 * Least share of the form part in a vector (docs/embeddings.md has the
 * measurements behind it): with only known words, shared form adds at most
 * 15% to a cosine, so shared words count without drowning shared meaning.
 */
const FORM_SHARE = 0.15;

interface Loaded {
  readonly vectors: WordVectors;
  /** SIF weight of each row. */
  readonly weights: Float32Array;
}

export class GloveEmbedder implements Embedder {
  readonly name = 'glove';
  readonly file: string;
  readonly hashDim: number;
  #loaded: Loaded | undefined;

  constructor(options: GloveEmbedderOptions = {}) {
    const hashDim = options.hashDim ?? DEFAULT_GLOVE_HASH_DIM;
    if (!Number.isInteger(hashDim) || hashDim < 8 || hashDim > 65_536) throw embeddingError('glove', `options.hashDim must be an integer from 8 to 65536 (got ${hashDim})`);
    this.hashDim = hashDim;
    this.file = options.file ?? DEFAULT_WORD_VECTORS;
  }

  get dim(): number {
    return this.#loaded ? this.#loaded.vectors.dim + this.hashDim : 0;
  }

  /** The word vectors in use (after init). */
  get vectors(): WordVectors | undefined {
    return this.#loaded?.vectors;
  }

  async init(): Promise<void> {
    if (this.#loaded) return;
    const vectors = await loadWordVectors(this.file);
    const weights = new Float32Array(vectors.count);
    const harmonic = Math.log(vectors.sourceVocabulary) + EULER_GAMMA;
    for (let i = 0; i < vectors.count; i++) {
      const p = 1 / (vectors.ranks[i]! * harmonic);
      weights[i] = SIF_A / (SIF_A + p);
    }
    this.#loaded = { vectors, weights };
  }

  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const loaded = this.#loaded;
    if (!loaded) return Promise.reject(notReady(this.name));
    return embedEach(texts, signal, (text) => this.#embedOne(loaded, text));
  }

  /** One text's vector, synchronously (after init). */
  embedOne(text: string): Float32Array {
    if (!this.#loaded) throw notReady(this.name);
    return this.#embedOne(this.#loaded, text);
  }

  #embedOne({ vectors, weights }: Loaded, text: string): Float32Array {
    const d = vectors.dim;
    const out = new Float32Array(d + this.hashDim);
    const hasher = new FeatureHasher(out, d, this.hashDim);
    const { index, scales, vectors: rows } = vectors;
    // Weight of what the word list reads (known words) and of what it cannot.
    let known = 0;
    let unknown = 0;
    scanTokens(text, {
      word(token) {
        if (STOPWORDS.has(token)) return;
        let base = token;
        let row = index.get(token);
        if (row === undefined) {
          base = stripClitic(token);
          if (base === '' || STOPWORDS.has(base)) return;
          if (base !== token) row = index.get(base);
        }
        if (row === undefined) {
          // Unknown: a name, a rare word, a number. Rare means telling, so full weight.
          hasher.word(base, 1);
          unknown += 1;
          return;
        }
        const w = weights[row]!;
        known += w;
        const f = w * scales[row]!;
        const at = row * d;
        for (let j = 0; j < d; j++) out[j] = out[j]! + f * rows[at + j]!;
        hasher.word(base, w);
      },
      characters(run) {
        unknown += hasher.characters(run);
      },
      symbol(symbol) {
        hasher.symbol(symbol);
        unknown += 1;
      },
    });
    const form = FORM_SHARE + ((1 - FORM_SHARE) * unknown) / (unknown + known || 1);
    normalize(out.subarray(0, d));
    normalize(out.subarray(d));
    scale(out, Math.sqrt(1 - form), 0, d);
    scale(out, Math.sqrt(form), d);
    // Unit length already, unless a part is zero (no known words, or nothing at all).
    return normalize(out);
  }

  async close(): Promise<void> {
    this.#loaded = undefined;
  }
}
