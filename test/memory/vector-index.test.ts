import t, { type Test } from 'tap';
import {
  HnswlibVectorIndex,
  JsFlatVectorIndex,
  NativeVectorIndex,
  createVectorIndex,
  implementationName,
  OFF_LOOP_SEARCH_WORK,
  runsOffLoop,
  searchOffLoop,
  type VectorIndex,
  type VectorIndexOptions,
  type VectorMetric,
  type VectorSearchResult,
} from '../../src/memory/vector/index.js';

interface Impl {
  name: string;
  hnsw: boolean;
  make(o: Omit<VectorIndexOptions, 'kind'>): VectorIndex;
}

const IMPLS: Impl[] = [
  { name: 'native flat', hnsw: false, make: (o) => new NativeVectorIndex({ ...o, kind: 'flat' }) },
  { name: 'native hnsw', hnsw: true, make: (o) => new NativeVectorIndex({ ...o, kind: 'hnsw' }) },
  { name: 'hnswlib-node', hnsw: true, make: (o) => new HnswlibVectorIndex({ ...o, kind: 'hnsw' }) },
  { name: 'js flat', hnsw: false, make: (o) => new JsFlatVectorIndex({ ...o, kind: 'flat' }) },
];

const METRICS: VectorMetric[] = ['cosine', 'ip', 'l2'];

// ---- Reference implementation and data -------------------------------------

function naive(metric: VectorMetric, a: ArrayLike<number>, b: ArrayLike<number>): number {
  let dot = 0;
  let l2 = 0;
  let na = 0;
  let nb = 0;
  for (let i = 0; i < a.length; i++) {
    dot += a[i]! * b[i]!;
    l2 += (a[i]! - b[i]!) ** 2;
    na += a[i]! ** 2;
    nb += b[i]! ** 2;
  }
  if (metric === 'l2') return l2;
  if (metric === 'ip') return 1 - dot;
  return na === 0 || nb === 0 ? 1 : 1 - dot / Math.sqrt(na * nb);
}

/** Exact top-k as [id, distance] pairs, ties by id. */
function bruteForce(metric: VectorMetric, points: Map<number, Float32Array>, q: Float32Array, k: number, allowed?: Set<number>): [number, number][] {
  const all: [number, number][] = [];
  for (const [id, v] of points) if (!allowed || allowed.has(id)) all.push([id, naive(metric, q, v)]);
  all.sort((x, y) => x[1] - y[1] || x[0] - y[0]);
  return all.slice(0, k);
}

/** Seeded PRNG (mulberry32) and a normal deviate from it. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let x = Math.imul(s ^ (s >>> 15), 1 | s);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

function gaussian(r: () => number): number {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/** Clustered, low-rank vectors resembling text embeddings. */
function clustered(n: number, dim: number, seed: number, dataSeed: number, noise = 0.1): Float32Array {
  const g = rng(seed);
  const rank = 12;
  const clusters = 16;
  const basis = Array.from({ length: rank * dim }, () => gaussian(g) / Math.sqrt(rank));
  const centres = Array.from({ length: clusters * rank }, () => gaussian(g));
  const r = rng(dataSeed);
  const out = new Float32Array(n * dim);
  const z = new Float64Array(rank);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * clusters);
    for (let t = 0; t < rank; t++) z[t] = centres[c * rank + t]! + 0.5 * gaussian(r);
    for (let j = 0; j < dim; j++) {
      let x = noise * gaussian(r);
      for (let t = 0; t < rank; t++) x += z[t]! * basis[t * dim + j]!;
      out[i * dim + j] = x;
    }
  }
  return out;
}

const f32 = (...v: number[]) => Float32Array.from(v);
/** Recall-test data and beam: recall@10 lands near 0.985 for both HNSW implementations, not 1. */
const NOISE = 0.5;
const EF = 24;
const ids = (r: VectorSearchResult) => Array.from(r.ids);

function throwsCode(t: Test, fn: () => unknown, code: string, what: string): void {
  try {
    fn();
    t.fail(`${what}: did not throw`);
  } catch (err) {
    t.equal((err as { code?: string }).code, code, `${what}: ${code}`);
    t.match((err as Error).message, /\S/, `${what}: has a message`);
  }
}

