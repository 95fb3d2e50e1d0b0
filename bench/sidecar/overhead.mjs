#!/usr/bin/env node
// eBPF sidecar overhead: npcd under the same load with `npcd sidecar`
// attached and without it, alternating in one run.
// See bench/README.md ("eBPF sidecar overhead"). Run with --help for options.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, openSync, readFileSync, writeFileSync, existsSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { freePort, waitPort, processTree, cpuTicks, machineTicks, clockTicks, loadAvg, replyTokens } from '../providers/lib.mjs';
import { parseProm, promValue, promSum, establishedByLocalPort, tracepointPrograms, bpfProgStats, median, minMax, roundOrder, machineCounters, procCpu } from './lib.mjs';
import { runJsonChild } from '../lib/child.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');

const HELP = `Usage: node bench/sidecar/overhead.mjs [options]

Starts npcd (as bench/run-ws.sh does) and loads it the same way in every run,
alternating runs without and with \`npcd sidecar\` attached to npcd's port.
Every run gets a freshly started npcd (and sidecar). In runs with the
sidecar, this script scrapes its /metrics once per --scrape-every seconds,
as Prometheus would, and afterwards checks that the sidecar counted the
run's connections (a detached sidecar fails the run).

  --load ws|sse          ws: bench/ws-load.mjs chat turns against the mock model (default)
                         sse: bench/providers/ streaming relay (mock OpenAI upstream -> npcd -> clients)
  --rounds N             rounds; each has one run without and one with the sidecar (default 6)
  --order abba|ab        abba: A B, B A, A B, ... so that drift cancels (default abba)
  --duration S           measured seconds per run (default 8)
  --warmup S             unmeasured seconds per run before the window (default 2)
  --connections N        ws: connections (default 100)
  --procs P              ws: generator processes (default 1)
  --tokens N             tokens per reply (default 16 for ws, 64 for sse)
  --clients C            sse: concurrent streaming clients (default 200)
  --token-interval MS    sse: the upstream's pause between tokens (default 20, i.e. 50 tokens/s per client)
  --ttft MS              sse: the upstream's delay before the first token (default 20)
  --npcd-port P          npcd's port (default 0: a free port, new for every run)
  --upstream-port P      sse: the mock upstream's port (default 0: a free port per run)
  --metrics-port P       the sidecar's metrics port (default 0: a free port per run)
  --extra-ports LIST     more ports for the sidecar's --ports; npcd's port (and in sse the
                         upstream's) is always watched
  --sidecar-interval S   the sidecar's --interval (default 5)
  --scrape-every S       scrape period of the sidecar's /metrics during a run (default 1)
  --sidecar-args 'ARGS'  extra flags for npcd sidecar (split on spaces), e.g. --no-socket-rtt
  --npcd-args 'ARGS'     extra flags for npcd serve (split on spaces)
  --npcd-age S           the load starts S seconds after npcd is up, with or without the
                         sidecar (whose start-up and first TCP advice pass fit in that time),
                         so that npcd is equally old in every run (default 9)
  --quiet-below PCT      before each load, wait until the machine's CPU use over 1 s (all
                         cores, 200 = two busy cores) is below PCT and no other process has
                         BPF programs on tracepoints (default 10) ...
  --quiet-wait S         ... but at most S seconds; then run anyway and record it (default 60)
  --max-other PCT        a run is disturbed when, in its window, other processes used more than
                         PCT % CPU (of one core), the hypervisor stole more than PCT %, or another
                         process held BPF programs on tracepoints; a round with a disturbed run
                         is run again (default 10) ...
  --max-repeats N        ... at most N times in all (default: --rounds)
  --bpf-stats            turn on kernel.bpf_stats_enabled during the runs with the sidecar and
                         record the run count and time of each of its BPF programs (this adds
                         a clock read per event, so do not use it for the throughput figures)
  --out FILE             results JSON (default bench/results/sidecar-overhead-<load>-<UTC time>.json)
  -h, --help

Needs root (the sidecar loads BPF programs) and dist/ (npm run build first;
this script builds nothing). Logs go to a folder next to the JSON file.
`;

