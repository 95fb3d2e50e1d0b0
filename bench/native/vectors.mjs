#!/usr/bin/env node
// Vector search: npcd's native index (native/src/vector, through N-API)
// against hnswlib-node, and the plain-JS exact search, on seeded synthetic
// data. Needs the native binary and the build (dist/):
//   node bench/native/vectors.mjs [--quick] [--n 100000] [--json]
//
// Data sets (all seeded, so every process regenerates the same vectors):
//   embed-128: N x 128 (N = --n, default 100,000), cosine: clustered points
//              in a 32-dimensional latent space, projected and perturbed by
//              noise, like sentence embeddings;
//   embed-384: 10,000 x 384, cosine, the same recipe with a 64-d latent;
//   uniform-32: 50,000 x 32, L2, uniform in [-1, 1]^32.
// Queries (1,000 per set) are drawn like the data but are not members of it.
//
// Steps per set: exact ground truth (native flat), checked against hnswlib's
// BruteforceSearch (same top-10 ids, allowing ties) before anything is
// timed; exact search ms/query for native flat, hnswlib BruteforceSearch and
// JS flat; then HNSW (M=16, efConstruction=200) built by native and by
// hnswlib-node, each in its own child process so that its RSS growth is its
// own: build time, memory, and recall@10 / QPS at several ef. Searches are
// single-threaded synchronous calls; hnswlib gets its queries as prebuilt JS
// arrays (its API takes number[]), native as Float32Array.
import { fork } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { benchArgs } from '../lib/args.mjs';
import { mulberry32 } from '../../dist/text/random.js';

const require = createRequire(import.meta.url);
const DIST = new URL('../../dist/', import.meta.url);
const NATIVE_FILE = fileURLToPath(new URL('../../native/npcd-native.linux-x64-gnu.node', import.meta.url));

const args = benchArgs(
  {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    n: { type: 'string' },
    child: { type: 'string' },
  },
  `Usage: node bench/native/vectors.mjs [--quick] [--n 100000] [--json]

  --quick      smaller sets and fewer queries
  --n N        vectors in the embed-128 set (default 100,000)
  --json       print the results as JSON too
  -h, --help

Vector search, npcd's native index against hnswlib-node and plain JS
(bench/README.md, "Native vector search"). Needs npm run build and the
native binary.`,
);

// ---------------------------------------------------------------------------
// Loading

async function loadNativeModule() {
  const loader = new URL('native/index.js', DIST);
  if (existsSync(loader)) {
    const { loadNative } = await import(loader.href);
    return loadNative();
  }
  return require(NATIVE_FILE);
}

async function loadJsFlat() {
  const file = new URL('memory/vector/flat.js', DIST);
  if (!existsSync(file)) {
    console.error(`${fileURLToPath(file)} is missing: run npm run build first`);
    process.exit(2);
  }
  return (await import(file.href)).JsFlatVectorIndex;
}

const hnswlib = require('hnswlib-node');

// ---------------------------------------------------------------------------
// Data


function gauss(r) {
  return Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
}

/**
 * Embedding-like vectors: a cluster centre in a `rank`-dimensional latent
 * space plus spread, projected by a fixed random basis, plus isotropic
 * noise. `model` seeds the basis and centres (shared by data and queries),
 * `stream` seeds the points.
 */
function embeddings({ n, dim, rank, clusters, spread, noise, model, stream }) {
  const g = mulberry32(model);
  const basis = new Float64Array(rank * dim).map(() => gauss(g) / Math.sqrt(rank));
  const centres = new Float64Array(clusters * rank).map(() => gauss(g));
  const r = mulberry32(stream);
  const out = new Float32Array(n * dim);
  const z = new Float64Array(rank);
  const row = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    const c = Math.floor(r() * clusters);
    for (let t = 0; t < rank; t++) z[t] = centres[c * rank + t] + spread * gauss(r);
    for (let j = 0; j < dim; j++) row[j] = noise * gauss(r);
    for (let t = 0; t < rank; t++) {
      const zt = z[t];
      const b = t * dim;
      for (let j = 0; j < dim; j++) row[j] += zt * basis[b + j];
    }
    out.set(row, i * dim);
  }
  return out;
}