async function rejectsCode(t: Test, p: Promise<unknown>, code: string, what: string): Promise<void> {
  try {
    await p;
    t.fail(`${what}: did not reject`);
  } catch (err) {
    t.equal((err as { code?: string }).code, code, `${what}: ${code}`);
  }
}

// Small known sets: 2-D points with distinct distances to the query under
// every metric.
const SMALL: [number, number[]][] = [
  [10, [1, 0]],
  [11, [0, 1]],
  [12, [-1, 0.2]],
  [13, [2, 2.5]],
  [14, [0.5, -0.3]],
  [15, [-0.7, -1.9]],
];
const SMALL_QUERY = f32(1, 0.4);

// ---- The shared suite -----------------------------------------------------------

for (const impl of IMPLS) {
  t.test(`${impl.name}: exact results on small known sets for each metric`, async (t) => {
    for (const metric of METRICS) {
      const ix = impl.make({ dim: 2, metric });
      for (const [id, v] of SMALL) ix.add(id, Float32Array.from(v));
      t.equal(ix.size, SMALL.length);
      t.equal(ix.dim, 2);
      t.equal(ix.metric, metric);
      const want = bruteForce(metric, new Map(SMALL.map(([id, v]) => [id, Float32Array.from(v)])), SMALL_QUERY, SMALL.length);
      const got = ix.search(SMALL_QUERY, SMALL.length);
      t.ok(got.ids instanceof Uint32Array && got.distances instanceof Float32Array, `${metric}: typed arrays`);
      t.same(ids(got), want.map((w) => w[0]), `${metric}: order`);
      for (let i = 0; i < want.length; i++) {
        t.ok(Math.abs(got.distances[i]! - want[i]![1]) < 1e-5, `${metric}: distance ${i} ${got.distances[i]} ~ ${want[i]![1]}`);
      }
      t.same(ids(ix.search(SMALL_QUERY, 2)), want.slice(0, 2).map((w) => w[0]), `${metric}: top 2`);
    }
  });

  t.test(`${impl.name}: addBatch, remove and replace`, async (t) => {
    const ix = impl.make({ dim: 3, metric: 'l2' });
    const batch = new Float32Array(10 * 3);
    for (let i = 0; i < 10; i++) batch[i * 3] = i;
    ix.addBatch(Uint32Array.from({ length: 10 }, (_, i) => i), batch);
    t.equal(ix.size, 10);
    t.equal(ix.remove(0), true, 'remove present id');
    t.equal(ix.remove(0), false, 'remove absent id');
    t.equal(ix.remove(12345), false, 'remove unknown id');
    t.equal(ix.size, 9);
    t.same(ids(ix.search(f32(0, 0, 0), 3)), [1, 2, 3], 'removed id is not returned');
    ix.add(9, f32(0.1, 0, 0));
    t.equal(ix.size, 9, 're-adding an id replaces it');
    const r = ix.search(f32(0, 0, 0), 2);
    t.same(ids(r), [9, 1], 'the replacement vector is the one found');
    t.ok(Math.abs(r.distances[0]! - 0.01) < 1e-6);
    ix.add(0, f32(-0.05, 0, 0));
    t.equal(ix.size, 10, 'a removed id can be added again');
    t.equal(ix.search(f32(0, 0, 0), 1).ids[0], 0);
    t.ok(ix.memoryBytes() > 0, 'memoryBytes');
  });

  t.test(`${impl.name}: k above size, k = 0, empty index`, async (t) => {
    const ix = impl.make({ dim: 4, metric: 'cosine' });
    t.same(ids(ix.search(f32(1, 0, 0, 0), 5)), [], 'empty index');
    ix.add(1, f32(1, 0, 0, 0));
    ix.add(2, f32(0, 1, 0, 0));
    t.same(ids(ix.search(f32(1, 0.1, 0, 0), 50)), [1, 2], 'k > size returns all');
    t.same(ids(ix.search(f32(1, 0.1, 0, 0), 0)), [], 'k = 0');
  });

  t.test(`${impl.name}: filter`, async (t) => {
    const ix = impl.make({ dim: 2, metric: 'l2' });
    for (let i = 0; i < 200; i++) ix.add(i, f32(i, 0));
    const q = f32(0, 0);
    t.same(ids(ix.search(q, 3, Uint32Array.of(150, 50, 100))), [50, 100, 150], 'only allowed ids, nearest first');
    t.same(ids(ix.search(q, 5, Uint32Array.of(7, 7, 9999, 3))), [3, 7], 'duplicates and unknown ids in the filter are ignored');
    t.same(ids(ix.search(q, 5, new Uint32Array(0))), [], 'empty filter');
    ix.remove(3);
    t.same(ids(ix.search(q, 5, Uint32Array.of(3, 7))), [7], 'removed ids stay out of filtered results');
    const odd = Uint32Array.from({ length: 100 }, (_, i) => 2 * i + 1);
    t.same(ids(ix.search(q, 10, odd)), [1, 5, 7, 9, 11, 13, 15, 17, 19, 21], 'k results from a broad filter');
    t.same(ids(ix.search(f32(250, 0), 4, odd)), [199, 197, 195, 193], 'far query');
  });

  t.test(`${impl.name}: argument errors carry codes`, async (t) => {
    const ix = impl.make({ dim: 3, metric: 'cosine' });
    ix.add(1, f32(1, 2, 3));
    throwsCode(t, () => ix.add(2, f32(1, 2)), 'ERR_NATIVE_VECTOR_DIM_MISMATCH', 'add with 2 of 3 components');
    throwsCode(t, () => ix.search(f32(1, 2, 3, 4), 1), 'ERR_NATIVE_VECTOR_DIM_MISMATCH', 'search with 4 of 3 components');
    throwsCode(t, () => ix.addBatch(Uint32Array.of(5, 6), new Float32Array(5)), 'ERR_NATIVE_VECTOR_DIM_MISMATCH', 'addBatch with a short buffer');
    throwsCode(t, () => ix.add(2, f32(1, Number.NaN, 3)), 'ERR_NATIVE_VECTOR_NON_FINITE', 'NaN component');
    throwsCode(t, () => ix.search(f32(1, Infinity, 3), 1), 'ERR_NATIVE_VECTOR_NON_FINITE', 'infinite query');
    throwsCode(t, () => ix.add(-1, f32(1, 2, 3)), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'negative id');
    throwsCode(t, () => ix.add(1.5, f32(1, 2, 3)), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'fractional id');
    throwsCode(t, () => ix.add(2 ** 32, f32(1, 2, 3)), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'id above u32');
    throwsCode(t, () => ix.add(2, [1, 2, 3] as unknown as Float32Array), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'a JS array instead of Float32Array');
    throwsCode(t, () => ix.search(new Float64Array(3) as unknown as Float32Array, 1), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'a Float64Array query');
    throwsCode(t, () => ix.search(f32(1, 2, 3), -1), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'negative k');
    throwsCode(t, () => ix.search(f32(1, 2, 3), 1, [1] as unknown as Uint32Array), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'a JS array filter');
    throwsCode(t, () => impl.make({ dim: 0, metric: 'cosine' }), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'dim 0');
    throwsCode(t, () => impl.make({ dim: 3, metric: 'manhattan' as VectorMetric }), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'unknown metric');
    throwsCode(t, () => {
      ix.ef = 0;
    }, 'ERR_NATIVE_VECTOR_BAD_PARAM', 'ef = 0');
    await rejectsCode(t, ix.searchAsync(f32(1, 2), 1), 'ERR_NATIVE_VECTOR_DIM_MISMATCH', 'searchAsync with 2 of 3 components');
    t.equal(ix.size, 1, 'failed calls changed nothing');
  });

  t.test(`${impl.name}: recall on clustered vectors`, async (t) => {
    const dim = 32;
    const n = 3000;
    // Noise spreads the points over all 32 dimensions, so the graph search
    // has real work to do.
    const data = clustered(n, dim, 1, 2, NOISE);
    const queries = clustered(100, dim, 1, 3, NOISE);
    const ix = impl.make({ dim, metric: 'cosine', m: 12, efConstruction: 100, ef: EF, seed: 7 });
    ix.addBatch(Uint32Array.from({ length: n }, (_, i) => i), data);
    t.equal(ix.size, n);
    const points = new Map<number, Float32Array>();
    for (let i = 0; i < n; i++) points.set(i, data.subarray(i * dim, (i + 1) * dim));
    let hits = 0;
    let filteredHits = 0;
    let filteredTotal = 0;
    // A selective filter (1 in 10) and a broad one (1 in 2).
    const filters = [10, 2].map((step) => {
      const list = Uint32Array.from({ length: n / step }, (_, i) => i * step);
      return { list, set: new Set(list) };
    });
    for (let i = 0; i < 100; i++) {
      const q = queries.subarray(i * dim, (i + 1) * dim);
      const truth = new Set(bruteForce('cosine', points, q, 10).map((w) => w[0]));
      const got = ix.search(q, 10);
      t.equal(got.ids.length, 10);
      for (const id of got.ids) if (truth.has(id)) hits++;
      for (const f of filters) {
        const ftruth = new Set(bruteForce('cosine', points, q, 10, f.set).map((w) => w[0]));
        const fgot = ix.search(q, 10, f.list);
        if (fgot.ids.length !== 10) t.fail(`filtered search returned ${fgot.ids.length} of 10`);
        for (const id of fgot.ids) {
          if (!f.set.has(id)) t.fail(`filtered search returned disallowed id ${id}`);
          if (ftruth.has(id)) filteredHits++;
        }
        filteredTotal += 10;
      }
    }
    const recall = hits / 1000;
    const frecall = filteredHits / filteredTotal;
    if (impl.hnsw) {
      t.ok(recall >= 0.95, `recall@10 ${recall} >= 0.95`);
      t.ok(frecall >= 0.95, `filtered recall@10 ${frecall} >= 0.95`);
    } else {
      t.equal(recall, 1, 'exact search has recall 1');
      t.equal(frecall, 1, 'exact filtered search has recall 1');
    }
  });

  t.test(`${impl.name}: searchAsync equals search`, async (t) => {
    const dim = 16;
    const data = clustered(500, dim, 4, 5);
    const ix = impl.make({ dim, metric: 'ip' });
    ix.addBatch(Uint32Array.from({ length: 500 }, (_, i) => i * 3), data);
    const queries = clustered(20, dim, 4, 6);
    const filter = Uint32Array.from({ length: 100 }, (_, i) => i * 9);
    for (let i = 0; i < 20; i++) {
      const q = queries.subarray(i * dim, (i + 1) * dim);
      const f = i % 2 ? filter : undefined;
      const a = await ix.searchAsync(q, 7, f);
      const b = ix.search(q, 7, f);
      t.same(ids(a), ids(b), `query ${i} ids`);
      t.same(Array.from(a.distances), Array.from(b.distances), `query ${i} distances`);
    }
  });
}

