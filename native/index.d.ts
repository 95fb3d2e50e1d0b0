/**
 * Types of npcd's native module (native/src/lib.rs), written by hand and kept
 * in step with the exports registered in native/src/bind_*.rs. Load it with
 * `loadNative()` from src/native/index.ts, never by path.
 *
 * Every function throws an `Error` with a `code` starting `ERR_NATIVE_` on
 * failure; no failure crashes the process.
 */

/** Version of the JS ↔ native contract; the loader refuses a binary whose version differs. */
export const abiVersion: number;

/**
 * Panics inside native code on purpose; the guard every export runs under
 * turns it into a thrown `ERR_NATIVE_PANIC` (used by the tests to show that
 * no panic reaches Node).
 */
export function panicForTest(): never;

// MessagePack

/** Limits applied when decoding untrusted MessagePack (each optional; omitted ones take the default in parentheses). */
export interface DecodeLimits {
  /** Largest input accepted (1 MiB). */
  maxInputBytes?: number;
  /** Deepest nesting of arrays and maps (64). */
  maxDepth?: number;
  /** Longest string, in UTF-8 bytes (1 MiB). */
  maxStrBytes?: number;
  /** Longest bin value (1 MiB). */
  maxBinBytes?: number;
  /** Most elements in one array, or pairs in one map (65,536). */
  maxContainerLen?: number;
  /** Most values in the whole input (1,048,576). */
  maxTotalItems?: number;
}

/**
 * Thrown by `decode` for malformed, truncated or over-limit input:
 * `code` is `ERR_NATIVE_MSGPACK_DECODE`, `offset` the byte where decoding
 * failed, `reason` a stable short code (`truncated`, `invalid_marker`,
 * `invalid_utf8`, `too_deep`, `too_long`, `too_many_items`,
 * `input_too_large`, `trailing_bytes`, `invalid_timestamp`).
 */
export interface DecodeError extends Error {
  code: 'ERR_NATIVE_MSGPACK_DECODE';
  offset: number;
  reason: string;
}

/**
 * Encodes any JS value as MessagePack, byte for byte as msgpackr does with
 * `{ useRecords: false, variableMapSize: true }`: integers in the 32-bit
 * ranges in their smallest int format, other numbers as float64, BigInt as
 * int64/uint64, strings, Buffers/typed arrays as bin, Dates as the timestamp
 * extension, arrays, and plain objects as maps (own enumerable string keys).
 * `undefined` (and a function) is written as msgpackr writes it, the
 * fixext1 `d4 00 00`, which `decode` reads back as `undefined`.
 * Throws `ERR_NATIVE_MSGPACK_ENCODE` for values MessagePack cannot hold
 * (symbols, BigInts outside the 64-bit ranges, cycles or nesting deeper than 512).
 */
export function encode(value: unknown): Buffer;

/**
 * Decodes exactly one MessagePack value. Maps become plain objects (keys
 * converted to strings; `__proto__` is an ordinary own property), int64/uint64
 * become BigInt, bin becomes a Buffer (a copy), timestamps become Dates, other
 * extension types `{ type, data }`. Limits default to `setDecodeLimits`.
 */
export function decode(bytes: Uint8Array | ArrayBuffer, limits?: DecodeLimits): unknown;

/** Decodes a MessagePack stream: every value in `bytes`, back to back. */
export function decodeStream(bytes: Uint8Array | ArrayBuffer, limits?: DecodeLimits): unknown[];

/** Map keys a decode tape names by index (op 8): the protocol's field names. */
export const knownKeys: readonly string[];

/** A decode tape's arrays, bound by `createDecodeTape`. */
export interface DecodeTape {
  readonly __brand: 'DecodeTape';
}

/**
 * Binds the arrays of a "decode tape", the flat layout in which
 * `decodeToTape` hands a decoded value back for JS to build (building
 * objects through N-API costs more than msgpackr's whole decode). The arrays
 * must stay owned by the caller; the tape keeps them alive.
 */
export function createDecodeTape(ops: Uint8Array, nums: Float64Array): DecodeTape;

/**
 * Decodes exactly one MessagePack value with the `setDecodeLimits` limits
 * (errors as `decode`) and lays it out on the tape in pre-order: `ops[i]` is
 * 0 nil, 1 false, 2 true, 3 number, 4 string, 5 array, 6 map (pairs follow
 * as key, value), 7 undefined, 8 a map key from `knownKeys` (its index is in
 * `nums`); numbers, string lengths (UTF-16 units), array/map lengths and key
 * indexes are taken in order from `nums`; the strings, joined, are
 * the returned string. Returns undefined — call `decode` instead — when the
 * value holds something the tape does not cover (BigInt, bin, ext,
 * timestamps, arrays or maps as map keys) or does not fit the arrays.
 */
export function decodeToTape(tape: DecodeTape, bytes: Uint8Array | ArrayBuffer): string | undefined;

/** Sets the limits `decode` uses when called without its own (for this thread; omitted fields take their defaults). */
export function setDecodeLimits(limits: DecodeLimits): void;

/** A frame tape's arrays, bound by `createFrameTape`. */
export interface FrameTape {
  readonly __brand: 'FrameTape';
}

