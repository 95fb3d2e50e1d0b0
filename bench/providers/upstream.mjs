#!/usr/bin/env node
// Mock OpenAI-compatible upstream for the streaming relay benchmark.
// See bench/README.md ("Streaming relay overhead"). Run with --help for options.

import http from 'node:http';
import { parseArgs } from 'node:util';
import { isLoopback, openAiChunks, positiveInt, replyTokens } from './lib.mjs';

const HELP = `Usage: node bench/providers/upstream.mjs [options]

  --host ADDR        loopback address to listen on (default 127.0.0.1)
  --port PORT        port (default 0: a free port; "listening on PORT" is printed)
  --tokens N         content chunks per reply, one token each (default 64)
  --interval MS      pause between content chunks (default 20)
  --ttft MS          delay from request to the first content chunk (default 20)
  --model NAME       model id listed by GET /v1/models (default bench-model)
  -h, --help

Routes:
  POST /v1/chat/completions   stream:true -> SSE chunks in OpenAI's format; otherwise one
                              chat.completion after the same total time. max_tokens or
                              max_completion_tokens below --tokens cut the reply ("length").
  GET  /v1/models             the one model
  GET  /bench/stats           requests, streams, tokens written, streams open
`;

const { values: opt } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    tokens: { type: 'string', default: '64' },
    interval: { type: 'string', default: '20' },
    ttft: { type: 'string', default: '20' },
    model: { type: 'string', default: 'bench-model' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }
if (!isLoopback(opt.host)) { console.error(`--host must be a loopback address, got ${opt.host}`); process.exit(2); }

const TOKENS = positiveInt(opt.tokens, '--tokens');
const INTERVAL = nonNegative(opt.interval, '--interval');
const TTFT = nonNegative(opt.ttft, '--ttft');
const MODEL = opt.model;
const TOKEN_TEXT = replyTokens(TOKENS);

const stats = { requests: 0, streams: 0, completions: 0, tokens: 0, open: 0, badRequests: 0 };
let nextId = 0;

const server = http.createServer({ keepAlive: true, noDelay: true }, (req, res) => {
  stats.requests++;
  const path = (req.url || '/').split('?')[0];
  if (req.method === 'GET' && path === '/v1/models') {
    return sendJson(res, 200, { object: 'list', data: [{ id: MODEL, object: 'model', created: 1700000000, owned_by: 'bench' }] });
  }
  if (req.method === 'GET' && path === '/bench/stats') return sendJson(res, 200, stats);
  if (req.method === 'POST' && path === '/v1/chat/completions') {
    const parts = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= 1 << 20) parts.push(c);
    });
    req.on('end', () => {
      let body;
      try {
        if (size > 1 << 20) throw new Error('body larger than 1 MiB');
        body = JSON.parse(Buffer.concat(parts).toString('utf8'));
        if (!body || typeof body !== 'object' || !Array.isArray(body.messages)) throw new Error('messages must be an array');
      } catch (err) {
        stats.badRequests++;
        return sendJson(res, 400, { error: { message: `bad request: ${err.message}`, type: 'invalid_request_error', param: null, code: null } });
      }
      if (body.stream === true) stream(req, res, body);
      else complete(req, res, body);
    });
    return;
  }
  sendJson(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error', param: null, code: 'unknown_url' } });
});
server.keepAliveTimeout = 120_000;
server.headersTimeout = 130_000;
server.requestTimeout = 0;
server.maxRequestsPerSocket = 0;

server.listen(Number(opt.port), opt.host, () => {
  process.stdout.write(`listening on ${server.address().port}\n`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}

/** Tokens this request gets: --tokens, or fewer if it asks for fewer. */
function replyLength(body) {
  const cap = [body.max_completion_tokens, body.max_tokens].find((v) => Number.isInteger(v) && v > 0);
  return cap !== undefined && cap < TOKENS ? cap : TOKENS;
}

function promptTokens(body) {
  let chars = 0;
  for (const m of body.messages) if (m && typeof m.content === 'string') chars += m.content.length;
  return Math.max(1, Math.ceil(chars / 4));
}

function stream(req, res, body) {
  stats.streams++;
  stats.open++;
  const n = replyLength(body);
  const finish = n < TOKENS ? 'length' : 'stop';
  const usage = body.stream_options && body.stream_options.include_usage === true;
  const chunks = openAiChunks({ id: `chatcmpl-bench${(nextId++).toString(36)}`, created: Math.floor(Date.now() / 1000), model: MODEL, usage });
  res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', connection: 'keep-alive' });
  res.flushHeaders();
  res.write(chunks.role());

  const start = performance.now();
  let k = 0;
  let timer = null;
  let closed = false;
  res.on('close', () => {
    if (!closed) { closed = true; stats.open--; }
    if (timer) clearTimeout(timer);
  });
  // Token k is due at start + TTFT + k * INTERVAL (no drift from late timers).
  const step = () => {
    timer = null;
    if (closed) return;
    const now = performance.now();
    while (k < n && start + TTFT + k * INTERVAL <= now + 0.5) {
      res.write(chunks.token(TOKEN_TEXT[k]));
      stats.tokens++;
      k++;
    }
    if (k < n) {
      timer = setTimeout(step, Math.max(0, start + TTFT + k * INTERVAL - performance.now()));
      return;
    }
    res.end(chunks.end(finish, promptTokens(body), n));
  };
  timer = setTimeout(step, TTFT);
}

function complete(req, res, body) {
  stats.completions++;
  const n = replyLength(body);
  const wait = n > 0 ? TTFT + (n - 1) * INTERVAL : 0;
  const timer = setTimeout(() => {
    const p = promptTokens(body);
    stats.tokens += n;
    sendJson(res, 200, {
      id: `chatcmpl-bench${(nextId++).toString(36)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: MODEL,
      system_fingerprint: 'fp_bench',
      choices: [{ index: 0, message: { role: 'assistant', content: TOKEN_TEXT.slice(0, n).join(''), refusal: null }, logprobs: null, finish_reason: n < TOKENS ? 'length' : 'stop' }],
      usage: { prompt_tokens: p, completion_tokens: n, total_tokens: p + n },
    });
  }, wait);
  res.on('close', () => clearTimeout(timer));
}

function sendJson(res, status, value) {
  const text = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function nonNegative(s, name) {
  const n = Number(s);
  if (!Number.isFinite(n) || n < 0) { console.error(`${name} must be a number >= 0`); process.exit(2); }
  return n;
}
