/**
 * Vector search for character memory. `createVectorIndex` picks the
 * implementation: the native module when asked for (it throws ERR_NATIVE_LOAD
 * when the module cannot load; logging and falling back is the caller's
 * decision), otherwise hnswlib-node for HNSW and plain JS for exact search.
 */
import { JsFlatVectorIndex } from './flat.js';
import { HnswlibVectorIndex } from './hnswlib.js';
import { NativeVectorIndex } from './native.js';
import type { VectorImplementation, VectorIndex, VectorIndexOptions, VectorSearchResult } from './types.js';

export { JsFlatVectorIndex } from './flat.js';
export { HnswlibVectorIndex } from './hnswlib.js';
export { NativeVectorIndex } from './native.js';
export * from './types.js';

export interface VectorBackendChoice {
  /** Use the native module (the `--native` setting). */
  native: boolean;
}

/** The implementation `createVectorIndex` uses for these options. */
export function implementationName(options: Pick<VectorIndexOptions, 'kind'>, choice: VectorBackendChoice): VectorImplementation {
  if (choice.native) return 'native';
  return options.kind === 'hnsw' ? 'hnswlib-node' : 'js';
}

export function createVectorIndex(options: VectorIndexOptions, choice: VectorBackendChoice): VectorIndex {
  switch (implementationName(options, choice)) {
    case 'native':
      return new NativeVectorIndex(options);
    case 'hnswlib-node':
      return new HnswlibVectorIndex(options);
    case 'js':
      return new JsFlatVectorIndex(options);
  }
}

/**
 * Exact-search work (vectors × dimensions) from which `searchOffLoop` leaves
 * the event loop: about 2^20 multiply-adds take 50–100 µs here, more than a
 * hop to the libuv pool and back costs. HNSW searches take tens of
 * microseconds at any size measured (bench/README.md) and stay on the loop.
 */
export const OFF_LOOP_SEARCH_WORK = 1 << 20;

/** Whether `searchOffLoop` runs a search of `index` on the thread pool. */
export function runsOffLoop(index: VectorIndex): boolean {
  return index.implementation === 'native' && index.kind === 'flat' && index.size * index.dim >= OFF_LOOP_SEARCH_WORK;
}

/**
 * Searches `index` without holding the event loop when that pays: large
 * native exact indexes search on the libuv pool, everything else inline.
 */
export function searchOffLoop(index: VectorIndex, query: Float32Array, k: number, filter?: Uint32Array): Promise<VectorSearchResult> {
  if (runsOffLoop(index)) return index.searchAsync(query, k, filter);
  try {
    return Promise.resolve(index.search(query, k, filter));
  } catch (err) {
    return Promise.reject(err);
  }
}