const { values: opt } = parseArgs({
  options: {
    load: { type: 'string', default: 'ws' },
    rounds: { type: 'string', default: '6' },
    order: { type: 'string', default: 'abba' },
    duration: { type: 'string', default: '8' },
    warmup: { type: 'string', default: '2' },
    connections: { type: 'string', default: '100' },
    procs: { type: 'string', default: '1' },
    tokens: { type: 'string' },
    clients: { type: 'string', default: '200' },
    'token-interval': { type: 'string', default: '20' },
    ttft: { type: 'string', default: '20' },
    'npcd-port': { type: 'string', default: '0' },
    'upstream-port': { type: 'string', default: '0' },
    'metrics-port': { type: 'string', default: '0' },
    'extra-ports': { type: 'string', default: '' },
    'sidecar-interval': { type: 'string', default: '5' },
    'scrape-every': { type: 'string', default: '1' },
    'sidecar-args': { type: 'string', default: '' },
    'npcd-args': { type: 'string', default: '' },
    'npcd-age': { type: 'string', default: '9' },
    'quiet-below': { type: 'string', default: '10' },
    'quiet-wait': { type: 'string', default: '60' },
    'max-other': { type: 'string', default: '10' },
    'max-repeats': { type: 'string' },
    'bpf-stats': { type: 'boolean', default: false },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }

function die(msg) { console.error(msg); process.exit(2); }
const num = (name, min, max = Infinity, int = false) => {
  const v = Number(opt[name]);
  if (!Number.isFinite(v) || v < min || v > max || (int && !Number.isInteger(v))) die(`--${name}: expected ${int ? 'an integer' : 'a number'} from ${min}${max === Infinity ? '' : ` to ${max}`} (got ${opt[name]})`);
  return v;
};
const LOAD = opt.load;
if (LOAD !== 'ws' && LOAD !== 'sse') die('--load must be ws or sse');
if (opt.order !== 'abba' && opt.order !== 'ab') die('--order must be abba or ab');
const ROUNDS = num('rounds', 1, 100, true);
const DURATION = num('duration', 1, 300);
const WARMUP = num('warmup', 0, 60);
const CONNS = num('connections', 1, 10_000, true);
const PROCS = num('procs', 1, 16, true);
const TOKENS = opt.tokens === undefined ? (LOAD === 'ws' ? 16 : 64) : num('tokens', 1, 10_000, true);
const CLIENTS = num('clients', 1, 2000, true);
const TOKEN_INTERVAL = num('token-interval', 0, 10_000);
const UP_TTFT = num('ttft', 0, 10_000);
const NPCD_PORT = num('npcd-port', 0, 65535, true);
const UP_PORT = num('upstream-port', 0, 65535, true);
const METRICS_PORT = num('metrics-port', 0, 65535, true);
const EXTRA_PORTS = opt['extra-ports'].split(',').map((s) => s.trim()).filter(Boolean).map(Number);
if (EXTRA_PORTS.some((p) => !Number.isInteger(p) || p < 1 || p > 65535)) die('--extra-ports: ports from 1 to 65535');
const SC_INTERVAL = num('sidecar-interval', 1, 3600, true);
const SCRAPE_EVERY = num('scrape-every', 0.1, 60);
const NPCD_AGE = num('npcd-age', 1, 600);
const QUIET_BELOW = num('quiet-below', 0, 10_000);
const QUIET_WAIT = num('quiet-wait', 0, 3600);
const SIDECAR_ARGS = opt['sidecar-args'].split(' ').filter(Boolean);
const NPCD_ARGS = opt['npcd-args'].split(' ').filter(Boolean);
const MAX_OTHER = num('max-other', 0, 200);
const MAX_REPEATS = opt['max-repeats'] === undefined ? ROUNDS : num('max-repeats', 0, 100, true);
const CHARACTER_WS = 'gufeng-jianke';
// Sampling period of the CPU counters during a load.
const SAMPLE_MS = 250;
// From spawning the load generator to its first connection (node start-up, imports).
const BOOT_MS = 70;
const CHARACTER_SSE = 'station-ai';
// sse: client starts are spread over one reply, then the warmup.
const RAMP_MS = LOAD === 'sse' ? Math.round(UP_TTFT + TOKENS * TOKEN_INTERVAL) : 0;

const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const OUT = opt.out ?? join(ROOT, 'bench', 'results', `sidecar-overhead-${LOAD}-${stamp}.json`);
const LOGS = OUT.replace(/\.json$/, '') + '-logs';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(6)} s] ${msg}\n`);

// ---------------------------------------------------------------------------
// Child processes: each in its own process group; only these are ever signalled.

const children = new Set();
let bpfStatsRestore = null;

function start(name, cmd, args, cwd = ROOT) {
  const fd = openSync(join(LOGS, `${name}.log`), 'a');
  const child = spawn(cmd, args, { cwd, stdio: ['ignore', fd, fd], detached: true });
  child.name = name;
  child.exited = false;
  child.exitInfo = null;
  child.on('exit', (code, signal) => { child.exited = true; child.exitInfo = { code, signal }; children.delete(child); });
  children.add(child);
  return child;
}

/** SIGTERM to the process itself (the sidecar stops its programs on it), SIGKILL to its group after graceMs. */
async function stop(child, graceMs = 10_000) {
  if (child.exited) return { graceful: true };
  try { process.kill(child.pid, 'SIGTERM'); } catch { /* gone */ }
  const until = Date.now() + graceMs;
  while (!child.exited && Date.now() < until) await sleep(50);
  let graceful = child.exited;
  if (!graceful) {
    try { process.kill(-child.pid, 'SIGKILL'); } catch { /* gone */ }
    while (!child.exited) await sleep(50);
  }
  // Anything left in its process group (it should be empty by now).
  try { process.kill(-child.pid, 'SIGKILL'); graceful = false; } catch { /* group empty */ }
  return { graceful, exit: child.exitInfo };
}

async function stopAll() {
  await Promise.all([...children].map((c) => stop(c, 5000)));
  restoreBpfStats();
}

function setBpfStats(on) {
  try {
    const path = '/proc/sys/kernel/bpf_stats_enabled';
    if (bpfStatsRestore === null) bpfStatsRestore = readFileSync(path, 'utf8').trim();
    writeFileSync(path, on ? '1' : bpfStatsRestore);
    return true;
  } catch (err) {
    log(`cannot set kernel.bpf_stats_enabled: ${err.message}`);
    return false;
  }
}
function restoreBpfStats() {
  if (bpfStatsRestore !== null) {
    try { writeFileSync('/proc/sys/kernel/bpf_stats_enabled', bpfStatsRestore); } catch { /* ignore */ }
  }
}

process.on('SIGINT', () => { stopAll().then(() => process.exit(130)); });
process.on('SIGTERM', () => { stopAll().then(() => process.exit(143)); });


async function getText(url, timeoutMs = 5000) {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  return { status: res.status, text };
}

async function pickPort(fixed) { return fixed || freePort(); }

function sh(cmd, args) {
  try { return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 10_000 }).trim(); } catch { return null; }
}

function gitCommit() {
  const head = sh('git', ['-C', ROOT, 'rev-parse', '--short', 'HEAD']);
  if (!head) return null;
  const dirty = sh('git', ['-C', ROOT, 'status', '--porcelain', '--', 'src', 'bpf']);
  return dirty ? `${head} (src/ or bpf/ modified)` : head;
}

/**
 * CPU ticks of the sidecar: its node process and every process under it
 * (the bpftrace programs), plus the children its node process has reaped
 * (ss and tc, run by the TCP advice).
 */
function sidecarCpu(root, pids) {
  let t = 0;
  for (const p of pids) {
    const c = procCpu(p);
    if (!c) continue;
    t += c.own;
    if (p === root) t += c.reaped;
  }
  return t;
}

/** CPU ticks of a set of processes: { pid: { utime, stime } }. */
function ticksOf(pids) { return cpuTicks(pids); }

function machinePct(a, b, seconds) {
  if (!a || !b || !(seconds > 0)) return null;
  return ((b.busy - a.busy) * 100) / clockTicks() / seconds;
}

/** Tracepoint programs held by processes outside `ours` (pids). */
function foreignTracepoints(ours) {
  const all = tracepointPrograms();
  if (all === null) return null;
  return all.filter((e) => !ours.has(e.pid)).map((e) => ({ pid: e.pid, tracepoint: e.tracepoint }));
}

/**
 * Waits (bounded) until the machine's CPU use over 1 s is below --quiet-below
 * and no other process holds BPF programs on tracepoints. Returns what it saw last.
 */
async function waitQuiet(ours, maxWaitS = QUIET_WAIT) {
  const t0 = Date.now();
  let pct = null;
  let foreign = null;
  for (;;) {
    const a = machineTicks();
    await sleep(1000);
    const b = machineTicks();
    pct = machinePct(a, b, 1);
    foreign = foreignTracepoints(ours);
    const busy = pct !== null && pct >= QUIET_BELOW;
    const traced = foreign !== null && foreign.length > 0;
    if (!busy && !traced) break;
    if (Date.now() - t0 >= maxWaitS * 1000) {
      if (maxWaitS > 0) log(`   not quiet after ${maxWaitS} s (machine CPU ${pct?.toFixed(0)} %, other tracepoint programs: ${foreign ? foreign.map((f) => `${f.pid}:${f.tracepoint}`).join(' ') || 'none' : '?'}); running anyway`);
      break;
    }
  }
  const waitedS = Number(((Date.now() - t0) / 1000).toFixed(1));
  if (waitedS > 1.5) log(`   waited ${waitedS} s for a quiet machine`);
  return { waitedS, machineCpuPct: pct === null ? null : Number(pct.toFixed(1)), loadAvg: loadAvg(), foreignTracepoints: foreign };
}

// ---------------------------------------------------------------------------
// npcd, the mock upstream and the sidecar

async function startNpcd(tag, upPort) {
  const port = await pickPort(NPCD_PORT);
  const args = LOAD === 'ws'
    ? ['dist/cli.js', 'serve', '--port', String(port), '--host', '127.0.0.1', '--model', 'mock', '--mock-tokens', String(TOKENS),
      '--mock-ttft', '0', '--mock-token-delay', '0', '--log-level', 'warn', ...NPCD_ARGS]
    : ['dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', String(port), '--model', `openai:bench-model?url=http://127.0.0.1:${upPort}/v1`,
      '--no-watch', '--log-level', 'warn', '--max-reply-tokens', String(Math.max(256, TOKENS)), '--upstream-connections', String(CLIENTS + 16), ...NPCD_ARGS];
  const child = start(`npcd-${tag}`, process.execPath, args);
  if (!(await waitPort(child, port, 30))) throw new Error(`npcd did not start; see ${LOGS}/npcd-${tag}.log`);
  return { child, port, cmd: `node ${args.join(' ')}` };
}

async function startUpstream(tag) {
  const port = await pickPort(UP_PORT);
  const args = [join(ROOT, 'bench', 'providers', 'upstream.mjs'), '--port', String(port), '--tokens', String(TOKENS), '--interval', String(TOKEN_INTERVAL), '--ttft', String(UP_TTFT)];
  const child = start(`upstream-${tag}`, process.execPath, args);
  if (!(await waitPort(child, port, 10))) throw new Error(`the upstream did not start; see ${LOGS}/upstream-${tag}.log`);
  return { child, port };
}

