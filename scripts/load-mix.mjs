#!/usr/bin/env node
// load-mix.mjs — drives a running npcd with a realistic mix for a bounded
// time, for the profiling scripts (scripts/profile.mjs,
// scripts/perf-flamegraph.sh; docs/profiling.md):
//   - WebSocket chat turns in MessagePack from bench/ws-load.mjs (the bulk),
//   - HTTP turns: JSON /v1/chat, SSE /v1/chat, OpenAI /v1/chat/completions
//     (streamed), a few loops each,
//   - reads: /v1/characters and a session's messages, and a /metrics scrape
//     every second (as Prometheus would).
// It waits for /readyz first. Loopback targets only (like ws-load.mjs).
//
// Usage: node scripts/load-mix.mjs --url http://127.0.0.1:8080 [--duration 10]
//          [--connections 200] [--http-loops 2] [--ready-timeout 30]
// Output: ws-load's report, then one line per HTTP kind: "http chat-json: 812 ok, 0 failed".
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isLoopback } from '../bench/providers/lib.mjs';

const HELP = `Usage: node scripts/load-mix.mjs --url http://127.0.0.1:PORT [options]

  --url URL             npcd's HTTP base URL (loopback only)
  --duration S          seconds of load (default 10)
  --connections N       WebSocket connections of bench/ws-load.mjs (default 200)
  --http-loops K        concurrent loops per HTTP kind (default 2)
  --character ID        character of every turn (default gufeng-jianke)
  --ready-timeout S     wait this long for /readyz before giving up (default 30)
  -h, --help
`;

const { values: o } = parseArgs({
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8080' },
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '200' },
    'http-loops': { type: 'string', default: '2' },
    character: { type: 'string', default: 'gufeng-jianke' },
    'ready-timeout': { type: 'string', default: '30' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (o.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const base = new URL(o.url);
if (!isLoopback(base.hostname)) {
  process.stderr.write(`load-mix: --url must be a loopback address, not ${base.hostname}\n`);
  process.exit(2);
}
const http = base.origin;
const duration = Number(o.duration);
const connections = Number(o.connections);
const loops = Number(o['http-loops']);
const readyTimeout = Number(o['ready-timeout']);
for (const [name, v] of [['--duration', duration], ['--connections', connections], ['--http-loops', loops], ['--ready-timeout', readyTimeout]]) {
  if (!Number.isFinite(v) || v < 0) {
    process.stderr.write(`load-mix: ${name} must be a non-negative number\n`);
    process.exit(2);
  }
}

async function waitReady() {
  const deadline = Date.now() + readyTimeout * 1000;
  for (;;) {
    try {
      const r = await fetch(`${http}/readyz`);
      await r.arrayBuffer();
      if (r.ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${http}/readyz did not answer 200 within ${readyTimeout} s`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

const counts = {};
function count(kind, ok) {
  counts[kind] ??= { ok: 0, failed: 0 };
  counts[kind][ok ? 'ok' : 'failed']++;
}

async function request(kind, path, init, okStatus = (s) => s < 400) {
  try {
    const r = await fetch(`${http}${path}`, init);
    await r.arrayBuffer();
    count(kind, okStatus(r.status));
  } catch {
    count(kind, false);
  }
}

const chatBody = (session, n, stream) =>
  JSON.stringify({ session_id: session, character: o.character, message: `第${n}回：天色已晚，你为何独坐山崖？`, stream });

async function httpLoop(kind, i, until) {
  const session = `mix-${kind}-${i}`;
  for (let n = 0; Date.now() < until; n++) {
    if (kind === 'chat-json' || kind === 'chat-sse') await request(kind, '/v1/chat', { method: 'POST', body: chatBody(session, n, kind === 'chat-sse'), headers: { 'content-type': 'application/json' } });
    else if (kind === 'openai-stream') {
      const body = JSON.stringify({ model: o.character, stream: true, session_id: session, messages: [{ role: 'user', content: `第${n}回：请赐教` }] });
      await request(kind, '/v1/chat/completions', { method: 'POST', body, headers: { 'content-type': 'application/json' } });
    } else if (kind === 'reads') {
      await request(kind, '/v1/characters');
      // 404 until that loop's first turn has made the session.
      await request(kind, `/v1/sessions/mix-chat-json-${i}/messages?limit=20`, undefined, (s) => s < 400 || s === 404);
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function scrapeLoop(until) {
  while (Date.now() < until) {
    await request('metrics', '/metrics');
    await new Promise((r) => setTimeout(r, 1000));
  }
}

function wsLoad() {
  const script = fileURLToPath(new URL('../bench/ws-load.mjs', import.meta.url));
  const ws = `ws://${base.host}/v1/ws`;
  const child = spawn(process.execPath, [script, '--url', ws, '--mode', 'chat', '--connections', String(connections), '--duration', String(duration), '--warmup', '0', '--character', o.character, '--text', '天色已晚，你为何独坐山崖？'], { stdio: ['ignore', 'inherit', 'inherit'] });
  return new Promise((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
}

await waitReady();
const until = Date.now() + duration * 1000;
const kinds = ['chat-json', 'chat-sse', 'openai-stream', 'reads'];
const [wsCode] = await Promise.all([
  connections > 0 ? wsLoad() : Promise.resolve(0),
  ...kinds.flatMap((k) => Array.from({ length: loops }, (_, i) => httpLoop(k, i, until))),
  scrapeLoop(until),
]);
for (const [kind, c] of Object.entries(counts)) process.stdout.write(`http ${kind}: ${c.ok} ok, ${c.failed} failed\n`);
process.exitCode = wsCode;