// ---- Native only --------------------------------------------------------------------

t.test('native: ef is per index and applies to searches', async (t) => {
  const h = new NativeVectorIndex({ dim: 4, metric: 'l2', kind: 'hnsw', ef: 40 });
  t.equal(h.ef, 40);
  h.ef = 123;
  t.equal(h.ef, 123);
  t.equal(h.kind, 'hnsw');
  const f = new NativeVectorIndex({ dim: 4, metric: 'l2', kind: 'flat' });
  t.equal(f.ef, 0, 'flat has no beam');
  f.ef = 10;
  t.equal(f.ef, 0, 'setting it on flat is validated and ignored');
  throwsCode(t, () => new NativeVectorIndex({ dim: 4, metric: 'l2', kind: 'hnsw', m: 1 }), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'm = 1');
  throwsCode(t, () => new NativeVectorIndex({ dim: 4, metric: 'l2', kind: 'tree' as 'flat' }), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'unknown kind');
});

t.test('native: save/load round trip', async (t) => {
  const dim = 24;
  const data = clustered(800, dim, 8, 9);
  const queries = clustered(20, dim, 8, 10);
  for (const kind of ['flat', 'hnsw'] as const) {
    for (const metric of METRICS) {
      const ix = new NativeVectorIndex({ dim, metric, kind, m: 8, efConstruction: 60, ef: 30, seed: 3 });
      ix.addBatch(Uint32Array.from({ length: 800 }, (_, i) => i + 1000), data);
      for (let i = 0; i < 800; i += 7) ix.remove(i + 1000);
      const bytes = ix.save();
      t.ok(Buffer.isBuffer(bytes), 'save returns a Buffer');
      const back = NativeVectorIndex.load(bytes);
      t.equal(back.kind, kind);
      t.equal(back.metric, metric);
      t.equal(back.dim, dim);
      t.equal(back.size, ix.size);
      t.equal(back.ef, ix.ef);
      let same = true;
      for (let i = 0; i < 20; i++) {
        const q = queries.subarray(i * dim, (i + 1) * dim);
        const a = ix.search(q, 10);
        const b = back.search(q, 10);
        if (ids(a).join() !== ids(b).join() || Array.from(a.distances).join() !== Array.from(b.distances).join()) same = false;
      }
      t.ok(same, `${kind} ${metric}: the loaded index answers exactly as the original`);
      t.same(back.save(), bytes, `${kind} ${metric}: saving again gives the same bytes`);
      t.ok(NativeVectorIndex.load(new Uint8Array(bytes)).size === ix.size, 'loads from a plain Uint8Array too');
    }
  }
});