const EXPECTED_TRACEPOINTS = {
  'tcp-srtt': ['tcp_probe'],
  'tcp-connect': ['inet_sock_set_state'],
  'tcp-retrans': ['tcp_retransmit_skb', 'tcp_retransmit_synack'],
};

/**
 * Starts `npcd sidecar` and waits until every program runs: /status lists
 * each as running, each printed its BEGIN line (its probes are attached by
 * then), and bpftool shows each program's tracepoints attached.
 */
async function startSidecar(tag, ports) {
  const mport = await pickPort(METRICS_PORT);
  const args = ['dist/cli.js', 'sidecar', '--ports', ports.join(','), '--metrics-port', String(mport), '--metrics-host', '127.0.0.1',
    '--interval', `${SC_INTERVAL}s`, ...SIDECAR_ARGS];
  const t0 = performance.now();
  const child = start(`sidecar-${tag}`, process.execPath, args);
  const base = `http://127.0.0.1:${mport}`;
  const until = Date.now() + 60_000;
  let status = null;
  // 1. /status: every program running, with a pid, and ready (its BEGIN line came) where /status says so.
  const up = (p) => p.running && p.pid && p.ready !== false;
  while (Date.now() < until) {
    if (child.exited) throw new Error(`the sidecar exited (${JSON.stringify(child.exitInfo)}); see ${LOGS}/sidecar-${tag}.log`);
    try {
      const r = await getText(`${base}/status`, 2000);
      if (r.status === 200) {
        status = JSON.parse(r.text);
        if (status.programs.length > 0 && status.programs.every(up)) break;
      }
    } catch { /* not listening yet */ }
    await sleep(100);
  }
  if (!status || !status.programs.every(up)) throw new Error(`sidecar programs not running: ${JSON.stringify(status?.programs ?? null)}`);
  // 2. Every program's BEGIN printf ("<name>: tracing ...") in the sidecar's log.
  const names = status.programs.map((p) => p.name);
  const logFile = join(LOGS, `sidecar-${tag}.log`);
  for (;;) {
    const text = readFileSync(logFile, 'utf8');
    const missing = names.filter((n) => !text.includes(`"msg":"${n}: tracing`));
    const errored = names.filter((n) => text.includes(`"msg":"${n}: error:`));
    if (errored.length) throw new Error(`sidecar program(s) failed: ${errored.join(', ')}; see ${logFile}`);
    if (missing.length === 0) break;
    if (Date.now() > until) throw new Error(`no BEGIN line from ${missing.join(', ')}; see ${logFile}`);
    await sleep(100);
  }
  // 3. bpftool: each program's tracepoints attached, held by its bpftrace pid
  //    (bpftool walks every process's descriptors; asked again if a listing comes back short).
  let attached = null;
  for (let tries = 0; ; tries++) {
    const tps = tracepointPrograms();
    if (tps === null) break;
    attached = {};
    const lacking = [];
    for (const p of status.programs) {
      const have = tps.filter((e) => e.pid === p.pid).map((e) => e.tracepoint).sort();
      attached[p.name] = have;
      for (const w of EXPECTED_TRACEPOINTS[p.name] ?? []) if (!have.includes(w)) lacking.push(`${p.name} (pid ${p.pid}): ${w}`);
    }
    if (lacking.length === 0) break;
    if (tries >= 20) throw new Error(`sidecar programs without their BPF program (bpftool perf list): ${lacking.join(', ')}`);
    await sleep(250);
  }
  const readyMs = performance.now() - t0;
  const pids = processTree(child.pid);
  const readyCpu = sidecarCpu(child.pid, pids);
  // 4. Its TCP advice (npcd_tcp_advice, refreshed once a minute; the first pass comes one
  //    --interval after start): wait for the first pass, so that the measured window sees
  //    the steady state. Its cost is recorded apart.
  let advice = null;
  const m = await getText(`${base}/metrics`).catch(() => null);
  if (m && m.text.includes('# TYPE npcd_tcp_advice ')) {
    const until2 = Date.now() + (SC_INTERVAL + 30) * 1000;
    for (;;) {
      const r = await getText(`${base}/metrics`).catch(() => null);
      if (r && /^npcd_tcp_advice\{/m.test(r.text)) { advice = { firstPassAfterMs: Math.round(performance.now() - t0) }; break; }
      if (Date.now() > until2) { advice = { firstPassAfterMs: null }; break; }
      await sleep(250);
    }
    // ss and tc run as children of the sidecar; let them be reaped before reading.
    await sleep(500);
    advice.cpuMs = Math.round(((sidecarCpu(child.pid, pids) - readyCpu) * 1000) / clockTicks());
  }
  return { child, mport, base, args, status, attached, readyMs, readyCpuMs: (readyCpu * 1000) / clockTicks(), advice, pids, programPids: status.programs.map((p) => ({ name: p.name, pid: p.pid })) };
}

// ---------------------------------------------------------------------------
// Loads

function wsLoadArgs(port, npcdPid, label) {
  return ['--json', '--mode', 'chat', '--url', `ws://127.0.0.1:${port}/v1/ws`, '--connections', String(CONNS), '--procs', String(PROCS),
    '--duration', String(DURATION), '--warmup', String(WARMUP), '--character', CHARACTER_WS, '--server-pid', String(npcdPid), '--label', label];
}

function sseClientArgs(port, watch, label, extra = []) {
  return ['--json', '--url', `http://127.0.0.1:${port}/v1/chat/completions`, '--model', CHARACTER_SSE, ...extra,
    ...watch.flatMap((w) => ['--watch', w]), '--label', label];
}

// ---------------------------------------------------------------------------
// One run

async function oneRun(index, round, condition) {
  const tag = `${String(index + 1).padStart(2, '0')}-${condition}`;
  const run = { index: index + 1, round: round + 1, condition, startedAt: new Date().toISOString() };
  const owned = new Set();
  let upstream = null;
  let npcd = null;
  let sidecar = null;
  try {
    // A quiet machine before anything of this run starts (bounded wait) ...
    run.quietAtStart = await waitQuiet(owned);
    if (LOAD === 'sse') {
      upstream = await startUpstream(tag);
      for (const p of processTree(upstream.child.pid)) owned.add(p);
    }
    npcd = await startNpcd(tag, upstream?.port);
    run.npcdPort = npcd.port;
    run.npcdCmd = npcd.cmd;
    if (LOAD === 'sse') {
      // One request before anything is measured: npcd relays the upstream's exact text.
      const r = await runJsonChild(join(ROOT, 'bench', 'providers', 'client.mjs'),
        sseClientArgs(npcd.port, [], `check-${tag}`, ['--concurrency', '1', '--requests', '1', '--warmup', '0', '--duration', '30', '--ramp', '0', '--print-text', '--expect-tokens', String(TOKENS)]), 60);
      const ok = r.json && r.json.requests.ok === 1 && r.json.text === replyTokens(TOKENS).join('');
      run.check = { ok, errors: r.json?.requests?.errors ?? null };
      if (!ok) throw new Error(`npcd did not relay the upstream's reply: ${JSON.stringify(r.json ?? r.stderr).slice(0, 400)}`);
      run.upstreamPort = upstream.port;
    }
    const npcdUpAt = performance.now();
    const watched = LOAD === 'ws' ? [npcd.port, ...EXTRA_PORTS] : [npcd.port, upstream.port, ...EXTRA_PORTS];
    run.watchedPorts = watched;
    if (condition === 'with') {
      sidecar = await startSidecar(tag, watched);
      const startupCpuMs = sidecar.readyCpuMs;
      for (const p of sidecar.pids) owned.add(p);
      run.sidecar = {
        cmd: `node ${sidecar.args.join(' ')}`,
        readyMs: Math.round(sidecar.readyMs),
        programs: sidecar.programPids,
        attached: sidecar.attached,
        // CPU of the start-up until ready (node, bpftrace compiling and loading the programs), all processes of the tree.
        startupCpuMs: Math.round(startupCpuMs),
        firstAdvice: sidecar.advice,
      };
    }
    // Equal age: the last second of the wait reads the machine's CPU (... and no more waiting here,
    // so that npcd is as old in every run; load that comes later shows in the window's figures).
    await sleep(Math.max(0, NPCD_AGE * 1000 - 1000 - (performance.now() - npcdUpAt)));
    run.quiet = await waitQuiet(owned, 0);
    log(`run ${run.index} (round ${run.round}, ${condition} sidecar): npcd up ${((performance.now() - npcdUpAt) / 1000).toFixed(1)} s, machine CPU before ${run.quiet.machineCpuPct} %` +
      (run.quiet.foreignTracepoints?.length ? `, OTHER tracepoint programs: ${run.quiet.foreignTracepoints.map((f) => `${f.pid}:${f.tracepoint}`).join(' ')}` : ''));

    if (sidecar) {
      sidecar.pids = processTree(sidecar.child.pid);
      for (const p of sidecar.pids) owned.add(p);
    }
    if (condition === 'with' && opt['bpf-stats']) setBpfStats(true);

    // ---- the load, with the sampler (and, with the sidecar, the scraper) beside it
    const est0 = establishedByLocalPort(watched);
    const estMax = { ...est0 };
    const scrapes = { ok: 0, failed: 0, ms: [], bytes: 0 };
    const npcdPids = processTree(npcd.child.pid);
    const sidecarPids = sidecar ? processTree(sidecar.child.pid) : [];
    // CPU counters every SAMPLE_MS, so that figures can be read over the load's own window.
    const series = [];
    const sample = () => {
      const m = machineCounters();
      const pt = (pids) => { const t = ticksOf(pids); return Object.fromEntries(Object.entries(t).map(([p, x]) => [p, x.utime + x.stime])); };
      const self = process.cpuUsage();
      series.push({
        t: performance.now(), busy: m?.busy ?? 0, steal: m?.steal ?? 0, self: ((self.user + self.system) / 1e6) * clockTicks(),
        npcd: pt(npcdPids), sidecar: pt(sidecarPids), sidecarTotal: sidecar ? sidecarCpu(sidecar.child.pid, sidecarPids) : 0,
        bpf: sidecar ? bpfSnapshot(sidecar) : null,
      });
    };
    let loadDone = false;
    let scraping = false;
    let lastScrape = -Infinity;
    let lastEst = -Infinity;
    sample();
    const ticker = (async () => {
      let next = performance.now();
      while (!loadDone) {
        next += SAMPLE_MS;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait); else next = performance.now();
        if (loadDone) break;
        sample();
        const now = performance.now();
        if (now - lastEst >= 1000) {
          lastEst = now;
          const e = establishedByLocalPort(watched);
          for (const p of watched) estMax[p] = Math.max(estMax[p], e[p]);
        }
        if (sidecar && !scraping && now - lastScrape >= SCRAPE_EVERY * 1000 - SAMPLE_MS / 2) {
          lastScrape = now;
          scraping = true;
          getText(`${sidecar.base}/metrics`, 5000).then((r) => {
            if (r.status === 200) { scrapes.ok++; scrapes.bytes = r.text.length; scrapes.ms.push(performance.now() - now); } else scrapes.failed++;
          }, () => { scrapes.failed++; }).finally(() => { scraping = false; });
        }
      }
    })();
    let res;
    const tSpawn = performance.now();
    run.npcdAgeAtLoadS = round1((tSpawn - npcdUpAt) / 1000);
    if (LOAD === 'ws') {
      res = await runJsonChild(join(ROOT, 'bench', 'ws-load.mjs'), wsLoadArgs(npcd.port, npcd.child.pid, tag), DURATION + WARMUP + 120);
    } else {
      const watch = [`npcd=${npcd.child.pid}`, `upstream=${upstream.child.pid}`, ...(sidecar ? [`sidecar=${sidecar.child.pid}`] : [])];
      res = await runJsonChild(join(ROOT, 'bench', 'providers', 'client.mjs'), sseClientArgs(npcd.port, watch, tag, [
        '--concurrency', String(CLIENTS), '--duration', String(DURATION), '--warmup', String(WARMUP + RAMP_MS / 1000), '--ramp', String(RAMP_MS),
        '--timeout', '60', '--expect-tokens', String(TOKENS), '--interval', String(TOKEN_INTERVAL), '--ttft', String(UP_TTFT)]), DURATION + WARMUP + RAMP_MS / 1000 + 150);
    }
    loadDone = true;
    sample();
    await ticker;
    while (scraping) await sleep(10);
    if (condition === 'with' && opt['bpf-stats']) setBpfStats(false);
    const e1 = establishedByLocalPort(watched);
    for (const p of watched) estMax[p] = Math.max(estMax[p], e1[p]);
    if (!res.json) throw new Error(`the load generator failed (exit ${res.code}): ${res.stderr}`);
    run.load = res.json;

    // The measured window, on this process's clock: the generator starts (BOOT_MS), ramps up,
    // warms up, then measures for windowS. ws-load reports the ramp; client.mjs has none before its warmup.
    const w0 = tSpawn + BOOT_MS + (LOAD === 'ws' ? (res.json.ramp?.ms ?? 0) : 0) + (LOAD === 'ws' ? WARMUP : WARMUP + RAMP_MS / 1000) * 1000;
    const w1 = w0 + res.json.windowS * 1000;
    const at = (t, get) => interpolate(series, t, get);
    const windowS = (w1 - w0) / 1000;
    const hz = clockTicks();
    const pctOf = (get) => ((at(w1, get) - at(w0, get)) * 100) / hz / windowS;
    const sumTicks = (key) => (x) => Object.values(x[key]).reduce((a, b) => a + b, 0);
    run.window = { startMs: Math.round(w0 - tSpawn), seconds: res.json.windowS, generatorExitMs: Math.round(series[series.length - 1].t - tSpawn) };
    run.machineCpuPct = round1(pctOf((x) => x.busy));
    run.stealPct = round1(pctOf((x) => x.steal));
    run.selfCpuPct = round1(pctOf((x) => x.self));
    // The same window read for npcd from /proc here; it should match the generator's own figure.
    run.npcdWindowCpuPctHere = round1(pctOf(sumTicks('npcd')));
    // CPU of everything else on the machine in the window: busy − steal − npcd − generator − sidecar − this script
    // (and, for sse, the mock upstream).
    {
      const j = res.json;
      const machine = LOAD === 'ws' ? run.machineCpuPct : j.machineCpuPct;
      const ours = LOAD === 'ws'
        ? (j.server?.cpuPct ?? run.npcdWindowCpuPctHere) + (j.generator || []).reduce((a, g) => a + g.cpuPct, 0) + (sidecar ? pctOf((x) => x.sidecarTotal) : 0)
        : j.watched.reduce((a, w) => a + w.cpuPct, 0) + j.client.cpuPct;
      run.otherCpuPct = round1(machine - run.stealPct - ours - run.selfCpuPct);
    }
    if (sidecar) {
      run.sidecar.windowCpuPctHere = round2(pctOf((x) => x.sidecarTotal));
      run.sidecar.perProcessCpuPct = Object.fromEntries(sidecarPids.map((p) => [p, round2(pctOf((x) => x.sidecar[p] ?? 0))]));
      run.sidecar.scrapes = { ok: scrapes.ok, failed: scrapes.failed, msP50: round2(median(scrapes.ms)), msMax: round2(minMax(scrapes.ms).max), bytes: scrapes.bytes };
      if (opt['bpf-stats']) {
        const near = (t) => series.reduce((best, x) => (Math.abs(x.t - t) < Math.abs(best.t - t) ? x : best));
        const a = near(w0);
        const b = near(w1);
        run.sidecar.bpf = bpfDelta(a.bpf, b.bpf, (b.t - a.t) / 1000);
      }
    }
    run.established = { before: est0, max: estMax };
    run.foreignTracepointsAfter = foreignTracepoints(owned);
    if (sidecar) {
      run.verify = await verify(sidecar, run, watched);
      const st = await getText(`${sidecar.base}/status`).then((r) => JSON.parse(r.text)).catch(() => null);
      run.sidecar.restarts = st ? st.programs.reduce((s, p) => s + p.restarts, 0) : null;
      const stopped = await stop(sidecar.child);
      run.sidecar.stop = stopped;
      const left = tracepointPrograms()?.filter((e) => sidecar.pids.includes(e.pid)) ?? null;
      run.sidecar.attachedAfterStop = left ? left.length : null;
    }
    summariseRun(run);
    log(`   ${describe(run)}`);
  } catch (err) {
    run.failed = String(err && err.message || err);
    log(`   run failed: ${run.failed}`);
  } finally {
    if (opt['bpf-stats']) restoreBpfStats();
    for (const c of [sidecar?.child, npcd?.child, upstream?.child]) if (c) await stop(c);
  }
  return run;
}

