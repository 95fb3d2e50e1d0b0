#!/usr/bin/env node
// Memory store and recall benchmark (see bench/README.md, "Memory store and recall").
//
// Part "turns": turn throughput and TTFT of `npcd serve --model mock` with the
// in-process store, a standalone Redis and a three-master Redis Cluster, all
// on loopback and started by this script, driven by bench/ws-load.mjs.
// Part "recall": MemoryRecall.recall() latency at 100, 10,000 and 100,000
// memories in one session, split into embedding, vector search and the
// store round trip.
//
// Needs the build (dist/, `npm run build`) and redis-server / redis-cli for
// the Redis stores. Tables go to stdout, progress to stderr.
//   node bench/memory.mjs [--parts turns,recall] [--duration 10] [--store memory] ...   (--help)
import { execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, createWriteStream, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { clockTicks, readProcCpuTicks } from './lib/proc.mjs';
import { mulberry32 as prng } from '../dist/text/random.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CLI = join(ROOT, 'dist', 'cli.js');
const WS_LOAD = join(ROOT, 'bench', 'ws-load.mjs');
const CHARACTER = 'gufeng-jianke';
const STORE_KINDS = ['memory', 'redis', 'cluster'];

const HELP = `Usage: node bench/memory.mjs [options]

Parts (both by default):
  --parts LIST            turns,recall

Turn throughput (npcd serve --model mock, driven by bench/ws-load.mjs):
  --turn-stores LIST      stores to run npcd with: memory,redis,cluster (default all three)
  --connections N         WebSocket connections, one session each (default 100)
  --duration S            measured seconds per store (default 10)
  --warmup S              unmeasured seconds after ramp-up (default 2)
  --mock-tokens N         tokens per mock reply (default 16)
  --recall-off            run npcd with --recall 0 (no embedding, no memories kept)
  --npcd-args 'ARGS'      extra npcd serve flags, split on spaces (e.g. '--no-native')
  --log-level LEVEL       npcd's --log-level: info, debug or trace (default info; the script reads
                          npcd's port from an info line and scans the log for warnings)

Recall latency (MemoryRecall over a store, in this process):
  --store LIST            stores to fill: memory,redis,cluster (default memory)
  --sizes LIST            memories in the session (default 100,10000,100000)
  --queries N             timed recalls per size, after the first (index build) and one warm-up (default 200)
  --vectors KIND          sentences: embed synthetic sentences with glove (default)
                          random: random unit vectors of the embedder's dimension
  --batch N               memories per embed / addMemories call while filling (default 1000)
  --redis-timeout MS      command timeout of the bench's RedisMemoryStore (default 60000;
                          npcd's own --redis-timeout defaults to 2s)
  --no-native             exact search in JS instead of the native module

Other:
  --out DIR               server logs (default bench/results/memory-<timestamp>, git-ignored)
  -h, --help

npcd listens on 127.0.0.1 on a port the kernel picks (--port 0). Redis servers
and the cluster run on free loopback ports below the ephemeral range, in temp
dirs, without persistence (--save '' --appendonly no). Everything started here
is killed when the script exits.
`;

// ---------------------------------------------------------------------------
// Options

function parseCli() {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        parts: { type: 'string', default: 'turns,recall' },
        'turn-stores': { type: 'string', default: 'memory,redis,cluster' },
        connections: { type: 'string', default: '100' },
        duration: { type: 'string', default: '10' },
        warmup: { type: 'string', default: '2' },
        'mock-tokens': { type: 'string', default: '16' },
        'recall-off': { type: 'boolean', default: false },
        'npcd-args': { type: 'string', default: '' },
        'log-level': { type: 'string', default: 'info' },
        store: { type: 'string', default: 'memory' },
        sizes: { type: 'string', default: '100,10000,100000' },
        queries: { type: 'string', default: '200' },
        vectors: { type: 'string', default: 'sentences' },
        batch: { type: 'string', default: '1000' },
        'redis-timeout': { type: 'string', default: '60000' },
        'no-native': { type: 'boolean', default: false },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h', default: false },
      },
      strict: true,
    }));
  } catch (err) {
    console.error(err.message);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const die = (msg) => {
    console.error(msg);
    process.exit(2);
  };
  const num = (k, min, int = true) => {
    const v = Number(values[k]);
    if (!Number.isFinite(v) || v < min || (int && !Number.isInteger(v))) die(`invalid --${k}: ${values[k]}`);
    return v;
  };
  const list = (k, allowed) => {
    const items = values[k].split(',').map((s) => s.trim()).filter(Boolean);
    for (const i of items) if (!allowed.includes(i)) die(`--${k}: unknown "${i}" (known: ${allowed.join(', ')})`);
    return items;
  };
  const sizes = values.sizes.split(',').map((s) => Number(s.trim()));
  if (sizes.some((n) => !Number.isInteger(n) || n < 1)) die(`invalid --sizes: ${values.sizes}`);
  // The listening line (with the port npcd picked) is an info line.
  if (!['info', 'debug', 'trace'].includes(values['log-level'])) die('--log-level must be info, debug or trace');
  if (values.vectors !== 'sentences' && values.vectors !== 'random') die('--vectors must be sentences or random');
  const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*/, '');
  return {
    parts: list('parts', ['turns', 'recall']),
    turnStores: list('turn-stores', STORE_KINDS),
    connections: num('connections', 1),
    duration: num('duration', 0.1, false),
    warmup: num('warmup', 0, false),
    mockTokens: num('mock-tokens', 1),
    recallOff: values['recall-off'],
    npcdArgs: values['npcd-args'].split(' ').filter(Boolean),
    logLevel: values['log-level'],
    stores: list('store', STORE_KINDS),
    sizes,
    queries: num('queries', 1),
    vectors: values.vectors,
    batch: num('batch', 1),
    redisTimeoutMs: num('redis-timeout', 10),
    native: !values['no-native'],
    out: values.out ?? join(ROOT, 'bench', 'results', `memory-${stamp}`),
  };
}