function uniform({ n, dim, stream }) {
  const r = mulberry32(stream);
  const out = new Float32Array(n * dim);
  for (let i = 0; i < out.length; i++) out[i] = r() * 2 - 1;
  return out;
}

const QUICK = args.quick;
const N = Number(args.n ?? (QUICK ? 20_000 : 100_000));
const QUERIES = QUICK ? 200 : 1000;
const EFS = QUICK ? [16, 64, 256] : [10, 16, 32, 64, 128, 256];
const HNSW = { m: 16, efConstruction: 200, seed: 100 };

const DATASETS = [
  {
    name: `embed-128`,
    n: N,
    dim: 128,
    metric: 'cosine',
    make: (n, stream) => embeddings({ n, dim: 128, rank: 32, clusters: 100, spread: 0.6, noise: 0.35, model: 1, stream }),
  },
  {
    name: `embed-384`,
    n: QUICK ? 5_000 : 10_000,
    dim: 384,
    metric: 'cosine',
    make: (n, stream) => embeddings({ n, dim: 384, rank: 64, clusters: 50, spread: 0.6, noise: 0.3, model: 2, stream }),
  },
  {
    name: `uniform-32`,
    n: QUICK ? 10_000 : 50_000,
    dim: 32,
    metric: 'l2',
    make: (n, stream) => uniform({ n, dim: 32, stream }),
  },
];

function dataOf(ds) {
  return { data: ds.make(ds.n, 1000 + ds.dim), queries: ds.make(QUERIES, 2000 + ds.dim) };
}

const row = (a, dim, i) => a.subarray(i * dim, (i + 1) * dim);
const now = () => performance.now();

// ---------------------------------------------------------------------------
// Child: build one HNSW implementation and sweep ef.

function rssBytes() {
  return process.memoryUsage.rss();
}

/** Full GCs, then a pause so V8 can hand freed pages back before RSS is read. */
async function settle() {
  for (let i = 0; i < 3; i++) globalThis.gc?.();
  await new Promise((r) => setTimeout(r, 200));
}

async function child(spec) {
  const ds = DATASETS.find((d) => d.name === spec.dataset);
  const { data, queries } = dataOf(ds);
  const truth = spec.truth;
  const { dim, n } = ds;
  const ids = Uint32Array.from({ length: n }, (_, i) => i);
  const qArrays = Array.from({ length: QUERIES }, (_, i) => Array.from(row(queries, dim, i)));
  const qTyped = Array.from({ length: QUERIES }, (_, i) => row(queries, dim, i));
  await settle();
  const rss0 = rssBytes();
  let index;
  let search;
  let setEf;
  let memoryBytes;
  const t0 = now();
  if (spec.impl === 'native') {
    const native = await loadNativeModule();
    index = new native.VectorIndex({ dim, metric: ds.metric, kind: 'hnsw', ...HNSW });
    index.addBatch(ids, data);
    search = (i) => index.search(qTyped[i], 10).ids;
    setEf = (ef) => {
      index.ef = ef;
    };
    memoryBytes = () => index.memoryBytes();
  } else {
    index = new hnswlib.HierarchicalNSW(ds.metric, dim);
    index.initIndex({ maxElements: n, m: HNSW.m, efConstruction: HNSW.efConstruction, randomSeed: HNSW.seed });
    for (let i = 0; i < n; i++) index.addPoint(Array.from(row(data, dim, i)), i);
    search = (i) => index.searchKnn(qArrays[i], 10).neighbors;
    setEf = (ef) => index.setEf(ef);
    memoryBytes = () => null;
  }
  const buildS = (now() - t0) / 1000;
  await settle();
  const rss1 = rssBytes();
  // The input vectors stay alive up to here, so that freeing them cannot
  // hide part of the index's growth.
  if (data.length !== n * dim) throw new Error('data changed');
  const sweep = [];
  for (const ef of EFS) {
    setEf(ef);
    // Warm-up pass, then timed passes until at least 1 s has run.
    let hit = 0;
    for (let i = 0; i < QUERIES; i++) {
      const got = search(i);
      const want = truth[i];
      for (const id of got) if (want.includes(id)) hit++;
    }
    let queries = 0;
    const start = now();
    do {
      for (let i = 0; i < QUERIES; i++) search(i);
      queries += QUERIES;
    } while (now() - start < 1000);
    const ms = now() - start;
    sweep.push({ ef, recall: hit / (QUERIES * 10), qps: (queries / ms) * 1000, usPerQuery: (ms / queries) * 1000 });
  }
  let asyncQps = null;
  if (spec.impl === 'native') {
    // Throughput through the libuv pool at ef=64: every query in flight at once.
    setEf(64);
    const start = now();
    let done = 0;
    do {
      await Promise.all(qTyped.map((q) => index.searchAsync(q, 10)));
      done += QUERIES;
    } while (now() - start < 1000);
    asyncQps = (done / (now() - start)) * 1000;
  }
  return { impl: spec.impl, dataset: ds.name, buildS, rssDeltaBytes: rss1 - rss0, memoryBytes: memoryBytes(), sweep, asyncQps };
}