/** Linear interpolation of get(sample) at time t over a time-ordered series. */
function interpolate(series, t, get) {
  if (t <= series[0].t) return get(series[0]);
  for (let i = 1; i < series.length; i++) {
    const b = series[i];
    if (b.t >= t) {
      const a = series[i - 1];
      return get(a) + ((get(b) - get(a)) * (t - a.t)) / (b.t - a.t);
    }
  }
  return get(series[series.length - 1]);
}

function bpfSnapshot(sidecar) {
  if (!opt['bpf-stats']) return null;
  const out = {};
  for (const { name, pid } of sidecar.programPids) out[name] = bpfProgStats(pid);
  return out;
}


function bpfDelta(a, b, seconds) {
  const out = {};
  for (const [name, progs] of Object.entries(b)) {
    out[name] = progs.map((p) => {
      const q = (a[name] || []).find((x) => x.progId === p.progId);
      const cnt = q ? p.runCnt - q.runCnt : null;
      const ns = q ? p.runTimeNs - q.runTimeNs : null;
      return { progId: p.progId, progType: p.progType === 5 ? 'tracepoint' : p.progType === 7 ? 'perf_event (interval)' : p.progType, runs: cnt, runsPerSec: cnt === null ? null : round2(cnt / seconds), nsPerRun: cnt ? Math.round(ns / cnt) : null, cpuMsPerSec: ns === null ? null : round2(ns / 1e6 / seconds) };
    });
  }
  return out;
}

