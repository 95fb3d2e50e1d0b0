/**
 * Exact search in plain JS: the fallback when neither the native module nor
 * hnswlib-node is wanted. Vectors live in one growable Float32Array (rows
 * stay dense: removal moves the last row into the hole), distances are
 * typed-array loops with four accumulators, and the k best are kept in a
 * bounded max-heap so most rows cost one comparison after their distance.
 */
import {
  checkBatch,
  checkSearch,
  checkId,
  checkInt,
  checkOptions,
  checkVector,
  MAX_EF,
  normalize,
  type VectorIndex,
  type VectorIndexOptions,
  type VectorMetric,
  type VectorSearchResult,
} from './types.js';

export class JsFlatVectorIndex implements VectorIndex {
  readonly implementation = 'js' as const;
  readonly kind = 'flat' as const;
  readonly metric: VectorMetric;
  readonly dim: number;
  #data: Float32Array;
  #ids: Uint32Array;
  /** id -> row */
  #rows = new Map<number, number>();
  #n = 0;

  constructor(options: VectorIndexOptions) {
    const o = checkOptions('JsFlatVectorIndex', options);
    this.dim = o.dim;
    this.metric = o.metric;
    this.#data = new Float32Array(16 * o.dim);
    this.#ids = new Uint32Array(16);
  }

  get size(): number {
    return this.#n;
  }

  get ef(): number {
    return 0;
  }

  set ef(value: number) {
    checkInt('JsFlatVectorIndex.ef', 'ef', value, 1, MAX_EF);
  }