// ---------------------------------------------------------------------------
// Processes: everything started here dies with this script.

const children = new Set();
const tempDirs = new Set();
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** Spawns argv (under `setpriv --pdeathsig KILL` when available, which execs: the pid is the program's). */
function spawnTracked(argv, options) {
  const [file, args] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...argv]] : [argv[0], argv.slice(1)];
  const child = spawn(file, args, options);
  children.add(child);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.exited.then(() => children.delete(child));
  return child;
}

function alive(child) {
  return child.exitCode === null && child.signalCode === null;
}

/** SIGTERM, SIGKILL after `graceMs`; resolves with how it exited and how long that took. */
async function stopChild(child, graceMs = 5000) {
  const t0 = performance.now();
  if (alive(child)) {
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    const r = await child.exited;
    clearTimeout(timer);
    return { ...r, ms: performance.now() - t0 };
  }
  return { ...(await child.exited), ms: 0 };
}

process.on('exit', () => {
  for (const c of children) {
    try { c.kill('SIGKILL'); } catch { /* gone */ }
  }
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const log = (s) => process.stderr.write(s + '\n');

async function until(check, ms, what) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms${last ? ` (last error: ${last.message ?? last})` : ''}`);
    await sleep(50);
  }
}

// ---------------------------------------------------------------------------
// Ports: below the ephemeral range, as test/helpers does (a client reconnecting
// to an ephemeral port could be handed it as its own source port).

const handedOut = new Set();

function canBind(port) {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

async function freeServicePorts(n) {
  let lo = 32768;
  try { lo = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]) || lo; } catch { /* default */ }
  const min = 20_000;
  const max = Math.min(lo, 32_768) - 1;
  const out = [];
  while (out.length < n) {
    const p = min + Math.floor(Math.random() * (max - min));
    if (handedOut.has(p) || out.includes(p)) continue;
    if (await canBind(p)) {
      handedOut.add(p);
      out.push(p);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Redis

function redisCli(port, args, timeout = 10_000) {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', ['-h', '127.0.0.1', '-p', String(port), ...args], { encoding: 'utf8', timeout }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli -p ${port} ${args.join(' ')}: ${err.message} ${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

function requireRedis() {
  for (const tool of ['redis-server', 'redis-cli']) {
    try {
      execFileSync(tool, ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(`${tool} is not installed (apt-get install -y redis-server); the redis and cluster stores need it`);
    }
  }
}

async function startRedisServer(out, name, extra = []) {
  const [port] = await freeServicePorts(1);
  const dir = mkdtempSync(join(tmpdir(), 'npcd-bench-redis-'));
  tempDirs.add(dir);
  const logFd = openSync(join(out, `${name}-${port}.log`), 'w');
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra];
  const child = spawnTracked(['redis-server', ...args], { stdio: ['ignore', logFd, logFd] });
  closeSync(logFd);
  await until(async () => {
    if (!alive(child)) throw new Error(`redis-server exited; see ${out}/${name}-${port}.log`);
    return (await redisCli(port, ['PING'], 1000)) === 'PONG';
  }, 10_000, `redis-server on ${port} answering PING`);
  return { port, address: `127.0.0.1:${port}`, url: `redis://127.0.0.1:${port}`, child };
}

let standalone;
let cluster;

async function redisStandalone(out) {
  standalone ??= (async () => {
    requireRedis();
    log('starting redis-server (standalone) ...');
    return startRedisServer(out, 'redis');
  })();
  return standalone;
}

async function redisCluster(out) {
  cluster ??= (async () => {
    requireRedis();
    log('starting a three-master Redis Cluster ...');
    const nodes = [];
    for (let i = 0; i < 3; i++) {
      const [bus] = await freeServicePorts(1);
      nodes.push(await startRedisServer(out, `cluster${i}`, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus), '--cluster-node-timeout', '5000']));
    }
    const seeds = nodes.map((n) => n.address);
    await new Promise((resolve, reject) => {
      execFile('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
        if (err) reject(new Error(`redis-cli --cluster create failed (${err.message}): ${stdout}${stderr}`));
        else resolve();
      });
    });
    for (const n of nodes) {
      await until(async () => (await redisCli(n.port, ['CLUSTER', 'INFO'])).includes('cluster_state:ok'), 20_000, `cluster_state:ok on ${n.address}`);
    }
    return { nodes, seeds };
  })();
  return cluster;
}