/**
 * After the load: waits for the sidecar's next hand-over (its programs print
 * every --sidecar-interval) and checks that it counted the run's traffic.
 */
async function verify(sidecar, run, watched) {
  const np = String(run.npcdPort);
  const until = Date.now() + (SC_INTERVAL + 4) * 1000;
  let v = null;
  for (;;) {
    let samples = [];
    try { samples = parseProm((await getText(`${sidecar.base}/metrics`)).text); } catch { /* retry */ }
    const count = (name, labels) => promValue(samples, name, labels);
    v = {
      srttCount: {
        inbound: count('npcd_tcp_srtt_seconds_count', { direction: 'inbound', port: np }),
        outbound: count('npcd_tcp_srtt_seconds_count', { direction: 'outbound', port: np }),
      },
      connects: count('npcd_tcp_connect_duration_seconds_count', { port: np }),
      handshakesInbound: count('npcd_tcp_handshake_rtt_seconds_count', { direction: 'inbound', port: np }),
      handshakesOutbound: count('npcd_tcp_handshake_rtt_seconds_count', { direction: 'outbound', port: np }),
      connectFailures: promSum(samples.filter((s) => s.labels.port === np), 'npcd_tcp_connect_failures_total'),
      retransmits: promSum(samples, 'npcd_tcp_retransmits_total'),
      programsUp: samples.filter((s) => s.name === 'npcd_sidecar_program_up').map((s) => `${s.labels.program}=${s.value}`),
      outputErrors: promSum(samples, 'npcd_sidecar_output_errors_total'),
      lostEvents: promSum(samples, 'npcd_sidecar_lost_events_total'),
    };
    // Connections the load opened to npcd, from the load's own report and from /proc/net/tcp.
    const opened = run.established.max[run.npcdPort] - run.established.before[run.npcdPort];
    if (LOAD === 'ws') {
      v.expectedConnects = run.load.ramp.connected;
      v.openedPerProc = opened;
    } else {
      v.expectedConnects = opened;
      const up = String(run.upstreamPort);
      v.upstream = {
        connects: count('npcd_tcp_connect_duration_seconds_count', { port: up }),
        opened: run.established.max[run.upstreamPort] - run.established.before[run.upstreamPort],
        srttOutbound: count('npcd_tcp_srtt_seconds_count', { direction: 'outbound', port: up }),
        srttInbound: count('npcd_tcp_srtt_seconds_count', { direction: 'inbound', port: up }),
      };
    }
    const problems = [];
    if (!(v.srttCount.inbound > 0 && v.srttCount.outbound > 0)) problems.push(`srtt samples for port ${np}: ${JSON.stringify(v.srttCount)}`);
    if (v.connects !== v.expectedConnects) problems.push(`connects to ${np}: sidecar ${v.connects}, load ${v.expectedConnects}`);
    if (v.handshakesInbound !== v.expectedConnects) problems.push(`inbound handshakes on ${np}: sidecar ${v.handshakesInbound}, load ${v.expectedConnects}`);
    if (LOAD === 'ws' && v.openedPerProc !== v.expectedConnects) problems.push(`/proc/net/tcp saw ${v.openedPerProc} new connections, ws-load ${v.expectedConnects}`);
    if (LOAD === 'sse' && !(v.upstream.connects > 0 && v.upstream.srttOutbound > 0)) problems.push(`upstream port ${run.upstreamPort}: ${JSON.stringify(v.upstream)}`);
    if (v.programsUp.some((p) => !p.endsWith('=1'))) problems.push(`programs not up: ${v.programsUp.join(' ')}`);
    v.problems = problems;
    v.ok = problems.length === 0;
    if (v.ok || Date.now() > until) break;
    await sleep(500);
  }
  return v;
}

// ---------------------------------------------------------------------------
// Per-run figures and the report

const round1 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 10) / 10);
const round2 = (x) => (x === null || x === undefined || !Number.isFinite(x) ? null : Math.round(x * 100) / 100);

