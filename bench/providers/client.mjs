#!/usr/bin/env node
// Closed-loop load generator for OpenAI-compatible streaming chat endpoints.
// See bench/README.md ("Streaming relay overhead"). Run with --help for options.

import { parseArgs } from 'node:util';
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { Pool } from 'undici';
import { Samples, isLoopback, replyTokens, processTree, cpuTicks, rssKb, clockTicks, cmdline, machineTicks } from './lib.mjs';

const HELP = `Usage: node bench/providers/client.mjs --url URL --model NAME [options]

  --url URL              chat completions URL, e.g. http://127.0.0.1:8080/v1/chat/completions (loopback only)
  --model NAME           "model" of the request body
  --header 'K: V'        extra request header (repeatable)
  --concurrency C        concurrent clients, one connection and one request in flight each (default 50)
  --duration S           measured seconds (default 10)
  --warmup S             unmeasured seconds before the window (default 3)
  --ramp MS              client starts are spread over this long (default 1000)
  --requests N           each client stops after N requests (default: no limit; the window still bounds the run)
  --timeout S            a request with no complete reply after S seconds is aborted (default 30)
  --text TEXT            user message (default "bench")
  --max-tokens N         send max_tokens N (default: not sent)
  --user-prefix TEXT     "user" of client i is TEXT + i (default bench-client-)
  --expect-tokens N      each reply must be the mock upstream's N-token text (a delta may carry several tokens)
  --interval MS          the upstream's token interval: enables token lag
  --ttft MS              the upstream's first-token delay (default 0); token k's lag is
                         arrival - send - ttft - k * interval
  --watch NAME=PID       read CPU (utime+stime) of PID and its descendants over the window, and RSS (repeatable)
  --print-text           include the text of the first reply in the result
  --label TEXT           copied into the result
  --json                 print one JSON object (default: a short text summary)
  -h, --help

A request counts in the latency figures if it was sent inside the window; it
then runs to its end. Tokens for CPU per token are the mock upstream's tokens (one word each) that
arrived inside the window, whichever request they belong to.
`;

