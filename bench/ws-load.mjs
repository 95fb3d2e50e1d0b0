#!/usr/bin/env node
// WebSocket load generator for npcd (protocol v1) and the baseline echo server.
// See bench/README.md. Run `node bench/ws-load.mjs --help` for options.

import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { handleCommand } from './lib/load-worker.mjs';
import { Histogram } from './lib/histogram.mjs';
import { parseWsUrl, isLoopback } from './lib/ws-client.mjs';
import { openFileLimit, readProcCpuTicks, clockTicks, readVmRssKb } from './lib/proc.mjs';

const HELP = `Usage: node bench/ws-load.mjs [options]

  --url URL               target (default ws://127.0.0.1:8080/v1/ws); loopback only
  --mode chat|echo        chat: hello/welcome then chat→start/token…/done turns
                          echo: send a chat-like frame, wait for the same id back
  --connections N         total connections (default 100)
  --duration S            measured seconds (default 10)
  --warmup S              unmeasured seconds after ramp-up (default 2)
  --procs P               generator processes; each gets ~N/P connections (default 1)
  --source-addrs LIST     comma-separated 127.x.y.z local addresses, round-robin
  --character ID          character id/name for chat frames (default gufeng-jianke)
  --text TEXT             chat text (default "bench")
  --ramp-concurrency K    max concurrent handshakes in total (default 256)
  --connect-timeout S     per-connection connect+upgrade timeout (default 10)
  --hello-timeout S       time to wait for welcome (default 10)
  --turn-timeout S        a turn without done after this is counted as stalled (default 30)
  --error-backoff MS      delay before the next chat after an error frame (default 0)
  --server-pid PID        also report server CPU% and RSS over the window
  --json                  print one JSON object instead of text
  --label TEXT            free-form label copied into the JSON result
  -h, --help
`;

// ---------------------------------------------------------------------------
// Worker side (forked)
if (process.env.NPCD_BENCH_WORKER === '1') {
  const state = {};
  process.on('message', async (msg) => {
    try {
      const res = await handleCommand(state, msg);
      process.send({ rid: msg.rid, res });
      if (msg.cmd === 'close') process.disconnect();
    } catch (err) {
      process.send({ rid: msg.rid, err: String(err && err.stack || err) });
    }
  });
} else {
  main().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
}

// ---------------------------------------------------------------------------

function parseCli() {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: 'ws://127.0.0.1:8080/v1/ws' },
      mode: { type: 'string', default: 'chat' },
      connections: { type: 'string', short: 'c', default: '100' },
      duration: { type: 'string', short: 'd', default: '10' },
      warmup: { type: 'string', default: '2' },
      procs: { type: 'string', short: 'p', default: '1' },
      'source-addrs': { type: 'string', default: '' },
      character: { type: 'string', default: 'gufeng-jianke' },
      text: { type: 'string', default: 'bench' },
      'ramp-concurrency': { type: 'string', default: '256' },
      'connect-timeout': { type: 'string', default: '10' },
      'hello-timeout': { type: 'string', default: '10' },
      'turn-timeout': { type: 'string', default: '30' },
      'error-backoff': { type: 'string', default: '0' },
      'server-pid': { type: 'string' },
      json: { type: 'boolean', default: false },
      label: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) { process.stdout.write(HELP); process.exit(0); }
  const num = (k, min = 0) => {
    const v = Number(values[k]);
    if (!Number.isFinite(v) || v < min) { console.error(`invalid --${k}: ${values[k]}`); process.exit(2); }
    return v;
  };
  const o = {
    url: values.url,
    mode: values.mode,
    connections: Math.floor(num('connections', 1)),
    duration: num('duration', 0.1),
    warmup: num('warmup', 0),
    procs: Math.floor(num('procs', 1)),
    sourceAddrs: values['source-addrs'] ? values['source-addrs'].split(',').map((s) => s.trim()).filter(Boolean) : [],
    character: values.character,
    text: values.text,
    rampConcurrency: Math.floor(num('ramp-concurrency', 1)),
    connectTimeoutMs: num('connect-timeout', 0.1) * 1000,
    helloTimeoutMs: num('hello-timeout', 0.1) * 1000,
    turnTimeoutMs: num('turn-timeout', 0.1) * 1000,
    errorBackoffMs: num('error-backoff', 0),
    serverPid: values['server-pid'] ? Number(values['server-pid']) : null,
    json: values.json,
    label: values.label ?? null,
  };
  if (o.mode !== 'chat' && o.mode !== 'echo') { console.error('--mode must be chat or echo'); process.exit(2); }
  let target;
  try { target = parseWsUrl(o.url); } catch (e) { console.error(e.message); process.exit(2); }
  if (!isLoopback(target.host)) { console.error(`refusing non-loopback target ${target.host} (only 127.0.0.0/8)`); process.exit(2); }
  for (const a of o.sourceAddrs) {
    if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)) { console.error(`source address ${a} is not in 127.0.0.0/8`); process.exit(2); }
  }
  if (o.procs > o.connections) o.procs = o.connections;
  return o;
}