function summariseRun(run) {
  const r = run.load;
  const s = {};
  if (LOAD === 'ws') {
    s.throughput = r.turnsPerSec;
    s.ttftP50 = r.ttftMs?.p50 ?? null;
    s.ttftP99 = r.ttftMs?.p99 ?? null;
    s.npcdCpuPct = r.server?.cpuPct ?? null;
    s.npcdCpuMsPer1k = r.server?.cpuPct && r.turns ? round2(((r.server.cpuPct / 100) * r.windowS * 1000 * 1000) / r.turns) : null;
    s.generatorCpuPct = (r.generator || []).reduce((a, g) => a + g.cpuPct, 0);
    s.errors = (r.errorCount || 0) + (r.connectionFailures || 0) + Object.values(r.anomalies || {}).reduce((a, b) => a + b, 0) + (r.disconnects || 0) + (r.turnTimeouts || 0);
  } else {
    const w = (n) => r.watched.find((x) => x.name === n);
    s.throughput = r.tokensPerSecond;
    s.ttftP50 = r.ttftMs.p50;
    s.ttftP99 = r.ttftMs.p99;
    s.lagP99 = r.lagMs?.p99 ?? null;
    s.npcdCpuPct = w('npcd')?.cpuPct ?? null;
    s.npcdCpuMsPer1k = w('npcd')?.cpuMsPer1kTokens ?? null;
    s.generatorCpuPct = r.client.cpuPct;
    s.errors = r.requests.errorCount;
    if (w('sidecar')) {
      run.sidecar.windowCpuPct = w('sidecar').cpuPct;
      run.sidecar.windowProcesses = w('sidecar').processes.map((p) => ({ pid: p.pid, cmd: p.cmd.slice(0, 60), cpuMs: p.cpuMs }));
    }
  }
  s.sidecarCpuPct = run.sidecar ? (run.sidecar.windowCpuPct ?? run.sidecar.windowCpuPctHere) : null;
  s.machineCpuPct = LOAD === 'ws' ? run.machineCpuPct : r.machineCpuPct;
  s.machineBefore = run.quiet.machineCpuPct;
  s.verified = run.verify ? run.verify.ok : null;
  s.otherCpuPct = run.otherCpuPct;
  s.stealPct = run.stealPct;
  const why = [];
  if (run.otherCpuPct > MAX_OTHER) why.push(`other processes used ${run.otherCpuPct} % CPU in the window (limit ${MAX_OTHER})`);
  if (run.stealPct > MAX_OTHER) why.push(`steal ${run.stealPct} % in the window (limit ${MAX_OTHER})`);
  const foreign = [...(run.quiet.foreignTracepoints ?? []), ...(run.foreignTracepointsAfter ?? [])];
  if (foreign.length) why.push(`other processes held BPF programs on ${[...new Set(foreign.map((f) => f.tracepoint))].join(', ')}`);
  s.disturbed = why.length ? why.join('; ') : null;
  run.summary = s;
}

function describe(run) {
  const s = run.summary;
  const unit = LOAD === 'ws' ? 'turns/s' : 'tokens/s';
  return `${s.throughput} ${unit}, TTFT p50 ${s.ttftP50} p99 ${s.ttftP99} ms, npcd ${s.npcdCpuPct} % CPU (${s.npcdCpuMsPer1k} ms/1k), ` +
    `sidecar ${s.sidecarCpuPct ?? '–'} % CPU, machine ${s.machineCpuPct} % (others ${s.otherCpuPct} %, steal ${s.stealPct} %), errors ${s.errors}` +
    (s.disturbed ? ` — DISTURBED: ${s.disturbed}` : '') +
    (run.verify ? `, sidecar saw ${run.verify.connects}/${run.verify.expectedConnects} connects, ${run.verify.srttCount.inbound}+${run.verify.srttCount.outbound} srtt samples${run.verify.ok ? '' : ` — NOT VERIFIED: ${run.verify.problems.join('; ')}`}` : '');
}

function analyse(runs) {
  const clean = (r) => !r.failed && r.summary && r.summary.errors === 0 && r.summary.verified !== false && !r.summary.disturbed;
  // A round counts only when both of its runs are clean (the pair is what is compared).
  const goodAttempts = new Set();
  for (const r of runs) if (clean(r) && runs.filter((x) => x.attempt === r.attempt).every(clean)) goodAttempts.add(r.attempt);
  const good = runs.filter((r) => goodAttempts.has(r.attempt));
  const by = (c) => good.filter((r) => r.condition === c);
  const A = by('without');
  const B = by('with');
  const med = (rs, k) => median(rs.map((r) => r.summary[k]));
  const rounds = [];
  for (let i = 1; i <= ROUNDS; i++) {
    const a = A.findLast((r) => r.round === i);
    const b = B.findLast((r) => r.round === i);
    if (!a || !b) continue;
    rounds.push({
      round: i,
      order: a.index < b.index ? 'AB' : 'BA',
      runs: [a.index, b.index],
      ttftP99: [a.summary.ttftP99, b.summary.ttftP99],
      cpuPer1k: [a.summary.npcdCpuMsPer1k, b.summary.npcdCpuMsPer1k],
      sidecarCpuPct: b.summary.sidecarCpuPct,
      without: a.summary.throughput,
      with: b.summary.throughput,
      lossPct: ((a.summary.throughput - b.summary.throughput) / a.summary.throughput) * 100,
      cpuPer1kDeltaPct: a.summary.npcdCpuMsPer1k && b.summary.npcdCpuMsPer1k ? ((b.summary.npcdCpuMsPer1k - a.summary.npcdCpuMsPer1k) / a.summary.npcdCpuMsPer1k) * 100 : null,
      ttftP99DeltaMs: b.summary.ttftP99 - a.summary.ttftP99,
    });
  }
  // Noise: runs next to each other in time under the same condition (the B B and A A of A B B A ...).
  const seq = good.slice().sort((x, y) => x.index - y.index);
  const sameNeighbours = [];
  for (let i = 1; i < seq.length; i++) {
    const x = seq[i - 1];
    const y = seq[i];
    if (x.condition === y.condition && y.index === x.index + 1) sameNeighbours.push({ condition: x.condition, runs: [x.index, y.index], diffPct: (Math.abs(x.summary.throughput - y.summary.throughput) / ((x.summary.throughput + y.summary.throughput) / 2)) * 100 });
  }
  const spread = (rs) => {
    const mm = minMax(rs.map((r) => r.summary.throughput));
    const m = med(rs, 'throughput');
    return mm.min === null ? null : { min: mm.min, max: mm.max, rangePct: ((mm.max - mm.min) / m) * 100 };
  };
  const mA = med(A, 'throughput');
  const mB = med(B, 'throughput');
  const losses = rounds.map((r) => r.lossPct);
  return {
    runsUsed: good.length,
    usedIndexes: good.map((r) => r.index),
    runsExcluded: runs.filter((r) => !good.includes(r)).map((r) => ({ index: r.index, round: r.round, condition: r.condition,
      why: r.failed ?? (r.summary?.verified === false ? 'sidecar not verified' : r.summary?.errors ? `errors ${r.summary.errors}` : r.summary?.disturbed ?? 'the other run of its round was excluded') })),
    without: { runs: A.length, throughput: mA, ttftP50: med(A, 'ttftP50'), ttftP99: med(A, 'ttftP99'), npcdCpuPct: med(A, 'npcdCpuPct'), npcdCpuMsPer1k: med(A, 'npcdCpuMsPer1k'), machineCpuPct: med(A, 'machineCpuPct'), lagP99: med(A, 'lagP99'), spread: spread(A) },
    with: { runs: B.length, throughput: mB, ttftP50: med(B, 'ttftP50'), ttftP99: med(B, 'ttftP99'), npcdCpuPct: med(B, 'npcdCpuPct'), npcdCpuMsPer1k: med(B, 'npcdCpuMsPer1k'), machineCpuPct: med(B, 'machineCpuPct'), lagP99: med(B, 'lagP99'), spread: spread(B),
      sidecarCpuPct: med(B, 'sidecarCpuPct'), sidecarCpuPctMax: minMax(B.map((r) => r.summary.sidecarCpuPct)).max,
      sidecarStartupCpuMs: median(B.map((r) => r.sidecar.startupCpuMs)), sidecarReadyMs: median(B.map((r) => r.sidecar.readyMs)),
      sidecarAdviceCpuMs: median(B.map((r) => r.sidecar.firstAdvice?.cpuMs)) },
    lossOfMediansPct: mA && mB ? ((mA - mB) / mA) * 100 : null,
    perRound: rounds,
    lossPct: { median: median(losses), ...minMax(losses), ...meanCi(losses), positive: losses.filter((x) => x > 0).length, rounds: losses.length },
    cpuPer1kDeltaPct: { median: median(rounds.map((r) => r.cpuPer1kDeltaPct)), ...minMax(rounds.map((r) => r.cpuPer1kDeltaPct)) },
    ttftP99DeltaMs: { median: median(rounds.map((r) => r.ttftP99DeltaMs)), ...minMax(rounds.map((r) => r.ttftP99DeltaMs)) },
    noise: { sameConditionNeighbours: sameNeighbours, medianPct: median(sameNeighbours.map((n) => n.diffPct)), maxPct: minMax(sameNeighbours.map((n) => n.diffPct)).max },
  };
}