t.test('native: corrupt bytes are rejected with a code, never a crash', async (t) => {
  const ix = new NativeVectorIndex({ dim: 8, metric: 'cosine', kind: 'hnsw' });
  const data = clustered(300, 8, 1, 1);
  ix.addBatch(Uint32Array.from({ length: 300 }, (_, i) => i), data);
  const bytes = ix.save();
  const corrupt = 'ERR_NATIVE_VECTOR_CORRUPT';
  throwsCode(t, () => NativeVectorIndex.load(bytes.subarray(0, bytes.length - 1)), corrupt, 'truncated by one byte');
  throwsCode(t, () => NativeVectorIndex.load(bytes.subarray(0, 30)), corrupt, 'truncated header');
  throwsCode(t, () => NativeVectorIndex.load(new Uint8Array(0)), corrupt, 'empty');
  throwsCode(t, () => NativeVectorIndex.load(Buffer.from('definitely not a vector index')), corrupt, 'garbage');
  const r = rng(42);
  let rejected = 0;
  for (let i = 0; i < 200; i++) {
    const b = Buffer.from(bytes);
    const at = Math.floor(r() * b.length);
    b[at] = b[at]! ^ (1 << Math.floor(r() * 8));
    try {
      NativeVectorIndex.load(b);
    } catch (err) {
      if ((err as { code?: string }).code === corrupt) rejected++;
    }
  }
  t.equal(rejected, 200, 'every single-bit flip is detected as corrupt');
  const v2 = Buffer.from(bytes);
  v2.writeUInt32LE(2, 8);
  throwsCode(t, () => NativeVectorIndex.load(v2), 'ERR_NATIVE_VECTOR_UNSUPPORTED_VERSION', 'future format version');
  throwsCode(t, () => NativeVectorIndex.load('abc' as unknown as Uint8Array), 'ERR_NATIVE_VECTOR_BAD_PARAM', 'a string');
});