function runChild(spec, truth) {
  return new Promise((resolve, reject) => {
    const argv = ['--child', JSON.stringify(spec)];
    if (args.quick) argv.push('--quick');
    if (args.n) argv.push('--n', args.n);
    const p = fork(fileURLToPath(import.meta.url), argv, { execArgv: ['--expose-gc', '--max-old-space-size=8192'], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    let result;
    p.on('message', (m) => {
      if (m.ready) p.send({ truth });
      else result = m;
    });
    p.on('exit', (code) => (result ? resolve(result) : reject(new Error(`${spec.impl} child exited with ${code}`))));
  });
}

// ---------------------------------------------------------------------------
// Parent

/** ms per query over `count` queries, repeated until at least `minMs` has run. */
function timeQueries(count, fn, minMs = 500) {
  for (let i = 0; i < Math.min(count, 20); i++) fn(i);
  let n = 0;
  const start = now();
  do {
    for (let i = 0; i < count; i++) fn(i);
    n += count;
  } while (now() - start < minMs);
  return (now() - start) / n;
}

/** Same top-10 allowing ties: every id that differs must tie the 10th distance. */
function sameTopK(a, b, tol) {
  const ia = Array.from(a.ids);
  const ib = Array.from(b.ids);
  if (ia.length !== ib.length) return false;
  const kth = Math.max(a.distances[a.distances.length - 1], b.distances[b.distances.length - 1]);
  const sa = new Set(ia);
  for (let i = 0; i < ib.length; i++) {
    if (!sa.has(ib[i]) && Math.abs(b.distances[i] - kth) > tol) return false;
  }
  for (let i = 0; i < ia.length; i++) {
    if (Math.abs(a.distances[i] - b.distances[i]) > tol) return false;
  }
  return true;
}

/** QPS at `recall` on a curve, interpolating log(QPS) linearly in recall. */
function qpsAt(sweep, recall) {
  const pts = [...sweep].sort((x, y) => x.recall - y.recall);
  for (let i = 0; i + 1 < pts.length; i++) {
    const a = pts[i];
    const b = pts[i + 1];
    if (recall >= a.recall && recall <= b.recall) {
      if (b.recall === a.recall) return Math.max(a.qps, b.qps);
      const f = (recall - a.recall) / (b.recall - a.recall);
      return Math.exp(Math.log(a.qps) + f * (Math.log(b.qps) - Math.log(a.qps)));
    }
  }
  return null;
}

function ratio(x, base) {
  if (x === null || base === null) return '-';
  const r = x / base;
  return r >= 1 ? `${r.toFixed(2)}× faster` : `${(1 / r).toFixed(2)}× slower`;
}

const fmt = (x, d = 2) => (x === null || x === undefined || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
const mib = (b) => (b === null || b === undefined ? '-' : (b / 1048576).toFixed(1));
const int = (x) => (x === null ? '-' : Math.round(x).toLocaleString('en-US'));

async function main() {
  const native = await loadNativeModule();
  const JsFlat = await loadJsFlat();
  const report = {
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model, memGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version, platform: `${os.platform()} ${os.release()}` },
    command: `node bench/native/vectors.mjs ${process.argv.slice(2).join(' ')}`.trim(),
    date: new Date().toISOString(),
    // Other work on the machine skews every number; recorded so a run can be judged.
    loadAvgStart: os.loadavg().map((x) => Number(x.toFixed(2))),
    hnsw: HNSW,
    queries: QUERIES,
    datasets: [],
  };
  const log = (s) => {
    if (!args.json) console.error(s);
  };
  for (const ds of DATASETS) {
    const { dim, n } = ds;
    log(`# ${ds.name}: ${n.toLocaleString('en-US')} x ${dim}, ${ds.metric}, ${QUERIES} queries`);
    const { data, queries } = dataOf(ds);
    const ids = Uint32Array.from({ length: n }, (_, i) => i);

    // Ground truth, cross-checked against hnswlib's exact search.
    const flat = new native.VectorIndex({ dim, metric: ds.metric, kind: 'flat' });
    flat.addBatch(ids, data);
    const truthRes = Array.from({ length: QUERIES }, (_, i) => flat.search(row(queries, dim, i), 10));
    const truth = truthRes.map((r) => Array.from(r.ids));
    const brute = new hnswlib.BruteforceSearch(ds.metric, dim);
    brute.initIndex(n);
    for (let i = 0; i < n; i++) brute.addPoint(Array.from(row(data, dim, i)), i);
    const qArrays = Array.from({ length: QUERIES }, (_, i) => Array.from(row(queries, dim, i)));
    let agree = 0;
    for (let i = 0; i < QUERIES; i++) {
      const b = brute.searchKnn(qArrays[i], 10);
      if (sameTopK(truthRes[i], { ids: b.neighbors, distances: b.distances }, 1e-4)) agree++;
    }
    if (agree !== QUERIES) {
      console.error(`${ds.name}: native flat and hnswlib BruteforceSearch disagree on ${QUERIES - agree} of ${QUERIES} queries`);
      process.exit(1);
    }
    log(`  ground truth: native flat == hnswlib BruteforceSearch on all ${QUERIES} queries (ties allowed)`);

    // Exact search timings.
    const js = new JsFlat({ dim, metric: ds.metric, kind: 'flat' });
    js.addBatch(ids, data);
    const jsQueries = Math.min(QUERIES, Math.max(20, Math.floor(2e8 / (n * dim))));
    const exact = {
      nativeMs: timeQueries(QUERIES, (i) => flat.search(row(queries, dim, i), 10)),
      hnswlibMs: timeQueries(QUERIES, (i) => brute.searchKnn(qArrays[i], 10)),
      jsMs: timeQueries(jsQueries, (i) => js.search(row(queries, dim, i), 10)),
      nativeMemoryBytes: flat.memoryBytes(),
    };
    log(`  exact ms/query: native flat ${fmt(exact.nativeMs, 3)}, hnswlib BruteforceSearch ${fmt(exact.hnswlibMs, 3)}, JS flat ${fmt(exact.jsMs, 3)}`);

    // HNSW, one child per implementation (native first, then hnswlib).
    const hn = await runChild({ impl: 'native', dataset: ds.name }, truth);
    log(`  native HNSW: build ${fmt(hn.buildS)} s, ${mib(hn.memoryBytes)} MiB (RSS +${mib(hn.rssDeltaBytes)} MiB)`);
    const hl = await runChild({ impl: 'hnswlib', dataset: ds.name }, truth);
    log(`  hnswlib HNSW: build ${fmt(hl.buildS)} s, RSS +${mib(hl.rssDeltaBytes)} MiB`);
    const atRecall = [0.9, 0.95, 0.99].map((r) => ({ recall: r, native: qpsAt(hn.sweep, r), hnswlib: qpsAt(hl.sweep, r) }));
    report.datasets.push({ name: ds.name, n, dim, metric: ds.metric, exact, hnsw: { native: hn, hnswlib: hl, atRecall } });
  }

  report.loadAvgEnd = os.loadavg().map((x) => Number(x.toFixed(2)));
  if (args.json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  const out = [];
  const m = report.machine;
  out.push(`Machine: ${m.cpus} cores (${m.model}), ${m.memGiB} GiB, ${m.platform}, Node ${m.node}. Command: \`${report.command}\`, ${report.date}.`);
  out.push(`Load average (1/5/15 min) at start ${report.loadAvgStart.join(' / ')}, at end ${report.loadAvgEnd.join(' / ')}.`);
  out.push('');
  out.push('Exact search (k=10), ms per query; baseline hnswlib-node BruteforceSearch:');
  out.push('');
  out.push('| data | native flat | hnswlib BruteforceSearch | JS flat | native vs hnswlib | JS vs hnswlib |');
  out.push('|---|---:|---:|---:|---|---|');
  for (const d of report.datasets) {
    const e = d.exact;
    out.push(`| ${d.name} (${d.n.toLocaleString('en-US')} × ${d.dim}, ${d.metric}) | ${fmt(e.nativeMs, 3)} | ${fmt(e.hnswlibMs, 3)} | ${fmt(e.jsMs, 3)} | ${ratio(1 / e.nativeMs, 1 / e.hnswlibMs)} | ${ratio(1 / e.jsMs, 1 / e.hnswlibMs)} |`);
  }
  out.push('');
  out.push(`HNSW (M=${HNSW.m}, efConstruction=${HNSW.efConstruction}), build and memory; baseline hnswlib-node HierarchicalNSW:`);
  out.push('');
  out.push('| data | native build s | hnswlib build s | native memoryBytes MiB | native RSS Δ MiB | hnswlib RSS Δ MiB | native async QPS (ef 64, pool) |');
  out.push('|---|---:|---:|---:|---:|---:|---:|');
  for (const d of report.datasets) {
    const { native: a, hnswlib: b } = d.hnsw;
    out.push(`| ${d.name} | ${fmt(a.buildS)} | ${fmt(b.buildS)} | ${mib(a.memoryBytes)} | ${mib(a.rssDeltaBytes)} | ${mib(b.rssDeltaBytes)} | ${int(a.asyncQps)} |`);
  }
  out.push('');
  out.push('Recall@10 and single-thread QPS by ef:');
  out.push('');
  out.push('| data | ef | native recall | native QPS | hnswlib recall | hnswlib QPS | native vs hnswlib (same ef) |');
  out.push('|---|---:|---:|---:|---:|---:|---|');
  for (const d of report.datasets) {
    const { native: a, hnswlib: b } = d.hnsw;
    a.sweep.forEach((p, i) => {
      const q = b.sweep[i];
      out.push(`| ${d.name} | ${p.ef} | ${fmt(p.recall, 4)} | ${int(p.qps)} | ${fmt(q.recall, 4)} | ${int(q.qps)} | ${ratio(p.qps, q.qps)} |`);
    });
  }
  out.push('');
  out.push('QPS at equal recall (log-QPS interpolated between measured ef; - where the recall is outside the measured range, e.g. above what ef = k = 10 already gives):');
  out.push('');
  out.push('| data | recall@10 | native QPS | hnswlib QPS | native vs hnswlib |');
  out.push('|---|---:|---:|---:|---|');
  for (const d of report.datasets) {
    for (const r of d.hnsw.atRecall) out.push(`| ${d.name} | ${r.recall} | ${int(r.native)} | ${int(r.hnswlib)} | ${ratio(r.native, r.hnswlib)} |`);
  }
  console.log(out.join('\n'));
}

if (args.child) {
  const spec = JSON.parse(args.child);
  process.once('message', async (msg) => {
    const result = await child({ ...spec, truth: msg.truth });
    process.send(result, () => process.exit(0));
  });
  process.send({ ready: true });
} else {
  await main();
}