/** Mean, standard deviation and a 95 % confidence interval of the mean (Student's t). */
function meanCi(xs) {
  const v = xs.filter((x) => Number.isFinite(x));
  const n = v.length;
  if (n < 2) return { mean: n ? v[0] : null, sd: null, ci95: null };
  const mean = v.reduce((a, b) => a + b, 0) / n;
  const sd = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (n - 1));
  const T = [12.71, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.16, 2.145, 2.131, 2.12, 2.11, 2.101, 2.093, 2.086];
  const t = T[n - 2] ?? 1.96;
  const h = (t * sd) / Math.sqrt(n);
  return { mean, sd, ci95: [mean - h, mean + h] };
}

function report(res) {
  const f = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : Number(x).toFixed(d));
  const fi = (x) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : Math.round(x).toLocaleString('en-US'));
  const sg = (x, d = 1) => (x === null || x === undefined || !Number.isFinite(x) ? '–' : `${x > 0 ? '+' : x < 0 ? '−' : ''}${Math.abs(x).toFixed(d)}`);
  const ws = res.config.load === 'ws';
  const unit = ws ? 'turns/s' : 'tokens/s';
  const per = ws ? 'turns' : 'tokens';
  const lines = [];
  const used = new Set(res.analysis.usedIndexes);
  lines.push(`### eBPF sidecar overhead, ${ws ? 'WebSocket chat load' : 'SSE streaming relay load'} (${res.date.slice(0, 16)}Z, ${res.machine.cores} cores, Linux ${res.machine.kernel}, ${res.machine.bpftrace}, node ${res.machine.node}, npcd ${res.npcdCommit ?? '?'})`);
  lines.push('');
  lines.push(ws
    ? `${res.config.connections} connections, ${res.config.tokens} tokens per reply, ${res.config.warmupS} s warmup + ${res.config.durationS} s measured per run, ${res.config.rounds} rounds (${res.config.order.toUpperCase()}), sidecar --interval ${res.config.sidecarIntervalS}s scraped every ${res.config.scrapeEveryS} s.`
    : `${res.config.clients} clients, ${res.config.tokens} tokens per reply every ${res.config.tokenIntervalMs} ms, ${res.config.warmupS} s warmup + ${res.config.durationS} s measured per run, ${res.config.rounds} rounds (${res.config.order.toUpperCase()}), sidecar --interval ${res.config.sidecarIntervalS}s scraped every ${res.config.scrapeEveryS} s.`);
  lines.push('');
  lines.push(`| run | round | sidecar | machine CPU % before | ${unit} | TTFT p50 ms | TTFT p99 ms |${ws ? '' : ' token lag p99 ms |'} npcd CPU % | npcd CPU ms / 1,000 ${per} | ${ws ? 'generator' : 'client'} CPU % | sidecar CPU % | machine CPU % | other processes CPU % | sidecar saw (connects / srtt samples) |`);
  lines.push(`|---:|---:|---|---:|---:|---:|---:|${ws ? '' : '---:|'}---:|---:|---:|---:|---:|---:|---|`);
  for (const r of res.runs) {
    if (r.failed) { lines.push(`| ${r.index} | ${r.round} | ${r.condition} | run failed: ${r.failed.slice(0, 100)} |`); continue; }
    const s = r.summary;
    const saw = r.verify ? `${r.verify.connects} of ${r.verify.expectedConnects} / ${r.verify.srttCount.inbound} in + ${r.verify.srttCount.outbound} out${r.verify.ok ? '' : ' **not verified**'}` : '–';
    lines.push(`| ${r.index} | ${r.round} | ${r.condition} | ${f(s.machineBefore, 0)} | ${ws ? fi(s.throughput) : f(s.throughput, 0)} | ${f(s.ttftP50, 2)} | ${f(s.ttftP99, 2)} |${ws ? '' : ` ${f(s.lagP99, 1)} |`} ${f(s.npcdCpuPct, 0)} | ${f(s.npcdCpuMsPer1k, 1)} | ${f(s.generatorCpuPct, 0)} | ${s.sidecarCpuPct === null ? '–' : f(s.sidecarCpuPct, 1)} | ${f(s.machineCpuPct, 0)} | ${f(s.otherCpuPct, 0)} | ${saw}${s.errors ? ` (errors ${s.errors})` : ''}${used.has(r.index) ? '' : ' (excluded)'} |`);
  }
  const a = res.analysis;
  lines.push('');
  lines.push(`${a.runsUsed} runs used (${a.perRound.length} rounds).`);
  lines.push('');
  lines.push(`| median over runs | without sidecar (baseline) | with sidecar | difference |`);
  lines.push('|---|---:|---:|---:|');
  lines.push(`| ${unit} | ${ws ? fi(a.without.throughput) : f(a.without.throughput, 0)} | ${ws ? fi(a.with.throughput) : f(a.with.throughput, 0)} | ${a.lossOfMediansPct === null ? '–' : sg(-a.lossOfMediansPct, 2)} % |`);
  lines.push(`| TTFT p50 ms | ${f(a.without.ttftP50, 2)} | ${f(a.with.ttftP50, 2)} | ${sg(a.with.ttftP50 - a.without.ttftP50, 2)} |`);
  lines.push(`| TTFT p99 ms | ${f(a.without.ttftP99, 2)} | ${f(a.with.ttftP99, 2)} | ${sg(a.with.ttftP99 - a.without.ttftP99, 2)} |`);
  if (!ws) lines.push(`| token lag p99 ms | ${f(a.without.lagP99, 1)} | ${f(a.with.lagP99, 1)} | ${sg(a.with.lagP99 - a.without.lagP99, 1)} |`);
  lines.push(`| npcd CPU ms / 1,000 ${per} | ${f(a.without.npcdCpuMsPer1k, 1)} | ${f(a.with.npcdCpuMsPer1k, 1)} | ${sg(((a.with.npcdCpuMsPer1k - a.without.npcdCpuMsPer1k) / a.without.npcdCpuMsPer1k) * 100, 1)} % |`);
  lines.push(`| npcd CPU % | ${f(a.without.npcdCpuPct, 0)} | ${f(a.with.npcdCpuPct, 0)} | |`);
  lines.push(`| sidecar CPU % (node + bpftrace) | – | ${f(a.with.sidecarCpuPct, 2)} (max ${f(a.with.sidecarCpuPctMax, 2)}) | |`);
  lines.push(`| machine CPU % | ${f(a.without.machineCpuPct, 0)} | ${f(a.with.machineCpuPct, 0)} | |`);
  lines.push('');
  lines.push(`| round | order | runs | ${unit} without | ${unit} with | loss % | TTFT p99 ms without / with | npcd CPU ms / 1,000 ${per} without / with | sidecar CPU % |`);
  lines.push('|---:|---|---|---:|---:|---:|---:|---:|---:|');
  for (const r of a.perRound) {
    lines.push(`| ${r.round} | ${r.order} | ${r.runs.join(', ')} | ${ws ? fi(r.without) : f(r.without, 0)} | ${ws ? fi(r.with) : f(r.with, 0)} | ${sg(r.lossPct, 2)} | ${f(r.ttftP99[0], 2)} / ${f(r.ttftP99[1], 2)} | ${f(r.cpuPer1k[0], 1)} / ${f(r.cpuPer1k[1], 1)} | ${f(r.sidecarCpuPct, 2)} |`);
  }
  lines.push('');
  lines.push(`Loss of ${unit} with the sidecar, per round (A vs B of the same round): median ${f(a.lossPct.median, 2)} %, min ${f(a.lossPct.min, 2)} %, max ${f(a.lossPct.max, 2)} % (${a.lossPct.positive} of ${a.lossPct.rounds} rounds lower with the sidecar); mean ${f(a.lossPct.mean, 2)} %, SD ${f(a.lossPct.sd, 2)} %, 95 % CI of the mean ${a.lossPct.ci95 ? `${f(a.lossPct.ci95[0], 2)} to ${f(a.lossPct.ci95[1], 2)} %` : '–'}.`);
  lines.push(`npcd CPU per 1,000 ${per}, with vs without, per round: median ${sg(a.cpuPer1kDeltaPct.median, 1)} % (${sg(a.cpuPer1kDeltaPct.min, 1)} to ${sg(a.cpuPer1kDeltaPct.max, 1)} %). TTFT p99 with − without, per round: median ${sg(a.ttftP99DeltaMs.median, 2)} ms (${sg(a.ttftP99DeltaMs.min, 2)} to ${sg(a.ttftP99DeltaMs.max, 2)}).`);
  lines.push(`Noise: consecutive runs under the same condition differed by ${f(a.noise.medianPct, 2)} % (median) and up to ${f(a.noise.maxPct, 2)} %; all runs without the sidecar span ${f(a.without.spread?.rangePct, 2)} % of their median, with it ${f(a.with.spread?.rangePct, 2)} %.`);
  lines.push(`Sidecar start-up (node, bpftrace compiling and loading three programs): ${f(a.with.sidecarReadyMs / 1000, 1)} s to ready, ${fi(a.with.sidecarStartupCpuMs)} ms CPU; its first TCP advice pass (once a minute, ss and tc included; before the load): ${fi(a.with.sidecarAdviceCpuMs)} ms CPU.`);
  if (a.runsExcluded.length) lines.push(`Excluded runs: ${a.runsExcluded.map((x) => `${x.index} (${x.condition}: ${x.why})`).join('; ')}.`);
  const bpf = res.runs.filter((r) => r.sidecar?.bpf);
  if (bpf.length) {
    lines.push('');
    lines.push('BPF program run statistics (kernel.bpf_stats_enabled), median over runs with the sidecar:');
    lines.push('');
    lines.push('| program | BPF program | runs/s | ns per run | CPU ms per s |');
    lines.push('|---|---|---:|---:|---:|');
    const names = Object.keys(bpf[0].sidecar.bpf);
    for (const n of names) {
      bpf[0].sidecar.bpf[n].forEach((p0, i) => {
        const col = (k) => median(bpf.map((r) => r.sidecar.bpf[n]?.[i]?.[k]));
        const rps = col('runsPerSec');
        lines.push(`| ${n} | ${p0.progType} | ${rps !== null && rps < 100 ? f(rps, 1) : fi(rps)} | ${fi(col('nsPerRun'))} | ${f(col('cpuMsPerSec'), 2)} |`);
      });
    }
  }
  return lines.join('\n');
}