t.test('native: searchAsync runs off the event loop', async (t) => {
  // Enough exact work (a few hundred ms in total) that a blocking
  // implementation could not hide it: while the searches are outstanding,
  // the event loop must keep turning.
  const dim = 256;
  const n = 40_000;
  const ix = new NativeVectorIndex({ dim, metric: 'l2', kind: 'flat' });
  const r = rng(5);
  const data = Float32Array.from({ length: n * dim }, () => r());
  ix.addBatch(Uint32Array.from({ length: n }, (_, i) => i), data);
  const queries = Array.from({ length: 64 }, () => Float32Array.from({ length: dim }, () => r()));
  let pending = queries.length;
  let turnsWhilePending = 0;
  let stop = false;
  const spin = () => {
    if (stop) return;
    if (pending > 0) turnsWhilePending++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const results = await Promise.all(
    queries.map((q) =>
      ix.searchAsync(q, 5).then((res) => {
        pending--;
        return res;
      }),
    ),
  );
  stop = true;
  t.ok(turnsWhilePending > 0, `the event loop turned ${turnsWhilePending} times while searches ran`);
  for (let i = 0; i < queries.length; i++) t.same(ids(results[i]!), ids(ix.search(queries[i]!, 5)), `query ${i}`);
  // The query is copied before queuing: overwriting it afterwards does not
  // change the answer.
  const q = Float32Array.from(queries[0]!);
  const p = ix.searchAsync(q, 5);
  q.fill(1e6);
  t.same(ids(await p), ids(results[0]!), 'query copied before the search ran');
});

t.test('native: adds and removes during outstanding async searches are safe', async (t) => {
  const dim = 32;
  const ix = new NativeVectorIndex({ dim, metric: 'cosine', kind: 'hnsw', m: 8, efConstruction: 40 });
  const data = clustered(4000, dim, 11, 12);
  ix.addBatch(Uint32Array.from({ length: 2000 }, (_, i) => i), data.subarray(0, 2000 * dim));
  const searches: Promise<VectorSearchResult>[] = [];
  for (let i = 2000; i < 4000; i++) {
    ix.add(i, data.subarray(i * dim, (i + 1) * dim));
    if (i % 3 === 0) ix.remove(i - 1500);
    if (i % 10 === 0) searches.push(ix.searchAsync(data.subarray(i * dim, (i + 1) * dim), 10));
  }
  const results = await Promise.all(searches);
  t.equal(results.length, 200);
  t.ok(results.every((r) => r.ids.length === 10), 'every search returned 10 results');
});

t.test('createVectorIndex picks the implementation', async (t) => {
  t.equal(implementationName({ kind: 'hnsw' }, { native: true }), 'native');
  t.equal(implementationName({ kind: 'flat' }, { native: true }), 'native');
  t.equal(implementationName({ kind: 'hnsw' }, { native: false }), 'hnswlib-node');
  t.equal(implementationName({ kind: 'flat' }, { native: false }), 'js');
  for (const [kind, native, impl] of [
    ['hnsw', true, 'native'],
    ['flat', true, 'native'],
    ['hnsw', false, 'hnswlib-node'],
    ['flat', false, 'js'],
  ] as const) {
    const ix = createVectorIndex({ dim: 3, metric: 'cosine', kind }, { native });
    t.equal(ix.implementation, impl, `${kind} native=${native}`);
    t.equal(ix.kind, kind);
  }
});

t.test('searchOffLoop leaves the event loop only where that pays', async (t) => {
  const dim = 64;
  const n = OFF_LOOP_SEARCH_WORK / dim;
  const vectors = new Float32Array(n * dim).map((_, i) => Math.sin(i * 0.37));
  const ids = Uint32Array.from({ length: n }, (_, i) => i);
  const big = new NativeVectorIndex({ dim, metric: 'l2', kind: 'flat' });
  big.addBatch(ids, vectors);
  const small = new NativeVectorIndex({ dim, metric: 'l2', kind: 'flat' });
  small.addBatch(ids.subarray(0, 100), vectors.subarray(0, 100 * dim));
  const graph = new NativeVectorIndex({ dim, metric: 'l2', kind: 'hnsw' });
  graph.addBatch(ids.subarray(0, 2000), vectors.subarray(0, 2000 * dim));
  t.equal(runsOffLoop(big), true, `${n} × ${dim} exact: thread pool`);
  t.equal(runsOffLoop(small), false, 'a small exact index: inline');
  t.equal(runsOffLoop(graph), false, 'HNSW: inline');
  t.equal(runsOffLoop(new JsFlatVectorIndex({ dim, metric: 'l2', kind: 'flat' })), false, 'JS: inline (it cannot leave the loop)');
  const q = vectors.slice(5 * dim, 6 * dim);
  for (const ix of [big, small, graph]) {
    const got = await searchOffLoop(ix, q, 3);
    t.same(got, ix.search(q, 3), `${ix.kind} ${ix.size}: same result as search`);
  }
  await t.rejects(searchOffLoop(small, new Float32Array(3), 1), { code: 'ERR_NATIVE_VECTOR_DIM_MISMATCH' }, 'errors reject');
  await t.rejects(searchOffLoop(big, new Float32Array(3), 1), { code: 'ERR_NATIVE_VECTOR_DIM_MISMATCH' });
});
