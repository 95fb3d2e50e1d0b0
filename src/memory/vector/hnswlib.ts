/**
 * The vector index interface over hnswlib-node's HierarchicalNSW: the HNSW
 * fallback when the native module is not used.
 *
 * hnswlib-node's contract differs from ours in ways handled here:
 * - ids are hnswlib "labels"; removal is `markDelete` (the node stays in the
 *   graph), and re-adding a removed label un-deletes and updates it;
 * - capacity is fixed at `initIndex` and must grow through `resizeIndex`,
 *   which counts every label ever added, removed ones included;
 * - points and queries cross as JS arrays, not typed arrays;
 * - `searchKnn` rejects k above capacity, and with deletions or a filter it
 *   can return fewer than k, so a short answer is retried with a beam wide
 *   enough to reach every eligible point;
 * - its `cosine` space normalises vectors itself, like ours.
 * hnswlib-node has no asynchronous search, so `searchAsync` runs the search
 * before resolving.
 */
import { createRequire } from 'node:module';
import type { HierarchicalNSW } from 'hnswlib-node';
import { emptyResult } from './flat.js';
import {
  checkBatch,
  checkSearch,
  checkId,
  checkInt,
  checkOptions,
  checkVector,
  MAX_EF,
  VectorErrorCode,
  VectorIndexError,
  type VectorIndex,
  type VectorIndexOptions,
  type VectorMetric,
  type VectorSearchResult,
} from './types.js';

type HnswlibModule = typeof import('hnswlib-node');
const require = createRequire(import.meta.url);
let lib: HnswlibModule | undefined;

/** Loaded on first use, so servers running the native index never load hnswlib-node's addon. */
function hnswlib(): HnswlibModule {
  return (lib ??= require('hnswlib-node') as HnswlibModule);
}

const INITIAL_CAPACITY = 1024;

export class HnswlibVectorIndex implements VectorIndex {
  readonly implementation = 'hnswlib-node' as const;
  readonly kind = 'hnsw' as const;
  readonly metric: VectorMetric;
  readonly dim: number;
  readonly #m: number;
  readonly #index: HierarchicalNSW;
  #capacity = INITIAL_CAPACITY;
  /** Ids currently searchable. */
  readonly #live = new Set<number>();
  /** Every label hnswlib holds, removed ones included (they use capacity). */
  readonly #labels = new Set<number>();

  constructor(options: VectorIndexOptions) {
    const o = checkOptions('HnswlibVectorIndex', options);
    if (o.kind !== 'hnsw') {
      throw new VectorIndexError(VectorErrorCode.badParam, `HnswlibVectorIndex: only kind 'hnsw' is backed by hnswlib-node, got '${o.kind}'`);
    }
    this.dim = o.dim;
    this.metric = o.metric;
    this.#m = o.m;
    this.#index = new (hnswlib().HierarchicalNSW)(o.metric, o.dim);
    this.#index.initIndex({ maxElements: INITIAL_CAPACITY, m: o.m, efConstruction: o.efConstruction, randomSeed: o.seed, allowReplaceDeleted: false });
    this.#index.setEf(o.ef);
  }

  get size(): number {
    return this.#live.size;
  }

  get ef(): number {
    return this.#index.getEf();
  }

  set ef(value: number) {
    this.#index.setEf(checkInt('HnswlibVectorIndex.ef', 'ef', value, 1, MAX_EF));
  }

  /** Makes room for `extra` more labels. */
  #reserve(extra: number): void {
    const need = this.#labels.size + extra;
    if (need <= this.#capacity) return;
    this.#capacity = Math.max(need, this.#capacity * 2);
    this.#index.resizeIndex(this.#capacity);
  }

  #put(id: number, v: Float32Array): void {
    this.#index.addPoint(Array.from(v), id);
    this.#labels.add(id);
    this.#live.add(id);
  }

  add(id: number, vector: Float32Array): void {
    checkId('HnswlibVectorIndex.add', id);
    checkVector('HnswlibVectorIndex.add', 'vector', vector, this.dim);
    if (!this.#labels.has(id)) this.#reserve(1);
    this.#put(id, vector);
  }

  addBatch(ids: Uint32Array, vectors: Float32Array): void {
    checkBatch('HnswlibVectorIndex.addBatch', ids, vectors, this.dim);
    const fresh = new Set<number>();
    for (const id of ids) if (!this.#labels.has(id)) fresh.add(id);
    this.#reserve(fresh.size);
    const dim = this.dim;
    for (let i = 0; i < ids.length; i++) this.#put(ids[i]!, vectors.subarray(i * dim, (i + 1) * dim));
  }

  remove(id: number): boolean {
    checkId('HnswlibVectorIndex.remove', id);
    if (!this.#live.delete(id)) return false;
    this.#index.markDelete(id);
    return true;
  }

  search(query: Float32Array, k: number, filter?: Uint32Array): VectorSearchResult {
    const allowed = checkSearch('HnswlibVectorIndex.search', query, k, filter, this.dim);
    let accept: ((label: number) => boolean) | undefined;
    let eligible = this.#live.size;
    if (allowed) {
      const set = new Set<number>();
      for (const id of allowed) if (this.#live.has(id)) set.add(id);
      accept = (label) => set.has(label);
      eligible = set.size;
    }
    k = Math.min(k, eligible);
    if (k === 0) return emptyResult();
    const q = Array.from(query);
    let res = this.#index.searchKnn(q, k, accept);
    if (res.neighbors.length < k) {
      // Removed or filtered-out nodes filled the beam: widen it to cover
      // every eligible point, then restore the caller's setting.
      const ef = this.#index.getEf();
      this.#index.setEf(Math.max(ef, eligible));
      try {
        res = this.#index.searchKnn(q, k, accept);
      } finally {
        this.#index.setEf(ef);
      }
    }
    // Ties in the order the other implementations use: by id.
    const order = res.neighbors.map((_, i) => i).sort((a, b) => res.distances[a]! - res.distances[b]! || res.neighbors[a]! - res.neighbors[b]!);
    return {
      ids: Uint32Array.from(order, (i) => res.neighbors[i]!),
      distances: Float32Array.from(order, (i) => res.distances[i]!),
    };
  }

  async searchAsync(query: Float32Array, k: number, filter?: Uint32Array): Promise<VectorSearchResult> {
    return this.search(query, k, filter);
  }

  /**
   * An estimate from hnswlib's layout (it exposes no byte count): per slot
   * of capacity, the level-0 block (2M+1 links, the vector, an 8-byte
   * label), a level and a lock; per label, upper levels (on average 1/(M-1)
   * lists of M+1 links) and a hash map entry; plus its fixed table of 65,536
   * label locks.
   */
  memoryBytes(): number {
    const m = this.#m;
    const perSlot = (2 * m + 1) * 4 + this.dim * 4 + 8 + 4 + 40 + 2;
    const perLabel = ((m + 1) * 4) / (m - 1) + 48;
    return Math.round(this.#capacity * perSlot + this.#labels.size * perLabel + 65_536 * 40);
  }
}