const { values: opt } = parseArgs({
  options: {
    url: { type: 'string' },
    model: { type: 'string' },
    header: { type: 'string', multiple: true, default: [] },
    concurrency: { type: 'string', short: 'c', default: '50' },
    duration: { type: 'string', short: 'd', default: '10' },
    warmup: { type: 'string', default: '3' },
    ramp: { type: 'string', default: '1000' },
    requests: { type: 'string' },
    timeout: { type: 'string', default: '30' },
    text: { type: 'string', default: 'bench' },
    'max-tokens': { type: 'string' },
    'user-prefix': { type: 'string', default: 'bench-client-' },
    ttft: { type: 'string', default: '0' },
    'expect-tokens': { type: 'string' },
    interval: { type: 'string' },
    watch: { type: 'string', multiple: true, default: [] },
    'print-text': { type: 'boolean', default: false },
    label: { type: 'string' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }

function fail(msg) { console.error(msg); process.exit(2); }
if (!opt.url || !opt.model) fail('--url and --model are required (--help)');
const url = new URL(opt.url);
if (url.protocol !== 'http:') fail('only http:// URLs');
if (!isLoopback(url.hostname)) fail(`--url must point to a loopback address, got ${url.hostname}`);
const num = (s, name, min) => {
  const n = Number(s);
  if (!Number.isFinite(n) || n < min) fail(`${name} must be a number >= ${min}`);
  return n;
};
const C = Math.floor(num(opt.concurrency, '--concurrency', 1));
const DURATION = num(opt.duration, '--duration', 0) * 1000;
const WARMUP = num(opt.warmup, '--warmup', 0) * 1000;
const RAMP = num(opt.ramp, '--ramp', 0);
const MAX_REQUESTS = opt.requests === undefined ? Infinity : Math.floor(num(opt.requests, '--requests', 1));
const TIMEOUT = num(opt.timeout, '--timeout', 0.001) * 1000;
const INTERVAL = opt.interval === undefined ? null : num(opt.interval, '--interval', 0);
const UP_TTFT = num(opt.ttft, '--ttft', 0);
const EXPECT_N = opt['expect-tokens'] === undefined ? null : Math.floor(num(opt['expect-tokens'], '--expect-tokens', 1));
const EXPECT_TEXT = EXPECT_N === null ? null : replyTokens(EXPECT_N).join('');
if (C > 5000) fail('--concurrency above 5000 is not supported');
if (DURATION + WARMUP > 600_000) fail('--warmup + --duration must stay under 600 s');

const headers = { 'content-type': 'application/json', accept: 'text/event-stream' };
for (const h of opt.header) {
  const i = h.indexOf(':');
  if (i <= 0) fail(`bad --header ${h}`);
  headers[h.slice(0, i).trim().toLowerCase()] = h.slice(i + 1).trim();
}
const watch = opt.watch.map((w) => {
  const i = w.indexOf('=');
  const pid = Number(w.slice(i + 1));
  if (i <= 0 || !Number.isInteger(pid) || pid <= 0) fail(`bad --watch ${w}`);
  return { name: w.slice(0, i), pid };
});

// One body per client: "user" differs, so a server that keys conversations on it
// (npcd derives its session from it) gives every client its own.
const maxTokens = opt['max-tokens'] === undefined ? undefined : Math.floor(num(opt['max-tokens'], '--max-tokens', 1));
const bodies = Array.from({ length: C }, (_, i) => JSON.stringify({
  model: opt.model,
  messages: [{ role: 'user', content: opt.text }],
  stream: true,
  stream_options: { include_usage: true },
  ...(maxTokens !== undefined && { max_tokens: maxTokens }),
  user: `${opt['user-prefix']}${i}`,
}));
const path = url.pathname + url.search;

const pool = new Pool(url.origin, {
  connections: C,
  pipelining: 1,
  keepAliveTimeout: 60_000,
  keepAliveMaxTimeout: 600_000,
  headersTimeout: TIMEOUT,
  bodyTimeout: TIMEOUT,
});

// ---------------------------------------------------------------------------
// Measurement state

const ttft = new Samples();
const gap = new Samples();
const lag = new Samples();
const total = new Samples();
const errors = {};
const errorExamples = {};
let phase = 'warmup'; // warmup -> window -> drain
let windowTokens = 0;
let sent = 0;
let measured = 0;
let measuredOk = 0;
let firstText = null;
let usageChunks = 0;

function countError(code, detail) {
  errors[code] = (errors[code] || 0) + 1;
  if (!(code in errorExamples) && detail) errorExamples[code] = String(detail).slice(0, 300);
}

/** One streaming request; resolves when it has ended (never rejects). */
function oneRequest(body, record) {
  return new Promise((resolve) => {
    const ac = new AbortController();
    const sentAt = performance.now();
    let lastAt = 0;
    let deltas = 0;
    let tokens = 0;
    let text = '';
    let buf = '';
    let data = [];
    let done = false;
    let finished = false;
    let usage = false;
    let status = 0;
    let errBody = '';
    const timer = setTimeout(() => ac.abort(new Error('timeout')), TIMEOUT);

    const end = (errCode, detail) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      if (errCode) {
        if (record) countError(errCode, detail);
      } else if (record) {
        measuredOk++;
        total.push(performance.now() - sentAt);
      }
      resolve();
    };

    const onEvent = (payload, at) => {
      if (done) return;
      if (payload === '[DONE]') { done = true; return; }
      let chunk;
      try { chunk = JSON.parse(payload); } catch { throw new BenchError('bad_json', payload); }
      if (chunk.error) throw new BenchError('stream_error', payload);
      if (chunk.usage) usage = true;
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : undefined;
      const content = choice && choice.delta && choice.delta.content;
      if (typeof content !== 'string' || content === '') return;
      // A relay may pass tokens that reached it together in one delta: the
      // mock upstream's tokens are one word each, so words count tokens.
      const k = wordCount(content);
      if (phase === 'window') windowTokens += k;
      if (record) {
        if (deltas === 0) ttft.push(at - sentAt);
        else gap.push(at - lastAt);
        // The lag of the delta's last token.
        if (INTERVAL !== null) lag.push(at - sentAt - UP_TTFT - (tokens + k - 1) * INTERVAL);
      }
      lastAt = at;
      deltas++;
      tokens += k;
      text += content;
    };

    const onText = (s, at) => {
      buf += s;
      let start = 0;
      for (;;) {
        const nl = buf.indexOf('\n', start);
        if (nl < 0) break;
        let line = buf.slice(start, nl);
        start = nl + 1;
        if (line.endsWith('\r')) line = line.slice(0, -1);
        if (line === '') {
          if (data.length) { const d = data.join('\n'); data = []; onEvent(d, at); }
        } else if (line.startsWith('data:')) {
          data.push(line.charCodeAt(5) === 32 ? line.slice(6) : line.slice(5));
        }
      }
      buf = start ? buf.slice(start) : buf;
    };

    pool.request({ path, method: 'POST', headers, body, signal: ac.signal }).then(({ statusCode, body: res }) => {
      status = statusCode;
      res.setEncoding('utf8');
      res.on('data', (s) => {
        if (finished) return;
        if (status !== 200) { if (errBody.length < 300) errBody += s; return; }
        try { onText(s, performance.now()); } catch (err) {
          if (err instanceof BenchError) { end(err.code, err.detail); res.destroy(); } else throw err;
        }
      });
      res.on('end', () => {
        if (status !== 200) return end(`http_${status}`, errBody);
        if (data.length) { try { onEvent(data.join('\n'), performance.now()); } catch (err) { return end(err.code || 'error', err.detail || err.message); } }
        if (!done) return end('no_done', text.slice(-80));
        if (deltas === 0) return end('no_tokens');
        if (firstText === null) firstText = text;
        if (usage) usageChunks++;
        if (EXPECT_TEXT !== null && text !== EXPECT_TEXT) return end('text_mismatch', text);
        if (EXPECT_N !== null && tokens !== EXPECT_N) return end('token_count', `${tokens} tokens in ${deltas} deltas`);
        end(null);
      });
      res.on('error', (err) => end(ac.signal.aborted ? 'timeout' : errCode(err), err.message));
    }, (err) => end(ac.signal.aborted ? 'timeout' : errCode(err), err.message));
  });
}

function wordCount(s) {
  let n = 0;
  for (const w of s.split(' ')) if (w !== '') n++;
  return n;
}

class BenchError extends Error {
  constructor(code, detail) { super(code); this.code = code; this.detail = detail; }
}

function errCode(err) {
  return (err && (err.code || err.name)) || 'error';
}

async function clientLoop(i) {
  await sleep((RAMP * i) / C);
  for (let n = 0; n < MAX_REQUESTS && phase !== 'drain'; n++) {
    const record = phase === 'window';
    sent++;
    if (record) measured++;
    await oneRequest(bodies[i], record);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
// The histogram holds whole timer periods; the delay is what exceeds the period.
const ELD_RES = 2;
const eldMs = (ns) => Number(Math.max(0, ns / 1e6 - ELD_RES).toFixed(2));

function readWatch() {
  return watch.map((w) => {
    const pids = processTree(w.pid);
    return { ...w, pids, ticks: cpuTicks(pids) };
  });
}

// ---------------------------------------------------------------------------

async function main() {
  const eld = monitorEventLoopDelay({ resolution: ELD_RES });
  if (WARMUP === 0) phase = 'window';
  const loops = [];
  for (let i = 0; i < C; i++) loops.push(clientLoop(i));
  const all = Promise.all(loops);

  let before = null;
  let cpu0 = null;
  let tOpen = 0;
  let tClose = 0;
  let watchAfter = null;
  let cpu1 = null;
  let finishedEarly = false;
  const race = (ms) => Promise.race([sleep(ms), all.then(() => { finishedEarly = true; })]);

  await race(WARMUP);
  phase = 'window';
  tOpen = performance.now();
  before = readWatch();
  const machine0 = machineTicks();
  cpu0 = process.cpuUsage();
  eld.enable();
  await race(DURATION);
  tClose = performance.now();
  watchAfter = watch.map((w, i) => ({ ...w, pids: before[i].pids, ticks: cpuTicks(before[i].pids) }));
  cpu1 = process.cpuUsage(cpu0);
  const machine1 = machineTicks();
  eld.disable();
  const tokensInWindow = windowTokens;
  phase = 'drain';
  const drainStart = performance.now();
  await Promise.race([all, sleep(TIMEOUT + 1000)]);
  const drainMs = performance.now() - drainStart;
  await pool.close().catch(() => {});

  const seconds = (tClose - tOpen) / 1000;
  const hz = clockTicks();
  const procs = watchAfter.map((w, i) => {
    let user = 0;
    let sys = 0;
    const per = [];
    for (const pid of w.pids) {
      const a = before[i].ticks[pid];
      const b = w.ticks[pid];
      if (a === undefined || b === undefined) continue;
      user += b.utime - a.utime;
      sys += b.stime - a.stime;
      per.push({ pid, cmd: cmdline(pid).slice(0, 120), cpuMs: ((b.utime - a.utime + b.stime - a.stime) * 1000) / hz, rssKb: rssKb(pid) });
    }
    const cpuMs = ((user + sys) * 1000) / hz;
    return {
      name: w.name,
      pid: w.pid,
      cpuMs,
      userMs: (user * 1000) / hz,
      sysMs: (sys * 1000) / hz,
      cpuPct: Number(((cpuMs / 10) / seconds).toFixed(1)),
      cpuMsPer1kTokens: tokensInWindow ? Number(((cpuMs * 1000) / tokensInWindow).toFixed(2)) : null,
      rssKb: per.reduce((s, p) => s + (p.rssKb || 0), 0),
      processes: per,
    };
  });
  const clientCpuMs = (cpu1.user + cpu1.system) / 1000;
  const result = {
    label: opt.label ?? null,
    url: opt.url,
    model: opt.model,
    concurrency: C,
    warmupS: WARMUP / 1000,
    windowS: Number(seconds.toFixed(3)),
    finishedEarly,
    drainMs: Math.round(drainMs),
    requests: {
      sent,
      measured,
      ok: measuredOk,
      errors,
      errorCount: Object.values(errors).reduce((a, b) => a + b, 0),
      withUsage: usageChunks,
    },
    tokensInWindow,
    tokensPerSecond: Number((tokensInWindow / seconds).toFixed(1)),
    ttftMs: ttft.summary(),
    gapMs: gap.summary(),
    lagMs: INTERVAL === null ? null : lag.summary(),
    replyMs: total.summary(),
    watched: procs,
    machineCpuPct: machine0 && machine1 ? Number((((machine1.busy - machine0.busy) * 100) / clockTicks() / seconds).toFixed(1)) : null,
    client: {
      cpuPct: Number(((clientCpuMs / 10) / seconds).toFixed(1)),
      eventLoopDelayMs: { p50: eldMs(eld.percentile(50)), p99: eldMs(eld.percentile(99)), max: eldMs(eld.max) },
    },
    ...(Object.keys(errorExamples).length && { errorExamples }),
    ...(opt['print-text'] && { text: firstText }),
  };
  if (opt.json) {
    process.stdout.write(JSON.stringify(result) + '\n');
  } else {
    const s = (x) => (x.count ? `p50 ${x.p50} p90 ${x.p90} p99 ${x.p99} max ${x.max} (n=${x.count})` : 'none');
    console.log(`${result.label ?? opt.url}: ${C} clients, ${result.windowS} s window`);
    console.log(`  requests measured ${measured}, ok ${measuredOk}, errors ${JSON.stringify(errors)}`);
    console.log(`  tokens in window ${tokensInWindow} (${result.tokensPerSecond}/s)`);
    console.log(`  TTFT ms  ${s(result.ttftMs)}`);
    console.log(`  gap ms   ${s(result.gapMs)}`);
    if (result.lagMs) console.log(`  lag ms   ${s(result.lagMs)}`);
    for (const p of procs) console.log(`  ${p.name}: CPU ${p.cpuPct}% (user ${p.userMs} ms, sys ${p.sysMs} ms), ${p.cpuMsPer1kTokens} ms/1k tokens, RSS ${(p.rssKb / 1024).toFixed(1)} MiB`);
    console.log(`  machine CPU ${result.machineCpuPct}% (all cores), client CPU ${result.client.cpuPct}%, event loop delay p99 ${result.client.eventLoopDelayMs.p99.toFixed(2)} ms`);
    if (opt['print-text']) console.log(`  text: ${JSON.stringify(firstText)}`);
  }
}

main().then(() => process.exit(0), (err) => { console.error(err && err.stack || err); process.exit(1); });
