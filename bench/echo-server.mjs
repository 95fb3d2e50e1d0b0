#!/usr/bin/env node
// Baseline uWebSockets.js server for measuring the raw ceiling of the
// load generator + uWS on this machine.
//
//   node bench/echo-server.mjs [--port 9001] [--host 127.0.0.1] [--stream N]
//
// Without --stream every message on /v1/ws is echoed back unchanged (binary
// stays binary). With --stream N the server speaks the shape of protocol v1
// with zero model cost: hello → welcome, chat → start + N token + done frames
// sent in one cork, ping → pong.

import { parseArgs } from 'node:util';
import { createRequire } from 'node:module';
import { Packr, Unpackr } from 'msgpackr';

const require = createRequire(import.meta.url);
const uWS = require('uWebSockets.js');

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9001' },
    host: { type: 'string', default: '127.0.0.1' },
    stream: { type: 'string', default: '0' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) {
  console.log('Usage: node bench/echo-server.mjs [--port 9001] [--host 127.0.0.1] [--stream N]');
  process.exit(0);
}
const port = Number(values.port);
const stream = Number(values.stream);
if (!Number.isInteger(port) || port < 0 || port > 65535) { console.error('invalid --port'); process.exit(2); }
if (!Number.isInteger(stream) || stream < 0) { console.error('invalid --stream'); process.exit(2); }

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

const tokens = Array.from({ length: stream }, (_, i) => (i === 0 ? 'tok' : ' tok') + i);
const fullText = tokens.join('');
let sessions = 0;

function send(ws, obj) {
  obj.seq = ++ws.getUserData().seq;
  ws.send(packr.pack(obj), true);
}

function onStreamMessage(ws, message, isBinary) {
  let msg;
  try {
    msg = unpackr.unpack(Buffer.from(message));
  } catch {
    ws.cork(() => send(ws, { t: 'error', code: 'bad_request', message: 'undecodable frame' }));
    return;
  }
  if (msg === null || typeof msg !== 'object') {
    ws.cork(() => send(ws, { t: 'error', code: 'bad_request', message: 'expected a map' }));
    return;
  }
  const ud = ws.getUserData();
  ws.cork(() => {
    switch (msg.t) {
      case 'hello':
        ud.session = 'echo-' + (++sessions).toString(36);
        send(ws, { t: 'welcome', session: ud.session, seq: 0, heartbeat_ms: 15000, resumed: false });
        break;
      case 'chat': {
        const id = msg.id;
        if (!ud.session) { send(ws, { t: 'error', id, code: 'no_session', message: 'send hello first' }); break; }
        const character = msg.character;
        send(ws, { t: 'start', id, character, state: 'neutral' });
        for (let i = 0; i < stream; i++) send(ws, { t: 'token', id, text: tokens[i] });
        send(ws, {
          t: 'done', id, text: fullText, state: 'neutral',
          usage: { prompt_tokens: 8, completion_tokens: stream }, finish: 'stop',
        });
        break;
      }
      case 'ping':
        send(ws, { t: 'pong', ts: msg.ts });
        break;
      default:
        send(ws, { t: 'error', id: msg.id, code: 'bad_request', message: 'unknown t' });
    }
  });
}

const app = uWS.App();
app.ws('/v1/ws', {
  compression: uWS.DISABLED,
  maxPayloadLength: 1024 * 1024,
  maxBackpressure: 1024 * 1024,
  idleTimeout: 120,
  upgrade: (res, req, context) => {
    res.upgrade(
      { seq: 0, session: null },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  message: stream > 0
    ? onStreamMessage
    : (ws, message, isBinary) => { ws.send(message, isBinary); },
});
app.any('/*', (res) => { res.writeStatus('404 Not Found').end('not found\n'); });

let listenSocket = null;
app.listen(values.host, port, (ls) => {
  if (!ls) { console.error(`failed to listen on ${values.host}:${port}`); process.exit(1); }
  listenSocket = ls;
  console.log(`listening on ${uWS.us_socket_local_port(ls)}`);
});

function shutdown() {
  if (listenSocket) { uWS.us_listen_socket_close(listenSocket); listenSocket = null; }
  process.exit(0);
}
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
