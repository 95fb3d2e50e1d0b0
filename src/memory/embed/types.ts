/**
 * An embedder turns texts into vectors whose cosine similarity says how
 * close their meanings are: memory recall embeds the user's message and
 * searches the session's memories (src/memory/vector/) with it. The shape
 * crosses from memory to the dialogue turn and the server's start-up, so it
 * lives here; docs/embeddings.md compares the implementations.
 */
import { NpcdError } from '../../errors.js';
import { normalize } from '../vector/types.js';

export interface Embedder {
  /** What runs, for logs and metrics: "glove", "hash", "ollama:nomic-embed-text", "llama:model.gguf". */
  readonly name: string;
  /** Components per vector; known after init() (0 before). */
  readonly dim: number;
  /** Loads data or a model, or asks the provider for its dimension. Call once before embed(). */
  init(): Promise<void>;
  /**
   * One vector per text, in order, each of length `dim` and unit length; a
   * text with nothing to embed (empty, whitespace) gets the zero vector,
   * which is similar to nothing. Failures reject with NpcdError
   * ERR_EMBEDDING_FAILED; an abort of `signal` rejects with its reason.
   */
  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]>;
  /** Frees the data, model or connections. */
  close(): Promise<void>;
}

/** ERR_EMBEDDING_FAILED naming the embedder: "embedder ollama:all-minilm: connection refused". */
export function embeddingError(name: string, message: string, cause?: unknown): NpcdError {
  return new NpcdError('ERR_EMBEDDING_FAILED', `embedder ${name}: ${message}`, { cause, detail: { embedder: name } });
}

/** The error for embed() before init() finished. */
export function notReady(name: string): NpcdError {
  return embeddingError(name, 'embed() was called before init() completed');
}

/** True when `text` has nothing but whitespace. */
export function isBlank(text: string): boolean {
  return !/\S/.test(text);
}

/**
 * Embeds the texts that are not blank through `embedSome` (which gets them
 * in order and must return one vector per text) and gives blank texts the
 * zero vector, so providers that refuse empty input (OpenAI) never see it.
 */
export async function embedNonBlank(texts: readonly string[], dim: number, embedSome: (texts: string[]) => Promise<Float32Array[]>): Promise<Float32Array[]> {
  const out: Float32Array[] = new Array(texts.length);
  const positions: number[] = [];
  const wanted: string[] = [];
  texts.forEach((text, i) => {
    if (isBlank(text)) out[i] = new Float32Array(dim);
    else {
      positions.push(i);
      wanted.push(text);
    }
  });
  if (wanted.length > 0) {
    const vectors = await embedSome(wanted);
    positions.forEach((p, k) => (out[p] = vectors[k]!));
  }
  return out;
}

/**
 * Copies `values` into a unit-length Float32Array after checking it has
 * `dim` finite numbers; the message of a failure says which check failed.
 * A zero vector stays zero.
 */
export function unitVector(values: unknown, dim: number, what: string): Float32Array {
  if (!Array.isArray(values) && !(values instanceof Float32Array) && !(values instanceof Float64Array)) {
    throw new Error(`${what} is not an array of numbers`);
  }
  if (values.length !== dim) throw new Error(`${what} has ${values.length} dimensions, expected ${dim}`);
  const v = new Float32Array(dim);
  for (let i = 0; i < dim; i++) {
    const x: unknown = values[i];
    if (typeof x !== 'number' || !Number.isFinite(x)) throw new Error(`${what} holds ${JSON.stringify(x) ?? String(x)} at position ${i}, not a finite number`);
    v[i] = x;
  }
  return normalize(v);
}