/** The Redis processes behind a store kind (for FLUSHALL and CPU readings); [] in-process. */
async function redisNodes(kind, out) {
  if (kind === 'redis') return [await redisStandalone(out)];
  if (kind === 'cluster') return (await redisCluster(out)).nodes;
  return [];
}

async function flushAll(nodes) {
  for (const n of nodes) await redisCli(n.port, ['FLUSHALL']);
}

// ---------------------------------------------------------------------------
// Stats and formatting

function pct(sorted, p) {
  if (sorted.length === 0) return NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

function summary(samples) {
  const s = Float64Array.from(samples).sort();
  const mean = s.reduce((a, b) => a + b, 0) / (s.length || 1);
  return { p50: pct(s, 50), p99: pct(s, 99), mean, n: s.length };
}

function fmt(x) {
  if (x === undefined || x === null || Number.isNaN(x)) return '-';
  if (typeof x !== 'number') return String(x);
  const a = Math.abs(x);
  if (Number.isInteger(x)) return x.toLocaleString('en-US');
  if (a < 1) return x.toFixed(3);
  if (a < 10) return x.toFixed(2);
  if (a < 1000) return x.toFixed(1);
  return Math.round(x).toLocaleString('en-US');
}

function table(header, rows) {
  const lines = [`| ${header.join(' | ')} |`, `|${header.map((h, i) => (i === 0 ? '---' : '---:')).join('|')}|`];
  for (const r of rows) lines.push(`| ${r.map(fmt).join(' | ')} |`);
  return lines.join('\n');
}

function gitDescribe() {
  try {
    const head = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], { cwd: ROOT, encoding: 'utf8' }).trim() !== '';
    return dirty ? `${head} + uncommitted changes` : head;
  } catch {
    return 'unknown';
  }
}

function machineLine() {
  const cpu = cpus();
  return `${cpu.length} cores (${cpu[0]?.model.trim() ?? '?'}), node ${process.version}, commit ${gitDescribe()}`;
}

// ---------------------------------------------------------------------------
// Part 1: turn throughput