/**
 * Binds the arrays of a "frame tape", the layout in which JS hands a run of
 * server frames to `encodeFrameTape`. The arrays must stay owned by the
 * caller (never transferred or detached); the tape keeps them alive.
 *
 * `kinds[i]` is the i-th frame's type (1 token, 2 start, 3 done, 4 error,
 * 5 welcome, 6 pong); its number fields are taken in order from `nums` (NaN:
 * field absent), its string fields in order from the `text` passed to
 * `encodeFrameTape`, one after another, with their UTF-16 lengths in `lens`
 * (0xFFFFFFFF: absent). Fields per kind, numbers before the `;`, strings after:
 * token: seq; id, text — start: seq; id, character, state —
 * done: seq, usage.prompt_tokens, usage.completion_tokens; id, text, state, finish —
 * error: seq?; id?, code, message — welcome: seq, heartbeat_ms, resumed, batch?; session —
 * pong: ts. Each map is written with its fields in protocol order
 * (docs/protocol.md). `out` receives the encoded frames back to back and
 * `ends[i]` the end offset of the i-th.
 *
 * Reading object properties through N-API costs more than encoding a frame,
 * so src/protocol/codec.ts lays the tape out in JS and crosses once per run.
 */
export function createFrameTape(kinds: Uint8Array, nums: Float64Array, lens: Uint32Array, out: Uint8Array, ends: Uint32Array): FrameTape;

/**
 * Encodes the first `count` frames of the tape into its `out` array and
 * returns how many it encoded: it stops before a frame that would not fit
 * in `out`, and at the end of `ends`.
 */
export function encodeFrameTape(tape: FrameTape, count: number, text: string): number;

// Vector index

/** Distance: `cosine` (1 - cos; vectors are normalised when stored), `ip` (1 - dot, as hnswlib) or `l2` (squared Euclidean). */
export type VectorMetric = 'cosine' | 'ip' | 'l2';

/** `flat`: exact search over every vector. `hnsw`: approximate graph search. */
export type VectorIndexKind = 'flat' | 'hnsw';

export interface VectorIndexOptions {
  /** Components per vector, 1 to 65,536. */
  dim: number;
  metric: VectorMetric;
  kind: VectorIndexKind;
  /** HNSW: links per node on upper levels, 2M on level 0; 2 to 256 (16). */
  m?: number;
  /** HNSW: beam width while inserting, 1 to 65,536 (200). */
  efConstruction?: number;
  /** HNSW: beam width while searching, raised to k when smaller (64). */
  ef?: number;
  /** HNSW: seed of the level generator; the same seed and inserts give the same graph (100). */
  seed?: number;
}

/** Nearest first; `distances[i]` belongs to `ids[i]`. */
export interface VectorSearchResult {
  ids: Uint32Array;
  distances: Float32Array;
}

/**
 * An index of f32 vectors under caller-chosen u32 ids, in native memory.
 *
 * Failures throw (or, for `searchAsync`, reject with) an `Error` whose
 * `code` is one of `ERR_NATIVE_VECTOR_BAD_PARAM` (an argument of the wrong
 * type or out of range), `ERR_NATIVE_VECTOR_DIM_MISMATCH`,
 * `ERR_NATIVE_VECTOR_NON_FINITE` (NaN or ±Infinity in a vector),
 * `ERR_NATIVE_VECTOR_CORRUPT` / `ERR_NATIVE_VECTOR_UNSUPPORTED_VERSION`
 * (`load`), `ERR_NATIVE_VECTOR_CAPACITY`, `ERR_NATIVE_VECTOR_INVALID_THIS`,
 * `ERR_NATIVE_VECTOR_POISONED` (an earlier internal panic interrupted a
 * write), `ERR_NATIVE_VECTOR_PANIC` or `ERR_NATIVE_VECTOR_INTERNAL`.
 */
export class VectorIndex {
  constructor(options: VectorIndexOptions);
  /** Rebuilds an index from `save()` output; validates every byte (ERR_NATIVE_VECTOR_CORRUPT). */
  static load(bytes: Uint8Array): VectorIndex;
  /** Live vectors. */
  readonly size: number;
  readonly dim: number;
  readonly metric: VectorMetric;
  readonly kind: VectorIndexKind;
  /** HNSW search beam width (0 for a flat index, where setting it only validates). */
  ef: number;
  /** Same as assigning `ef`. */
  setEf(ef: number): void;
  /** Adds `id`, or replaces its vector. `vector.length` must equal `dim`. */
  add(id: number, vector: Float32Array): void;
  /** Adds `ids.length` vectors laid out back to back in `vectors`; all are checked before any is added. */
  addBatch(ids: Uint32Array, vectors: Float32Array): void;
  /** Removes `id`; false when it was not present. */
  remove(id: number): boolean;
  /**
   * The `k` nearest vectors (fewer when the index, or the filter, holds
   * fewer). `filter` restricts results to those ids; HNSW still returns
   * min(k, allowed) results, scanning the allowed ids exactly when the
   * filter is too selective for the graph.
   */
  search(query: Float32Array, k: number, filter?: Uint32Array | null): VectorSearchResult;
  /** `search` on the libuv thread pool; the query and filter are copied first. */
  searchAsync(query: Float32Array, k: number, filter?: Uint32Array | null): Promise<VectorSearchResult>;
  /** Heap bytes held by the index (approximate; capacities, not lengths). */
  memoryBytes(): number;
  /** The whole index as versioned, checksummed little-endian bytes. */
  save(): Buffer;
}