// ---------------------------------------------------------------------------

async function main() {
  if (process.getuid && process.getuid() !== 0) die('the sidecar needs root (BPF programs); run as root');
  if (!existsSync(join(ROOT, 'dist', 'cli.js'))) die('dist/cli.js not found: npm run build first (this script builds nothing)');
  mkdirSync(LOGS, { recursive: true });
  log(`logs: ${relative(process.cwd(), LOGS)}`);
  const plan = roundOrder(ROUNDS, opt.order);
  log(`${LOAD} load, ${ROUNDS} rounds: ${plan.map((p) => p.map((c) => (c === 'with' ? 'B' : 'A')).join('')).join(' ')} (A: without the sidecar, B: with it)`);
  const runs = [];
  let i = 0;
  let repeats = 0;
  let attempt = 0;
  for (let r = 0; r < plan.length; r++) {
    for (;;) {
      attempt++;
      const these = [];
      for (const condition of plan[r]) {
        const run = await oneRun(i++, r, condition);
        run.attempt = attempt;
        these.push(run);
        runs.push(run);
      }
      const disturbed = these.filter((x) => x.summary?.disturbed);
      if (disturbed.length === 0) break;
      if (repeats >= MAX_REPEATS) { log(`   round ${r + 1} was disturbed; no repeats left (--max-repeats ${MAX_REPEATS})`); break; }
      repeats++;
      log(`   round ${r + 1} was disturbed; running it again (repeat ${repeats} of at most ${MAX_REPEATS})`);
    }
  }
  await stopAll();
  const result = {
    date: new Date().toISOString(),
    command: `node ${relative(ROOT, fileURLToPath(import.meta.url))} ${process.argv.slice(2).join(' ')}`.trim(),
    machine: {
      cores: cpus().length, cpu: cpus()[0]?.model ?? null, memGiB: Number((totalmem() / 2 ** 30).toFixed(1)),
      kernel: release(), node: process.version, bpftrace: sh('bpftrace', ['--version']),
    },
    npcdCommit: gitCommit(),
    config: {
      load: LOAD, rounds: ROUNDS, order: opt.order, durationS: DURATION, warmupS: WARMUP, tokens: TOKENS,
      ...(LOAD === 'ws' ? { connections: CONNS, procs: PROCS, character: CHARACTER_WS } : { clients: CLIENTS, tokenIntervalMs: TOKEN_INTERVAL, ttftMs: UP_TTFT, rampMs: RAMP_MS, character: CHARACTER_SSE }),
      sidecarIntervalS: SC_INTERVAL, scrapeEveryS: SCRAPE_EVERY, sidecarArgs: SIDECAR_ARGS, npcdArgs: NPCD_ARGS, extraPorts: EXTRA_PORTS,
      quietBelowPct: QUIET_BELOW, quietWaitS: QUIET_WAIT, npcdAgeS: NPCD_AGE, bpfStats: opt['bpf-stats'],
    },
    runs,
  };
  result.analysis = analyse(runs);
  mkdirSync(dirname(OUT), { recursive: true });
  writeFileSync(OUT, JSON.stringify(result, null, 1) + '\n');
  console.log(report(result));
  console.log(`\nraw results: ${relative(process.cwd(), OUT)}`);
  const unverified = runs.filter((r) => r.condition === 'with' && (r.failed || !r.verify?.ok));
  if (unverified.length) {
    log(`${unverified.length} run(s) with the sidecar failed or could not be verified`);
    process.exitCode = 1;
  }
  if (result.analysis.perRound.length === 0) {
    log('no round with two clean runs: nothing to compare');
    process.exitCode = 1;
  }
}

main().catch(async (err) => {
  console.error(err && err.stack || err);
  await stopAll();
  process.exit(1);
});