/** Starts npcd on a kernel-picked loopback port; resolves once it logs that it listens. */
async function startNpcd(o, label, storeArgs) {
  const logPath = join(o.out, `npcd-${label}.log`);
  const file = createWriteStream(logPath);
  const argv = [process.execPath, CLI, 'serve', '--host', '127.0.0.1', '--port', '0', '--model', 'mock',
    '--mock-tokens', String(o.mockTokens), '--mock-ttft', '0', '--mock-token-delay', '0',
    '--log-level', o.logLevel,
    ...storeArgs, ...(o.recallOff ? ['--recall', '0'] : []), ...o.npcdArgs];
  const child = spawnTracked(argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let port;
  const onLine = (line) => {
    file.write(line + '\n');
    lines.push(line);
    if (port === undefined && line.includes('npcd listening on')) {
      try { port = JSON.parse(line).port; } catch { /* not JSON */ }
    }
  };
  createInterface({ input: child.stdout }).on('line', onLine);
  createInterface({ input: child.stderr }).on('line', onLine);
  child.exited.then(() => file.end());
  await until(async () => {
    if (!alive(child)) throw new Error(`npcd exited; see ${logPath}`);
    return port !== undefined;
  }, 30_000, 'npcd listening');
  return { child, pid: child.pid, port, logPath, lines };
}

function runWsLoad(o, port, pid, label) {
  const args = [WS_LOAD, '--json', '--mode', 'chat', '--url', `ws://127.0.0.1:${port}/v1/ws`,
    '--connections', String(o.connections), '--duration', String(o.duration), '--warmup', String(o.warmup),
    '--character', CHARACTER, '--server-pid', String(pid), '--label', label];
  return new Promise((resolve, reject) => {
    const child = spawnTracked([process.execPath, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), (o.duration + o.warmup + 90) * 1000);
    child.exited.then(({ code, signal }) => {
      clearTimeout(timer);
      const last = stdout.trim().split('\n').pop();
      try {
        resolve(JSON.parse(last));
      } catch {
        reject(new Error(`ws-load exited (code ${code}, signal ${signal}) without a JSON result: ${stdout.slice(0, 500)}`));
      }
    });
  });
}

/** A few numbers from npcd's /metrics (whole run: warmup included). */
async function scrapeMetrics(port) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const sum = (name) => {
    let total = 0;
    let seen = false;
    for (const line of text.split('\n')) {
      if (line.startsWith(name) && (line[name.length] === ' ' || line[name.length] === '{')) {
        total += Number(line.slice(line.lastIndexOf(' ') + 1));
        seen = true;
      }
    }
    return seen ? total : undefined;
  };
  const recallSum = sum('npcd_memory_recall_duration_seconds_sum');
  const recallCount = sum('npcd_memory_recall_duration_seconds_count');
  return {
    recallMeanMs: recallCount ? (recallSum / recallCount) * 1000 : undefined,
    recalls: recallCount,
    memoriesStored: sum('npcd_memories_stored_total'),
    storeErrors: sum('npcd_store_errors_total') ?? 0,
    embedErrors: sum('npcd_embed_errors_total'),
  };
}

