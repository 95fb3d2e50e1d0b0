/**
 * The vector index the server's memory uses, whichever implementation backs
 * it: the native module (Rust, flat or HNSW), hnswlib-node (HNSW), or plain
 * JS (flat). All three take Float32Array vectors under caller-chosen u32
 * ids, return nearest-first `{ ids, distances }`, and throw the same error
 * codes, so callers handle one contract.
 */

// The option and result shapes are the native binding's (native/index.d.ts),
// so every implementation takes and returns exactly what the native one does.
export type { VectorIndexKind, VectorIndexOptions, VectorMetric, VectorSearchResult } from '../../../native/index.js';
import type { VectorIndexKind, VectorIndexOptions, VectorMetric, VectorSearchResult } from '../../../native/index.js';

/** Which code runs the index (for logs and metrics). */
export type VectorImplementation = 'native' | 'hnswlib-node' | 'js';

export interface VectorIndex {
  readonly implementation: VectorImplementation;
  readonly kind: VectorIndexKind;
  readonly metric: VectorMetric;
  readonly dim: number;
  /** Live vectors. */
  readonly size: number;
  /** HNSW search beam width; 0 for flat indexes (assigning validates, then is ignored). */
  ef: number;
  /** Adds `id` (an integer 0 to 2^32-1), or replaces its vector. */
  add(id: number, vector: Float32Array): void;
  /** Adds `ids.length` vectors laid out back to back; all are checked before any is added. */
  addBatch(ids: Uint32Array, vectors: Float32Array): void;
  /** Removes `id`; false when it was not present. */
  remove(id: number): boolean;
  /** The k nearest (fewer when fewer exist or pass `filter`), restricted to `filter`'s ids when given. */
  search(query: Float32Array, k: number, filter?: Uint32Array): VectorSearchResult;
  /** `search` without blocking the event loop where the implementation can (native: libuv pool). */
  searchAsync(query: Float32Array, k: number, filter?: Uint32Array): Promise<VectorSearchResult>;
  /** Approximate bytes held by the index. */
  memoryBytes(): number;
}

/** An index that can be written out and restored (the native one). */
export interface SavableVectorIndex extends VectorIndex {
  /** Versioned, checksummed bytes; restore with the implementation's `load`. */
  save(): Buffer;
}

/**
 * Argument error codes. They are the native binding's, so callers see the
 * same code whichever implementation runs (the native index can also raise
 * others, e.g. ERR_NATIVE_VECTOR_CORRUPT from `load`; see native/index.d.ts).
 */
export const VectorErrorCode = {
  badParam: 'ERR_NATIVE_VECTOR_BAD_PARAM',
  dimMismatch: 'ERR_NATIVE_VECTOR_DIM_MISMATCH',
  nonFinite: 'ERR_NATIVE_VECTOR_NON_FINITE',
} as const;

export type VectorErrorCode = (typeof VectorErrorCode)[keyof typeof VectorErrorCode];

export class VectorIndexError extends Error {
  readonly code: VectorErrorCode;
  constructor(code: VectorErrorCode, message: string) {
    super(message);
    this.name = 'VectorIndexError';
    this.code = code;
  }
}

export const MAX_DIM = 65_536;
export const MAX_EF = 65_536;
export const MAX_M = 256;

// ---- Argument checks shared by the JS implementations -----------------------

function isInt(n: unknown, min: number, max: number): n is number {
  return typeof n === 'number' && Number.isInteger(n) && n >= min && n <= max;
}

export function checkInt(where: string, name: string, n: unknown, min: number, max: number): number {
  if (!isInt(n, min, max)) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: ${name} must be an integer from ${min} to ${max}, got ${String(n)}`);
  return n;
}

export function checkId(where: string, id: unknown): number {
  return checkInt(where, 'id', id, 0, 0xffff_ffff);
}

/** Validates a vector argument: a Float32Array of `dim` finite values. */
export function checkVector(where: string, name: string, v: unknown, dim: number): Float32Array {
  if (!(v instanceof Float32Array)) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: ${name} must be a Float32Array`);
  if (v.length !== dim) throw new VectorIndexError(VectorErrorCode.dimMismatch, `${where}: ${name} has ${v.length} components, the index has dim ${dim}`);
  checkFinite(where, name, v);
  return v;
}

export function checkFinite(where: string, name: string, v: Float32Array): void {
  for (let i = 0; i < v.length; i++) {
    if (!Number.isFinite(v[i])) throw new VectorIndexError(VectorErrorCode.nonFinite, `${where}: ${name} contains NaN or an infinite value`);
  }
}

export function checkBatch(where: string, ids: unknown, vectors: unknown, dim: number): { ids: Uint32Array; vectors: Float32Array } {
  if (!(ids instanceof Uint32Array)) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: ids must be a Uint32Array`);
  if (!(vectors instanceof Float32Array)) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: vectors must be a Float32Array`);
  if (vectors.length !== ids.length * dim) {
    throw new VectorIndexError(VectorErrorCode.dimMismatch, `${where}: vectors has ${vectors.length} values, expected ids.length (${ids.length}) x dim (${dim})`);
  }
  checkFinite(where, 'vectors', vectors);
  return { ids, vectors };
}

export function checkFilter(where: string, filter: unknown): Uint32Array | undefined {
  if (filter === undefined || filter === null) return undefined;
  if (!(filter instanceof Uint32Array)) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: filter must be a Uint32Array`);
  return filter;
}

/** The arguments of a search: a query of the index's dimension, k, and an optional id filter (returned). */
export function checkSearch(where: string, query: unknown, k: unknown, filter: unknown, dim: number): Uint32Array | undefined {
  checkVector(where, 'query', query, dim);
  checkInt(where, 'k', k, 0, 0xffff_ffff);
  return checkFilter(where, filter);
}

/** Validates the constructor options of a JS implementation. */
export function checkOptions(where: string, o: VectorIndexOptions): Required<VectorIndexOptions> {
  if (typeof o !== 'object' || o === null) throw new VectorIndexError(VectorErrorCode.badParam, `${where}: options must be an object like { dim, metric, kind }`);
  const dim = checkInt(where, 'options.dim', o.dim, 1, MAX_DIM);
  if (o.metric !== 'cosine' && o.metric !== 'ip' && o.metric !== 'l2') {
    throw new VectorIndexError(VectorErrorCode.badParam, `${where}: options.metric must be 'cosine', 'ip' or 'l2', got '${String(o.metric)}'`);
  }
  if (o.kind !== 'flat' && o.kind !== 'hnsw') {
    throw new VectorIndexError(VectorErrorCode.badParam, `${where}: options.kind must be 'flat' or 'hnsw', got '${String(o.kind)}'`);
  }
  return {
    dim,
    metric: o.metric,
    kind: o.kind,
    m: o.m === undefined ? 16 : checkInt(where, 'options.m', o.m, 2, MAX_M),
    efConstruction: o.efConstruction === undefined ? 200 : checkInt(where, 'options.efConstruction', o.efConstruction, 1, MAX_EF),
    ef: o.ef === undefined ? 64 : checkInt(where, 'options.ef', o.ef, 1, MAX_EF),
    seed: o.seed === undefined ? 100 : checkInt(where, 'options.seed', o.seed, 0, Number.MAX_SAFE_INTEGER),
  };
}

/** Scales `v` in place to unit length (a zero vector stays zero). */
export function normalize(v: Float32Array): Float32Array {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  if (s > 0) {
    const inv = 1 / Math.sqrt(s);
    for (let i = 0; i < v.length; i++) v[i] = v[i]! * inv;
  }
  return v;
}