function makeLocal() {
  const state = {};
  return { call: (cmd, extra = {}) => handleCommand(state, { cmd, ...extra }), kill() {} };
}

function makeForked() {
  const child = fork(fileURLToPath(import.meta.url), [], {
    env: { ...process.env, NPCD_BENCH_WORKER: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  let rid = 0;
  const pending = new Map();
  child.on('message', (m) => {
    const p = pending.get(m.rid);
    if (!p) return;
    pending.delete(m.rid);
    if (m.err) p.reject(new Error('worker: ' + m.err)); else p.resolve(m.res);
  });
  child.on('exit', (code) => {
    for (const p of pending.values()) p.reject(new Error('worker exited with code ' + code));
    pending.clear();
  });
  return {
    child,
    call(cmd, extra = {}) {
      return new Promise((resolve, reject) => {
        const id = ++rid;
        pending.set(id, { resolve, reject });
        child.send({ rid: id, cmd, ...extra });
      });
    },
    kill() { if (child.exitCode === null) child.kill(); },
  };
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function addCounts(dst, src) { for (const [k, v] of Object.entries(src)) dst[k] = (dst[k] || 0) + v; }

async function main() {
  const o = parseCli();
  const P = o.procs;
  const perProc = Math.ceil(o.connections / P) + 32;
  const lim = openFileLimit();
  if (lim !== null && perProc > lim) {
    console.error(`open-file limit ${lim} is too low for ${Math.ceil(o.connections / P)} connections per process; ` +
      `raise it (ulimit -n 65536) or use more --procs`);
    process.exit(2);
  }

  const workers = [];
  let offset = 0;
  for (let i = 0; i < P; i++) {
    const n = Math.floor(o.connections / P) + (i < o.connections % P ? 1 : 0);
    const cfg = {
      url: o.url, mode: o.mode, connections: n, indexOffset: offset, sourceAddrs: o.sourceAddrs,
      character: o.character, text: o.text,
      rampConcurrency: Math.max(1, Math.ceil(o.rampConcurrency / P)),
      connectTimeoutMs: o.connectTimeoutMs, helloTimeoutMs: o.helloTimeoutMs,
      turnTimeoutMs: o.turnTimeoutMs, errorBackoffMs: o.errorBackoffMs, workerIndex: i,
    };
    offset += n;
    const w = P === 1 ? makeLocal() : makeForked();
    workers.push(w);
    await w.call('init', { cfg });
  }
  const killAll = () => { for (const w of workers) w.kill(); };
  process.on('SIGINT', () => { killAll(); process.exit(130); });
  process.on('SIGTERM', () => { killAll(); process.exit(143); });

  const log = (s) => { if (!o.json) process.stderr.write(s + '\n'); };
  log(`ramping up ${o.connections} connections (${P} proc${P > 1 ? 's' : ''}) to ${o.url} ...`);
  const tr0 = performance.now();
  const ramps = await Promise.all(workers.map((w) => w.call('connect')));
  const rampMs = performance.now() - tr0;
  const ramp = { connected: 0, failed: 0, failures: {}, ms: Math.round(rampMs) };
  const hello = new Histogram();
  for (const r of ramps) {
    ramp.connected += r.connected; ramp.failed += r.failed; addCounts(ramp.failures, r.failures);
    hello.addJSON(r.hello);
  }
  ramp.helloMs = o.mode === 'chat' ? hello.summaryMs([50, 99]) : undefined;
  log(`ramp-up: ${ramp.connected}/${o.connections} connected in ${(rampMs / 1000).toFixed(2)} s` +
    (ramp.failed ? ` (failures: ${JSON.stringify(ramp.failures)})` : ''));

  let result;
  if (ramp.connected === 0) {
    result = { ok: false, reason: 'no connections' };
  } else {
    await Promise.all(workers.map((w) => w.call('go')));
    if (o.warmup > 0) { log(`warmup ${o.warmup} s ...`); await sleep(o.warmup * 1000); }
    const hz = o.serverPid ? clockTicks() : 0;
    const sc0 = o.serverPid ? readProcCpuTicks(o.serverPid) : null;
    const ts0 = performance.now();
    await Promise.all(workers.map((w) => w.call('measure')));
    log(`measuring ${o.duration} s ...`);
    await sleep(o.duration * 1000);
    const res = await Promise.all(workers.map((w) => w.call('stop')));
    const wall = (performance.now() - ts0) / 1000;
    const sc1 = o.serverPid ? readProcCpuTicks(o.serverPid) : null;
    const serverRssKb = o.serverPid ? readVmRssKb(o.serverPid) : null;
    result = combine(o, res, ramp);
    if (sc0 !== null && sc1 !== null) {
      result.server = { pid: o.serverPid, cpuPct: round1(((sc1 - sc0) / hz) / wall * 100), rssKb: serverRssKb };
    } else if (o.serverPid) {
      result.server = { pid: o.serverPid, error: 'could not read /proc/' + o.serverPid };
    }
  }
  await Promise.all(workers.map((w) => w.call('close').catch(() => {})));
  killAll();
  result.ramp = ramp;
  result.config = {
    url: o.url, mode: o.mode, connections: o.connections, procs: P, duration: o.duration, warmup: o.warmup,
    sourceAddrs: o.sourceAddrs, character: o.character, text: o.text, label: o.label,
  };
  if (o.json) process.stdout.write(JSON.stringify(result) + '\n');
  else printText(result);
  process.exitCode = result.ok === false ? 1 : 0;
}

function round1(x) { return Math.round(x * 10) / 10; }

function combine(o, res, ramp) {
  const ttft = new Histogram();
  const turn = new Histogram();
  const out = {
    ok: true, turns: 0, tokens: 0, frames: 0, bytes: 0, sent: 0, errors: {}, anomalies: {},
    disconnects: 0, closeCodes: {}, turnTimeouts: 0, openAtEnd: 0, inFlightAtEnd: 0, generator: [],
  };
  let windowS = 0;
  for (const r of res) {
    ttft.addJSON(r.ttft);
    turn.addJSON(r.turn);
    out.turns += r.turns; out.tokens += r.tokens; out.frames += r.frames; out.bytes += r.bytes; out.sent += r.sent;
    addCounts(out.errors, r.errors); addCounts(out.anomalies, r.anomalies); addCounts(out.closeCodes, r.closeCodes);
    out.disconnects += r.disconnects; out.turnTimeouts += r.turnTimeouts;
    out.openAtEnd += r.openAtEnd; out.inFlightAtEnd += r.inFlightAtEnd;
    windowS = Math.max(windowS, r.windowMs / 1000);
    out.generator.push({
      worker: r.worker,
      cpuPct: round1((r.cpuUserUs + r.cpuSystemUs) / 1e4 / (r.windowMs / 1000)),
      loopDelayMs: { p50: round1(r.loopDelayMs.p50), p99: round1(r.loopDelayMs.p99), max: round1(r.loopDelayMs.max) },
    });
  }
  out.windowS = Math.round(windowS * 1000) / 1000;
  out.turnsPerSec = round1(out.turns / windowS);
  out.framesPerSec = round1(out.frames / windowS);
  out.tokensPerTurn = out.turns ? round1(out.tokens / out.turns) : 0;
  out.errorCount = Object.values(out.errors).reduce((a, b) => a + b, 0);
  out.ttftMs = ttft.summaryMs([50, 90, 99, 99.9]);
  out.turnMs = turn.summaryMs([50, 90, 99, 99.9]);
  out.connectionFailures = ramp.failed;
  return out;
}

function fmtMs(h, k) { return h[k] === undefined ? '-' : h[k].toFixed(2); }

function printText(r) {
  const c = r.config;
  const lines = [];
  lines.push(`mode=${c.mode} url=${c.url} connections=${c.connections} procs=${c.procs} warmup=${c.warmup}s duration=${c.duration}s`);
  lines.push(`ramp-up:      ${r.ramp.connected}/${c.connections} connected in ${(r.ramp.ms / 1000).toFixed(2)} s, failures: ${r.ramp.failed ? JSON.stringify(r.ramp.failures) : 'none'}`);
  if (r.ok === false) { lines.push('no measurement: ' + r.reason); console.log(lines.join('\n')); return; }
  lines.push(`turns:        ${r.turns} in ${r.windowS.toFixed(2)} s = ${r.turnsPerSec} turns/s` +
    (c.mode === 'chat' ? ` (${r.tokensPerTurn} tokens/turn, ${r.framesPerSec} frames/s)` : ''));
  const t = r.ttftMs, u = r.turnMs;
  lines.push(`${c.mode === 'chat' ? 'TTFT' : 'RTT '} ms:      p50 ${fmtMs(t, 'p50')}  p90 ${fmtMs(t, 'p90')}  p99 ${fmtMs(t, 'p99')}  p99.9 ${fmtMs(t, 'p99_9')}  max ${fmtMs(t, 'max')}  (n=${t.count})`);
  lines.push(`turn ms:      p50 ${fmtMs(u, 'p50')}  p90 ${fmtMs(u, 'p90')}  p99 ${fmtMs(u, 'p99')}  max ${fmtMs(u, 'max')}`);
  lines.push(`errors:       ${r.errorCount ? JSON.stringify(r.errors) : 'none'}`);
  if (Object.keys(r.anomalies).length) lines.push(`anomalies:    ${JSON.stringify(r.anomalies)}`);
  lines.push(`connections:  disconnects ${r.disconnects}${r.disconnects ? ' ' + JSON.stringify(r.closeCodes) : ''}, stalled turns ${r.turnTimeouts}, open at end ${r.openAtEnd}`);
  lines.push(`generator:    ` + r.generator.map((g) => `w${g.worker} cpu ${g.cpuPct}% loop-delay p99 ${g.loopDelayMs.p99} ms`).join(' | '));
  if (r.server) lines.push(`server:       ` + (r.server.error ? r.server.error : `pid ${r.server.pid} cpu ${r.server.cpuPct}% rss ${r.server.rssKb !== null ? (r.server.rssKb / 1024).toFixed(1) + ' MiB' : '?'}`));
  console.log(lines.join('\n'));
}