/** Warnings and errors in npcd's log, by message. */
function scanLog(lines) {
  const counts = new Map();
  let warn = 0;
  let error = 0;
  let info;
  for (const line of lines) {
    let e;
    try { e = JSON.parse(line); } catch { e = { level: 50, msg: `(not JSON) ${line.slice(0, 160)}` }; }
    if (e.msg?.startsWith('implementations:')) info = e.msg;
    if (typeof e.level !== 'number' || e.level < 40) continue;
    if (e.level >= 50) error++; else warn++;
    const key = `${e.level >= 50 ? 'error' : 'warn'}: ${e.msg}${e.err?.message ? ` (${e.err.code ?? ''} ${e.err.message})` : ''}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  return { warn, error, counts, info };
}

async function turnsPart(o) {
  if (!existsSync(CLI)) throw new Error(`${CLI} not found: run npm run build first`);
  const rows = [];
  const notes = [];
  for (const kind of o.turnStores) {
    const nodes = await redisNodes(kind, o.out);
    await flushAll(nodes);
    const storeArgs = kind === 'redis' ? ['--redis', nodes[0].url] : kind === 'cluster' ? ['--redis', nodes.map((n) => n.address).join(',')] : [];
    log(`== turns: ${kind} store, ${o.connections} connections, ${o.warmup}s warmup + ${o.duration}s`);
    let npcd;
    try {
      npcd = await startNpcd(o, kind, storeArgs);
    } catch (err) {
      notes.push(`${kind}: ${err.message}`);
      rows.push([kind, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-']);
      continue;
    }
    const hz = clockTicks();
    const r0 = nodes.map((n) => readProcCpuTicks(n.child.pid));
    const t0 = performance.now();
    let res;
    try {
      res = await runWsLoad(o, npcd.port, npcd.pid, kind);
    } catch (err) {
      notes.push(`${kind}: ${err.message}`);
    }
    const wall = (performance.now() - t0) / 1000;
    const r1 = nodes.map((n) => readProcCpuTicks(n.child.pid));
    const redisCpuPct = nodes.length ? (r1.reduce((a, b) => a + b, 0) - r0.reduce((a, b) => a + b, 0)) / hz / wall * 100 : undefined;
    let m = {};
    try { m = await scrapeMetrics(npcd.port); } catch (err) { notes.push(`${kind}: /metrics: ${err.message}`); }
    const stopped = await stopChild(npcd.child, 15_000);
    await sleep(50);
    const scan = scanLog(npcd.lines);
    if (scan.info && !notes.includes(scan.info)) notes.push(scan.info);
    if (stopped.signal === 'SIGKILL' || (stopped.code !== 0 && stopped.code !== null)) notes.push(`${kind}: npcd exit code ${stopped.code} signal ${stopped.signal} after SIGTERM (${Math.round(stopped.ms)} ms)`);
    for (const [msg, n] of scan.counts) notes.push(`${kind}: npcd log ${n}× ${msg}`);
    if (!res || res.ok === false) {
      rows.push([kind, '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', '-', `${scan.warn}/${scan.error}`]);
      continue;
    }
    const cpuMsPerTurn = res.server?.cpuPct !== undefined && res.turns ? (res.server.cpuPct / 100) * res.windowS * 1000 / res.turns : undefined;
    const errs = res.errorCount + res.connectionFailures + res.disconnects + res.turnTimeouts + Object.values(res.anomalies).reduce((a, b) => a + b, 0);
    if (errs) notes.push(`${kind}: ws-load errors ${JSON.stringify(res.errors)}, connection failures ${res.connectionFailures}, disconnects ${res.disconnects}, stalled ${res.turnTimeouts}, anomalies ${JSON.stringify(res.anomalies)}`);
    const gen = res.generator.map((g) => g.cpuPct).join('+');
    rows.push([kind, res.turnsPerSec, res.ttftMs.p50, res.ttftMs.p99, res.turnMs.p50, res.turnMs.p99,
      res.server?.cpuPct, cpuMsPerTurn, res.server?.rssKb ? res.server.rssKb / 1024 : undefined, redisCpuPct, gen,
      m.recallMeanMs, `${errs}/${scan.warn}/${scan.error}`]);
    log(`   ${res.turnsPerSec} turns/s, TTFT p50 ${fmt(res.ttftMs.p50)} ms p99 ${fmt(res.ttftMs.p99)} ms, npcd cpu ${res.server?.cpuPct}%` +
      (m.memoriesStored !== undefined ? `, ${m.memoriesStored} memories stored, ${m.recalls ?? 0} recalls` : '') +
      (m.storeErrors ? `, store errors ${m.storeErrors}` : ''));
  }
  const out = [];
  out.push(`### Turn throughput (mock provider)`);
  out.push('');
  out.push(`${machineLine()}. npcd: \`serve --model mock --mock-tokens ${o.mockTokens} --mock-ttft 0 --mock-token-delay 0\`` +
    `${o.recallOff ? ' `--recall 0` (recall off: nothing embedded or remembered)' : ', recall on with the server defaults (`--recall 4 --embed glove`)'}` +
    `${o.npcdArgs.length ? `, extra \`${o.npcdArgs.join(' ')}\`` : ''}, a fresh server per store. ` +
    `Load: bench/ws-load.mjs, ${o.connections} connections (one session each), ${o.warmup} s warmup + ${o.duration} s measured, one generator process.`);
  out.push('');
  out.push(table(['store', 'turns/s', 'TTFT p50 ms', 'TTFT p99 ms', 'turn p50 ms', 'turn p99 ms', 'npcd CPU %', 'npcd CPU ms/turn', 'npcd RSS MiB', 'redis CPU %', 'generator CPU %', 'recall mean ms', 'errors/warn/error log'], rows));
  out.push('');
  out.push('npcd CPU % and ms/turn: over the measured window (/proc/PID/stat, all threads). redis CPU %: all redis-server processes of the store, over the whole ws-load run ' +
    '(ramp-up and warmup included). recall mean: npcd_memory_recall_duration_seconds sum/count from /metrics, whole run. ' +
    'errors/warn/error log: ws-load errors + failures + anomalies, then warn and error lines in npcd\'s log.');
  if (notes.length) {
    out.push('');
    for (const n of notes) out.push(`- ${n}`);
  }
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------------------
// Part 2: recall latency


const W = {
  name: ['Mara', 'Lin', 'Aldric', 'Yue', 'Tomas', 'Sera', 'Kai', 'Brann', 'Iris', 'Wen', 'the captain', 'the innkeeper', 'the blacksmith', 'the princess', 'the monk', 'my sister', 'the stranger', 'the old fisherman'],
  verb: ['carried', 'hid', 'found', 'lost', 'forged', 'stole', 'buried', 'sold', 'promised', 'burned', 'repaired', 'guarded', 'painted', 'opened', 'broke', 'returned', 'traded', 'remembered'],
  adj: ['old', 'silver', 'broken', 'hidden', 'golden', 'cursed', 'tiny', 'heavy', 'ancient', 'red', 'secret', 'wooden', 'bronze', 'cracked', 'sacred', 'bitter'],
  noun: ['sword', 'letter', 'map', 'lantern', 'ring', 'key', 'book', 'flute', 'cup', 'blade', 'coin', 'mirror', 'horse', 'banner', 'scroll', 'knife', 'amulet', 'song'],
  prep: ['near', 'beneath', 'behind', 'inside', 'beyond', 'across', 'under', 'beside'],
  place: ['the river', 'the temple', 'the market', 'the northern bridge', 'the mountain pass', 'the harbor', 'the old well', 'the tavern', 'the forest', 'the palace gate', 'the bamboo grove', 'the ruined tower', 'the village', 'the east wall'],
  time: ['at dawn', 'last winter', 'during the festival', 'before the storm', 'at midnight', 'after the battle', 'in spring', 'yesterday', 'long ago', ''],
};

function sentences(seed) {
  const r = prng(seed);
  const pick = (k) => W[k][Math.floor(r() * W[k].length)];
  const cap = (s) => s[0].toUpperCase() + s.slice(1);
  return {
    memory(i) {
      // Alternate a user line and a reply line, as a turn leaves them.
      const who = i % 2 === 0 ? 'I' : cap(pick('name'));
      return `${who} ${pick('verb')} the ${pick('adj')} ${pick('noun')} ${pick('prep')} ${pick('place')} ${pick('time')}`.trim() + '.';
    },
    query() {
      switch (Math.floor(r() * 3)) {
        case 0: return `Who ${pick('verb')} the ${pick('noun')}?`;
        case 1: return `Do you remember the ${pick('adj')} ${pick('noun')} ${pick('prep')} ${pick('place')}?`;
        default: return `Where did ${pick('name')} hide the ${pick('adj')} ${pick('noun')}?`;
      }
    },
  };
}

function randomUnitVector(r, dim) {
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i += 2) {
    // Box–Muller: two normal samples.
    const u = Math.max(r(), 1e-12);
    const t = 2 * Math.PI * r();
    const m = Math.sqrt(-2 * Math.log(u));
    v[i] = m * Math.cos(t);
    if (i + 1 < dim) v[i + 1] = m * Math.sin(t);
  }
  for (let i = 0; i < dim; i++) norm += v[i] * v[i];
  norm = Math.sqrt(norm);
  for (let i = 0; i < dim; i++) v[i] /= norm;
  return v;
}

async function recallPart(o) {
  let mods;
  try {
    mods = await Promise.all([
      import('../dist/memory/index.js'),
      import('../dist/memory/recall.js'),
      import('../dist/memory/embed/index.js'),
      import('../dist/memory/vector/index.js'),
      import('../dist/native/index.js'),
      import('../dist/log.js'),
    ]);
  } catch (err) {
    throw new Error(`cannot load the build (${err.message}): run npm run build first`);
  }
  const [{ InProcessMemoryStore, RedisMemoryStore }, { MemoryRecall, DEFAULT_RECALL }, { createEmbedder }, { searchOffLoop, runsOffLoop }, { nativeLoadError }, { silentLogger }] = mods;
  const nativeErr = o.native ? nativeLoadError() : undefined;
  if (nativeErr) log(`native module not loaded (${nativeErr.message}); exact search in JS`);
  const native = o.native && !nativeErr;

  const embedder = createEmbedder('glove');
  let t = performance.now();
  await embedder.init();
  const initMs = performance.now() - t;
  const dim = embedder.dim;
  const options = { ...DEFAULT_RECALL, maxMemories: Math.max(DEFAULT_RECALL.maxMemories, ...o.sizes) };
  const want = options.k * 4;
  const ttlS = 3600;

  // Warm-up, not reported: loads the native module and JIT-compiles the paths
  // timed below, so that the first size measured does not pay for them.
  {
    const store = new InProcessMemoryStore({ budgetBytes: 64 * 1024 ** 3, sweepIntervalMs: 0 });
    const gen = sentences(3);
    const texts = Array.from({ length: 64 }, (_, i) => gen.memory(i));
    const vectors = await embedder.embed(texts);
    await store.addMemories('warm-up', texts.map((text, i) => ({ kind: 'turn', character: CHARACTER, text, at: Date.now(), weight: 0, vector: vectors[i] })), 1000, ttlS);
    const recall = new MemoryRecall(store, embedder, { native }, options, silentLogger);
    for (let i = 0; i < 20; i++) await recall.recall('warm-up', CHARACTER, gen.query(), new Set());
    await store.close();
  }

  const setupRows = [];
  const queryRows = [];
  const notes = [];
  let implementation;

  for (const kind of o.stores) {
    const nodes = await redisNodes(kind, o.out);
    for (const n of o.sizes) {
      await flushAll(nodes);
      const store = kind === 'memory'
        ? new InProcessMemoryStore({ budgetBytes: 64 * 1024 ** 3, sweepIntervalMs: 0 })
        : new RedisMemoryStore({ redis: kind === 'redis' ? nodes[0].url : nodes.map((x) => x.address), keyPrefix: 'npcdbench:', commandTimeoutMs: o.redisTimeoutMs, connectTimeoutMs: 5000, logger: silentLogger });
      const session = `bench-recall-${n}-${process.pid}`;
      log(`== recall: ${kind} store, filling ${n.toLocaleString('en-US')} memories (${o.vectors}) ...`);
      const gen = sentences(1);
      const rnd = prng(7);
      let embedMs = 0;
      let writeMs = 0;
      for (let i = 0; i < n; i += o.batch) {
        const count = Math.min(o.batch, n - i);
        const texts = Array.from({ length: count }, (_, j) => gen.memory(i + j));
        t = performance.now();
        const vectors = o.vectors === 'random' ? texts.map(() => randomUnitVector(rnd, dim)) : await embedder.embed(texts);
        embedMs += performance.now() - t;
        const at = Date.now();
        const items = texts.map((text, j) => ({ kind: 'turn', character: CHARACTER, text, at, weight: 0, turnId: `m${(i + j) >> 1}`, vector: vectors[j] }));
        t = performance.now();
        await store.addMemories(session, items, options.maxMemories, ttlS);
        writeMs += performance.now() - t;
      }
      t = performance.now();
      let all = await store.memories(session, 0);
      const readMs = performance.now() - t;
      if (all.length !== n) notes.push(`${kind} ${n}: the store returned ${all.length} memories, not ${n}`);
      all = undefined;
      if (kind !== 'memory' && readMs > 2000) notes.push(`${kind} ${n}: reading the session's memories took ${fmt(readMs)} ms, more than npcd's default --redis-timeout (2s): a server's first recall of such a session would time out`);

      const recall = new MemoryRecall(store, embedder, { native }, options, silentLogger);
      const q = sentences(2);
      const queries = Array.from({ length: o.queries + 2 }, () => q.query());
      const none = new Set();
      log(`   first recall (index build), one warm-up, then ${o.queries} timed recalls ...`);
      t = performance.now();
      await recall.recall(session, CHARACTER, queries[0], none);
      const buildMs = performance.now() - t;
      await recall.recall(session, CHARACTER, queries[1], none);
      // MemoryRecall keeps its per-session indexes in a private field (a plain property once compiled).
      const entry = recall.indexes?.get(session);
      if (!entry) throw new Error('MemoryRecall has no `indexes` map any more: update bench/memory.mjs');
      const index = entry.index;
      implementation = `${index.implementation} ${index.kind}`;
      const rec = [];
      const emb = [];
      const sea = [];
      const cat = [];
      let hits = 0;
      for (let i = 2; i < queries.length; i++) {
        const text = queries[i];
        t = performance.now();
        hits += (await recall.recall(session, CHARACTER, text, none)).length;
        rec.push(performance.now() - t);
        t = performance.now();
        const [v] = await embedder.embed([text]);
        emb.push(performance.now() - t);
        t = performance.now();
        await searchOffLoop(index, v, Math.min(index.size, want));
        sea.push(performance.now() - t);
        t = performance.now();
        await store.memories(session, entry.lastId);
        cat.push(performance.now() - t);
      }
      const R = summary(rec);
      const E = summary(emb);
      const S = summary(sea);
      const C = summary(cat);
      setupRows.push([kind, n, o.vectors, embedMs / 1000, writeMs / 1000, readMs, buildMs, index.size, runsOffLoop(index) ? 'libuv pool' : 'event loop']);
      queryRows.push([kind, n, R.p50, R.p99, R.mean, E.p50, E.p99, S.p50, S.p99, C.p50, C.p99, hits / rec.length]);
      log(`   build ${fmt(buildMs)} ms; recall p50 ${fmt(R.p50)} p99 ${fmt(R.p99)} ms; search p50 ${fmt(S.p50)} ms; store catch-up p50 ${fmt(C.p50)} ms`);
      recall.drop(session);
      await store.delete(session).catch(() => {});
      await store.close();
      globalThis.gc?.();
    }
  }

  const out = [];
  out.push(`### Recall latency`);
  out.push('');
  out.push(`${machineLine()}. Embedder glove (${dim}-d, init ${fmt(initMs)} ms), k ${options.k} (search asks for ${want}), min score ${options.minScore}, ` +
    `exact cosine index: ${implementation ?? '-'}. One session, one character. ` +
    (o.vectors === 'sentences'
      ? 'Memories: synthetic English sentences (seeded generator: names, objects, places) embedded with glove. '
      : 'Memories: random unit vectors (queries are still embedded sentences, so scores are near 0 and hits are rare). ') +
    `Queries: ${o.queries} synthetic questions, timed one at a time after the first recall (which builds the index) and one warm-up.`);
  out.push('');
  out.push(table(['store', 'memories', 'vectors', 'fill: embed s', 'fill: store write s', 'store read all ms', 'first recall (build) ms', 'index size', 'search runs on'], setupRows));
  out.push('');
  out.push(table(['store', 'memories', 'recall p50 ms', 'recall p99 ms', 'recall mean ms', 'embed p50 ms', 'embed p99 ms', 'search p50 ms', 'search p99 ms', 'store catch-up p50 ms', 'store catch-up p99 ms', 'hits/query'], queryRows));
  out.push('');
  out.push('recall: MemoryRecall.recall() (embeds the query while it asks the store for memories newer than the index, then searches). ' +
    'embed, search and store catch-up are timed alone after each recall: embedder.embed([query]); searchOffLoop(index, vector, k*4); ' +
    'store.memories(session, lastId) (nothing new: an empty answer; a Redis round trip). ' +
    'first recall: reading every memory from the store, adding them to a new index, embedding and searching. ' +
    'hits/query: memories returned (score >= min score, at most k).');
  if (notes.length) {
    out.push('');
    for (const n of notes) out.push(`- ${n}`);
  }
  out.push('');
  return out.join('\n');
}

// ---------------------------------------------------------------------------

async function main() {
  const o = parseCli();
  mkdirSync(o.out, { recursive: true });
  log(`logs: ${o.out}`);
  const t0 = performance.now();
  if (o.parts.includes('turns')) process.stdout.write((await turnsPart(o)) + '\n');
  if (o.parts.includes('recall')) process.stdout.write((await recallPart(o)) + '\n');
  for (const c of [...children]) await stopChild(c);
  log(`done in ${fmt((performance.now() - t0) / 1000)} s`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err?.stack ?? err);
    process.exit(1);
  },
);
