#!/usr/bin/env node
// The least a relay built on npcd's own I/O stack can cost: uWebSockets.js
// towards the clients and an undici Pool towards the upstream, in one Node.js
// process, moving the upstream's bytes and nothing else.
//
// It is a measuring stick for the streaming relay benchmark, not a relay
// anyone should run: it checks that the request body is JSON, sends it
// upstream unchanged, and copies every chunk of the upstream's body to the
// client as it arrives, in one corked write. No
// sessions, no SSE parsing, no re-encoding, no metrics, no limits. Whatever
// npcd costs above it is npcd's own work. See bench/README.md ("Streaming
// relay overhead").
//
// With --read it is the least a relay that reads every token can cost: each
// event of the upstream's stream is parsed (JSON.parse) and sent on as an
// OpenAI chunk of the relay's own (its own id, the content, finish reason and
// usage re-encoded with JSON.stringify), still in one corked write per
// upstream chunk. What npcd costs above that is its sessions, turns, memory
// and metrics rather than reading and writing tokens.

import { parseArgs } from 'node:util';
import uWS from 'uWebSockets.js';
import { Pool } from 'undici';
import { isLoopback } from './lib.mjs';

const HELP = `Usage: node bench/providers/floor-relay.mjs --upstream URL [options]

  --upstream URL     the mock upstream's base URL, e.g. http://127.0.0.1:9000/v1 (loopback only)
  --host ADDR        loopback address to listen on (default 127.0.0.1)
  --port PORT        port (default 0: a free port; "listening on PORT" is printed)
  --connections N    upstream connections (default 256)
  --read             read every event and send it on re-encoded, instead of copying bytes
  -h, --help

Route: POST /v1/chat/completions. The request body must be JSON; it goes
upstream unchanged, and the upstream's answer comes back as it arrives
(status 200 only; anything else ends the response with 502).
`;

const { values: opt } = parseArgs({
  options: {
    upstream: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '0' },
    connections: { type: 'string', default: '256' },
    read: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }
if (!opt.upstream) { console.error('--upstream is required'); process.exit(2); }
const upstream = new URL(opt.upstream);
if (!isLoopback(opt.host) || !isLoopback(upstream.hostname)) { console.error('--host and --upstream must be loopback addresses'); process.exit(2); }

// The same pool settings as npcd's upstreams (src/providers/upstream.ts).
const pool = new Pool(upstream.origin, {
  connections: Number(opt.connections),
  pipelining: 1,
  keepAliveTimeout: 300_000,
  keepAliveMaxTimeout: 300_000,
  headersTimeout: 0,
  bodyTimeout: 0,
  connect: { timeout: 3000, keepAlive: true },
});
const path = `${upstream.pathname.replace(/\/+$/, '')}/chat/completions`;
const headers = { 'content-type': 'application/json' };

let served = 0;

/**
 * --read: takes the upstream's body chunk by chunk and returns the events
 * that completed in it, each parsed and re-encoded as this relay's own
 * OpenAI chunk ('' when none completed).
 */
class EventReader {
  #rest = '';
  #decoder = new TextDecoder();
  #head = `{"id":"chatcmpl-floor-${++served}","object":"chat.completion.chunk","created":${Math.floor(Date.now() / 1000)},"model":"bench-model","system_fingerprint":null,"choices":`;

  read(chunk) {
    let text = this.#rest + this.#decoder.decode(chunk, { stream: true });
    let out = '';
    for (let end = text.indexOf('\n\n'); end >= 0; end = text.indexOf('\n\n')) {
      const event = text.slice(0, end);
      text = text.slice(end + 2);
      if (!event.startsWith('data:')) continue;
      const data = event.slice(5).trim();
      out += data === '[DONE]' ? 'data: [DONE]\n\n' : this.#encode(JSON.parse(data));
    }
    this.#rest = text;
    return out;
  }

  #encode(chunk) {
    const usage = chunk.usage === undefined ? '' : `,"usage":${JSON.stringify(chunk.usage)}`;
    const choice = chunk.choices?.[0];
    if (choice === undefined) return `data: ${this.#head}[]${usage}}\n\n`;
    const delta = typeof choice.delta?.content === 'string' ? `{"content":${JSON.stringify(choice.delta.content)}}` : '{}';
    return `data: ${this.#head}[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${JSON.stringify(choice.finish_reason ?? null)}}]${usage}}\n\n`;
  }
}

function relay(res, body) {
  const state = { aborted: false, started: false, controller: undefined, reader: opt.read ? new EventReader() : undefined };
  res.onAborted(() => {
    state.aborted = true;
    state.controller?.abort();
  });
  pool.dispatch({ method: 'POST', path, headers, body }, {
    onRequestStart(controller) {
      state.controller = controller;
    },
    onResponseStart(controller, status) {
      if (status !== 200) controller.abort(new Error(`upstream answered ${status}`));
    },
    onResponseData(_controller, chunk) {
      if (state.aborted) return;
      const out = state.reader ? state.reader.read(chunk) : chunk;
      if (out.length === 0) return;
      res.cork(() => {
        if (!state.started) {
          state.started = true;
          res.writeStatus('200 OK').writeHeader('Content-Type', 'text/event-stream; charset=utf-8');
        }
        res.write(out);
      });
    },
    onResponseEnd() {
      if (!state.aborted) res.cork(() => res.end());
    },
    onResponseError(_controller, err) {
      if (state.aborted) return;
      if (state.started) res.cork(() => res.end());
      else res.cork(() => res.writeStatus('502 Bad Gateway').end(String(err?.message ?? err)));
    },
  });
}

uWS.App()
  .post('/v1/chat/completions', (res) => {
    const parts = [];
    let aborted = false;
    res.onAborted(() => { aborted = true; });
    res.onData((ab, last) => {
      parts.push(Buffer.from(ab.slice(0)));
      if (!last || aborted) return;
      const body = Buffer.concat(parts);
      try {
        JSON.parse(body.toString('utf8'));
      } catch {
        res.cork(() => res.writeStatus('400 Bad Request').end('body is not JSON'));
        return;
      }
      relay(res, body);
    });
  })
  .any('/*', (res) => { res.writeStatus('404 Not Found').end(); })
  .listen(opt.host, Number(opt.port), (socket) => {
    if (!socket) { console.error(`cannot listen on ${opt.host}:${opt.port}`); process.exit(1); }
    console.log(`listening on ${uWS.us_socket_local_port(socket)}`);
  });