  #grow(rows: number): void {
    if (rows <= this.#ids.length) return;
    const cap = Math.max(rows, this.#ids.length * 2);
    const data = new Float32Array(cap * this.dim);
    data.set(this.#data.subarray(0, this.#n * this.dim));
    const ids = new Uint32Array(cap);
    ids.set(this.#ids.subarray(0, this.#n));
    this.#data = data;
    this.#ids = ids;
  }

  #put(id: number, v: Float32Array): void {
    let row = this.#rows.get(id);
    if (row === undefined) {
      this.#grow(this.#n + 1);
      row = this.#n++;
      this.#ids[row] = id;
      this.#rows.set(id, row);
    }
    const at = row * this.dim;
    this.#data.set(v, at);
    if (this.metric === 'cosine') normalize(this.#data.subarray(at, at + this.dim));
  }

  add(id: number, vector: Float32Array): void {
    checkId('JsFlatVectorIndex.add', id);
    this.#put(id, checkVector('JsFlatVectorIndex.add', 'vector', vector, this.dim));
  }

  addBatch(ids: Uint32Array, vectors: Float32Array): void {
    const b = checkBatch('JsFlatVectorIndex.addBatch', ids, vectors, this.dim);
    this.#grow(this.#n + b.ids.length);
    const dim = this.dim;
    for (let i = 0; i < b.ids.length; i++) this.#put(b.ids[i]!, b.vectors.subarray(i * dim, (i + 1) * dim));
  }

  remove(id: number): boolean {
    checkId('JsFlatVectorIndex.remove', id);
    const row = this.#rows.get(id);
    if (row === undefined) return false;
    this.#rows.delete(id);
    const last = --this.#n;
    if (row !== last) {
      const dim = this.dim;
      this.#data.copyWithin(row * dim, last * dim, (last + 1) * dim);
      const moved = this.#ids[last]!;
      this.#ids[row] = moved;
      this.#rows.set(moved, row);
    }
    return true;
  }

  search(query: Float32Array, k: number, filter?: Uint32Array): VectorSearchResult {
    const allowed = checkSearch('JsFlatVectorIndex.search', query, k, filter, this.dim);
    const q = this.metric === 'cosine' ? normalize(Float32Array.from(query)) : query;
    let rows: Iterable<number> | undefined;
    let count = this.#n;
    if (allowed) {
      const set = new Set<number>();
      for (let i = 0; i < allowed.length; i++) {
        const r = this.#rows.get(allowed[i]!);
        if (r !== undefined) set.add(r);
      }
      rows = set;
      count = set.size;
    }
    k = Math.min(k, count);
    if (k === 0) return emptyResult();
    const top = new TopK(k);
    const ids = this.#ids;
    if (rows) {
      for (const r of rows) top.push(this.#distance(q, r), ids[r]!);
    } else {
      for (let r = 0; r < this.#n; r++) {
        const d = this.#distance(q, r);
        if (d <= top.bound) top.push(d, ids[r]!);
      }
    }
    return top.sorted();
  }

  async searchAsync(query: Float32Array, k: number, filter?: Uint32Array): Promise<VectorSearchResult> {
    return this.search(query, k, filter);
  }

  #distance(q: Float32Array, row: number): number {
    const data = this.#data;
    const dim = this.dim;
    const base = row * dim;
    let s0 = 0;
    let s1 = 0;
    let s2 = 0;
    let s3 = 0;
    let j = 0;
    if (this.metric === 'l2') {
      for (; j + 4 <= dim; j += 4) {
        const d0 = q[j]! - data[base + j]!;
        const d1 = q[j + 1]! - data[base + j + 1]!;
        const d2 = q[j + 2]! - data[base + j + 2]!;
        const d3 = q[j + 3]! - data[base + j + 3]!;
        s0 += d0 * d0;
        s1 += d1 * d1;
        s2 += d2 * d2;
        s3 += d3 * d3;
      }
      for (; j < dim; j++) {
        const d = q[j]! - data[base + j]!;
        s0 += d * d;
      }
      return s0 + s1 + s2 + s3;
    }
    for (; j + 4 <= dim; j += 4) {
      s0 += q[j]! * data[base + j]!;
      s1 += q[j + 1]! * data[base + j + 1]!;
      s2 += q[j + 2]! * data[base + j + 2]!;
      s3 += q[j + 3]! * data[base + j + 3]!;
    }
    for (; j < dim; j++) s0 += q[j]! * data[base + j]!;
    return 1 - (s0 + s1 + s2 + s3);
  }

  memoryBytes(): number {
    // Map entries cost roughly 40 bytes each in V8 (hash table slot + key + value).
    return this.#data.byteLength + this.#ids.byteLength + this.#rows.size * 40;
  }
}

export function emptyResult(): VectorSearchResult {
  return { ids: new Uint32Array(0), distances: new Float32Array(0) };
}

/**
 * The k smallest (distance, id) pairs, ties broken by the smaller id (as the
 * native index does): a max-heap over two parallel typed arrays.
 */
class TopK {
  readonly #d: Float64Array;
  readonly #id: Uint32Array;
  #n = 0;
  /** Distance a candidate must not exceed to be considered (Infinity until full). */
  bound = Infinity;

  constructor(readonly k: number) {
    this.#d = new Float64Array(k);
    this.#id = new Uint32Array(k);
  }

  #greater(i: number, j: number): boolean {
    const a = this.#d[i]!;
    const b = this.#d[j]!;
    return a > b || (a === b && this.#id[i]! > this.#id[j]!);
  }

  #swap(i: number, j: number): void {
    const d = this.#d[i]!;
    this.#d[i] = this.#d[j]!;
    this.#d[j] = d;
    const id = this.#id[i]!;
    this.#id[i] = this.#id[j]!;
    this.#id[j] = id;
  }

  push(d: number, id: number): void {
    if (this.#n < this.k) {
      let i = this.#n++;
      this.#d[i] = d;
      this.#id[i] = id;
      while (i > 0) {
        const p = (i - 1) >> 1;
        if (!this.#greater(i, p)) break;
        this.#swap(i, p);
        i = p;
      }
    } else {
      const top = this.#d[0]!;
      if (d > top || (d === top && id >= this.#id[0]!)) return;
      this.#d[0] = d;
      this.#id[0] = id;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.#n && this.#greater(l, m)) m = l;
        if (r < this.#n && this.#greater(r, m)) m = r;
        if (m === i) break;
        this.#swap(i, m);
        i = m;
      }
    }
    if (this.#n === this.k) this.bound = this.#d[0]!;
  }

  sorted(): VectorSearchResult {
    const order = Array.from({ length: this.#n }, (_, i) => i);
    order.sort((a, b) => this.#d[a]! - this.#d[b]! || this.#id[a]! - this.#id[b]!);
    const ids = new Uint32Array(this.#n);
    const distances = new Float32Array(this.#n);
    order.forEach((j, i) => {
      ids[i] = this.#id[j]!;
      distances[i] = this.#d[j]!;
    });
    return { ids, distances };
  }
}
