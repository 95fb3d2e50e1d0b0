/**
 * The vector index interface over the native module's `VectorIndex` (Rust:
 * native/src/vector, flat or HNSW). Arguments are validated natively, and
 * failures carry `ERR_NATIVE_VECTOR_*` codes; `searchAsync` runs on the
 * libuv pool. Constructing one throws `Failed to load native binding` (code
 * ERR_NATIVE_LOAD) when the module is unavailable; falling back is the
 * caller's choice.
 */
import { loadNative, type NativeModule } from '../../native/index.js';
import type { SavableVectorIndex, VectorIndexKind, VectorIndexOptions, VectorMetric, VectorSearchResult } from './types.js';

type NativeIndex = InstanceType<NativeModule['VectorIndex']>;

/** Set only while `load` constructs a wrapper around an index it loaded. */
let adopting: NativeIndex | undefined;

export class NativeVectorIndex implements SavableVectorIndex {
  readonly implementation = 'native' as const;
  readonly #ix: NativeIndex;

  constructor(options: VectorIndexOptions) {
    if (adopting) {
      this.#ix = adopting;
      adopting = undefined;
    } else {
      this.#ix = new (loadNative().VectorIndex)(options);
    }
  }

  /** Restores an index from `save()` bytes; throws ERR_NATIVE_VECTOR_CORRUPT for damaged input. */
  static load(bytes: Uint8Array): NativeVectorIndex {
    const ix = loadNative().VectorIndex.load(bytes);
    adopting = ix;
    try {
      return new NativeVectorIndex({ dim: ix.dim, metric: ix.metric, kind: ix.kind });
    } finally {
      adopting = undefined;
    }
  }

  get kind(): VectorIndexKind {
    return this.#ix.kind;
  }

  get metric(): VectorMetric {
    return this.#ix.metric;
  }

  get dim(): number {
    return this.#ix.dim;
  }

  get size(): number {
    return this.#ix.size;
  }

  get ef(): number {
    return this.#ix.ef;
  }

  set ef(value: number) {
    this.#ix.ef = value;
  }

  add(id: number, vector: Float32Array): void {
    this.#ix.add(id, vector);
  }

  addBatch(ids: Uint32Array, vectors: Float32Array): void {
    this.#ix.addBatch(ids, vectors);
  }

  remove(id: number): boolean {
    return this.#ix.remove(id);
  }

  search(query: Float32Array, k: number, filter?: Uint32Array): VectorSearchResult {
    return this.#ix.search(query, k, filter);
  }

  searchAsync(query: Float32Array, k: number, filter?: Uint32Array): Promise<VectorSearchResult> {
    return this.#ix.searchAsync(query, k, filter);
  }

  memoryBytes(): number {
    return this.#ix.memoryBytes();
  }

  save(): Buffer {
    return this.#ix.save();
  }
}
