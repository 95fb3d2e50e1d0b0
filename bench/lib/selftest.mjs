#!/usr/bin/env node
// Self-check for the generator's WebSocket frame parser, client framing,
// handshake handling, MessagePack scanner and histogram.
//   node bench/lib/selftest.mjs [--seed N] [--rounds N]

import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { Packr, Unpackr } from 'msgpackr';
import { FrameParser, WsConn, encodeFrame, encodePrefixedStrFrame, OP_BINARY, OP_TEXT, OP_PING, OP_PONG, OP_CLOSE } from './ws-client.mjs';
import { scanFrame, scannedId, idEqualsStr, encodeChatPrefix, encodeHello, encodePing } from './msgpack-scan.mjs';
import { Histogram } from './histogram.mjs';

const args = process.argv.slice(2);
let seed = Number(args[args.indexOf('--seed') + 1]) || 12345;
const rounds = Number(args[args.indexOf('--rounds') + 1]) || 200;

// deterministic PRNG (mulberry32)
function rnd() {
  seed |= 0; seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const ri = (n) => Math.floor(rnd() * n);
const pick = (a) => a[ri(a.length)];

const packr = new Packr({ useRecords: false });
const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });

function randStr(maxLen) {
  const alphabet = ['a', 'b', 'Z', '0', ' ', '剑', '客', 'é', '😀', '\n', 'x'];
  let s = '';
  const n = ri(maxLen + 1);
  for (let i = 0; i < n; i++) s += pick(alphabet);
  return s;
}

function randValue(depth = 0) {
  switch (ri(depth > 2 ? 7 : 10)) {
    case 0: return ri(200) - 100;
    case 1: return ri(2 ** 31) * (rnd() < 0.5 ? -1 : 1);
    case 2: return rnd() * 1000;
    case 3: return randStr(rnd() < 0.1 ? 400 : 40);
    case 4: return rnd() < 0.5;
    case 5: return null;
    case 6: return 2 ** 40 + ri(1000);
    case 7: return Array.from({ length: ri(20) }, () => randValue(depth + 1));
    case 8: { const o = {}; for (let i = ri(20); i > 0; i--) o['k' + i + randStr(3)] = randValue(depth + 1); return o; }
    default: return new Uint8Array(ri(300));
  }
}

// Server-shaped message objects with keys in random order and random extras.
function randMessage() {
  const t = pick(['welcome', 'start', 'token', 'done', 'error', 'pong', 'something_else']);
  const fields = { t, seq: ri(2 ** 33) };
  if (rnd() < 0.8) fields.id = rnd() < 0.9 ? 'c' + ri(1e6).toString(36) + '-' + ri(1e6).toString(36) : ri(100000);
  if (t === 'error') fields.code = pick(['busy', 'rate_limited', 'bad_request', 'x'.repeat(40)]);
  for (let i = ri(6); i > 0; i--) fields['f' + i] = randValue();
  if (rnd() < 0.1) fields.big = 'y'.repeat(70000 + ri(1000));
  const keys = Object.keys(fields).sort(() => rnd() - 0.5);
  const o = {};
  for (const k of keys) o[k] = fields[k];
  return o;
}

// Unmasked server frame.
function serverFrame(opcode, payload, fin = true, rsv = 0) {
  const n = payload.length;
  let h;
  if (n < 126) { h = Buffer.from([(fin ? 0x80 : 0) | rsv | opcode, n]); }
  else if (n < 65536) { h = Buffer.alloc(4); h[0] = (fin ? 0x80 : 0) | opcode; h[1] = 126; h.writeUInt16BE(n, 2); }
  else { h = Buffer.alloc(10); h[0] = (fin ? 0x80 : 0) | opcode; h[1] = 127; h.writeUInt32BE(0, 2); h.writeUInt32BE(n, 6); }
  return Buffer.concat([h, payload]);
}

// Reference decoder for masked client frames.
function decodeClientFrame(buf) {
  const fin = (buf[0] & 0x80) !== 0;
  const opcode = buf[0] & 0x0f;
  assert.ok(buf[1] & 0x80, 'client frame must be masked');
  let n = buf[1] & 0x7f, p = 2;
  if (n === 126) { n = buf.readUInt16BE(2); p = 4; }
  else if (n === 127) { n = Number(buf.readBigUInt64BE(2)); p = 10; }
  const mask = buf.subarray(p, p + 4); p += 4;
  assert.equal(buf.length, p + n, 'frame length');
  const out = Buffer.alloc(n);
  for (let i = 0; i < n; i++) out[i] = buf[p + i] ^ mask[i & 3];
  return { fin, opcode, payload: out, mask: Buffer.from(mask) };
}

function splits(total, mode) {
  if (mode === 'bytes') return Array.from({ length: total }, () => 1);
  const parts = [];
  let left = total;
  while (left > 0) {
    const n = Math.min(left, mode === 'small' ? 1 + ri(7) : 1 + ri(rnd() < 0.5 ? 200 : 20000));
    parts.push(n); left -= n;
  }
  return parts;
}

let checks = 0;

// ---- 1. frame parser + scanner ----------------------------------------------
function testParser() {
  for (let r = 0; r < rounds; r++) {
    const expected = []; // {kind:'msg', bin, payload} | {kind:'ctl', op, payload}
    const wire = [];
    const nMsgs = 1 + ri(40);
    for (let i = 0; i < nMsgs; i++) {
      const roll = rnd();
      if (roll < 0.1) {
        const op = pick([OP_PING, OP_PONG]);
        const payload = crypto.randomBytes(ri(126));
        wire.push(serverFrame(op, payload));
        expected.push({ kind: 'ctl', op, payload });
        continue;
      }
      const obj = randMessage();
      const payload = packr.pack(obj);
      const bin = rnd() < 0.9;
      const op = bin ? OP_BINARY : OP_TEXT;
      if (rnd() < 0.15 && payload.length > 3) {
        // fragmented, with a ping interleaved
        const cut1 = 1 + ri(payload.length - 2);
        const cut2 = cut1 + ri(payload.length - cut1);
        wire.push(serverFrame(op, payload.subarray(0, cut1), false));
        const pp = crypto.randomBytes(ri(20));
        wire.push(serverFrame(OP_PING, pp));
        expected.push({ kind: 'ctl', op: OP_PING, payload: pp });
        wire.push(serverFrame(0, payload.subarray(cut1, cut2), false));
        wire.push(serverFrame(0, payload.subarray(cut2), true));
      } else {
        wire.push(serverFrame(op, payload));
      }
      expected.push({ kind: 'msg', bin, payload, obj });
    }
    const stream = Buffer.concat(wire);
    for (const mode of ['bytes', 'small', 'random', 'whole']) {
      if (mode === 'bytes' && stream.length > 20000) continue;
      const got = [];
      const p = new FrameParser(
        (b, s, e, bin) => got.push({ kind: 'msg', bin, payload: Buffer.from(b.subarray(s, e)) }),
        (op, payload) => got.push({ kind: 'ctl', op, payload: Buffer.from(payload) }),
        (err) => { throw err; },
      );
      if (mode === 'whole') p.push(stream);
      else {
        let off = 0;
        for (const n of splits(stream.length, mode)) { p.push(stream.subarray(off, off + n)); off += n; }
      }
      assert.equal(got.length, expected.length, `round ${r} mode ${mode}: message count`);
      for (let i = 0; i < got.length; i++) {
        const g = got[i], x = expected[i];
        assert.equal(g.kind, x.kind);
        assert.ok(g.payload.equals(x.payload), `round ${r} mode ${mode} msg ${i}: payload bytes`);
        if (g.kind === 'ctl') { assert.equal(g.op, x.op); continue; }
        assert.equal(g.bin, x.bin);
        // scanner vs msgpackr
        const ref = unpackr.unpack(g.payload);
        const sc = {};
        assert.ok(scanFrame(g.payload, 0, g.payload.length, sc), 'scan ok');
        assert.equal(sc.t, ref.t);
        assert.equal(scannedId(g.payload, sc), ref.id === undefined ? null : String(ref.id));
        assert.equal(Number.isNaN(sc.seq) ? undefined : sc.seq, ref.seq);
        assert.equal(sc.code, ref.code === undefined ? null : ref.code);
        if (typeof ref.id === 'string') assert.ok(idEqualsStr(g.payload, sc, ref.id));
        assert.ok(!idEqualsStr(g.payload, sc, 'nope'));
        // scan the same payload embedded at an offset in a larger buffer
        const emb = Buffer.concat([crypto.randomBytes(5), g.payload, crypto.randomBytes(5)]);
        const sc2 = {};
        assert.ok(scanFrame(emb, 5, 5 + g.payload.length, sc2));
        assert.equal(sc2.t, sc.t); assert.equal(sc2.seq, sc.seq) ;
        checks++;
      }
    }
  }
  // truncated / non-map payloads must not throw
  const sc = {};
  const good = packr.pack({ t: 'token', id: 'abc', seq: 5, text: 'hello' });
  for (let i = 0; i < good.length; i++) assert.equal(scanFrame(good.subarray(0, i), 0, i, sc), false, 'truncated at ' + i);
  assert.equal(scanFrame(packr.pack([1, 2]), 0, 3, sc), false);
  assert.equal(scanFrame(packr.pack('str'), 0, 4, sc), false);
  // protocol violations are reported
  let err = null;
  new FrameParser(() => {}, () => {}, (e) => { err = e; }).push(serverFrame(OP_BINARY, Buffer.from('x'), true, 0x40));
  assert.ok(err && /RSV/.test(err.message));
  err = null;
  new FrameParser(() => {}, () => {}, (e) => { err = e; }).push(serverFrame(0, Buffer.from('x')));
  assert.ok(err && /continuation/.test(err.message));
  console.log(`parser/scanner: ok (${checks} messages checked across byte-by-byte, small, random and whole-chunk splits)`);
}

// ---- 2. client framing ----------------------------------------------------
function testClientFrames() {
  const masks = new Set();
  for (let i = 0; i < 2000; i++) {
    const n = pick([0, 1, 5, 125, 126, 127, 1000, 65535, 65536, 70000, ri(300)]);
    const payload = crypto.randomBytes(n);
    const op = pick([OP_BINARY, OP_TEXT, OP_PING, OP_CLOSE]);
    const f = decodeClientFrame(encodeFrame(op, payload));
    assert.equal(f.opcode, op); assert.ok(f.fin); assert.ok(f.payload.equals(payload));
    masks.add(f.mask.toString('hex'));
  }
  assert.ok(masks.size > 1990, 'masks should be fresh per frame');
  for (const [character, text] of [['gufeng-jianke', 'bench'], ['古风剑客', 'x'.repeat(200)], ['c', 'y'.repeat(70000)]]) {
    const prefix = encodeChatPrefix(character, text);
    for (let i = 0; i < 200; i++) {
      const id = 'c' + ri(1e9).toString(36) + '-' + i.toString(36);
      const f = decodeClientFrame(encodePrefixedStrFrame(prefix, id));
      assert.equal(f.opcode, OP_BINARY);
      assert.deepEqual(unpackr.unpack(f.payload), { t: 'chat', character, text, id });
    }
  }
  assert.deepEqual(unpackr.unpack(encodeHello()), { t: 'hello', v: 1 });
  assert.deepEqual(unpackr.unpack(encodeHello({ session: 'abc', resume: true })), { t: 'hello', v: 1, session: 'abc', resume: true });
  assert.deepEqual(unpackr.unpack(encodePing(1234.5)), { t: 'ping', ts: 1234.5 });
  console.log('client framing: ok');
}

// ---- 3. handshake + frames arriving in the same / split chunks --------------
function testHandshake() {
  const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
  for (let r = 0; r < 50; r++) {
    const ws = new WsConn();
    const written = [];
    let resolved = false, failed = null;
    ws.socket = { write: (b) => { written.push(b); return true; }, end() {}, destroy() {} };
    ws.state = 'handshake';
    ws._key = crypto.randomBytes(16).toString('base64');
    ws._hs = { chunks: [], len: 0, resolve: () => { resolved = true; }, fail: (e) => { failed = e; } };
    const got = [];
    if (r % 2) ws.onmessage = (b, s, e) => got.push(unpackr.unpack(b.subarray(s, e)));
    const accept = crypto.createHash('sha1').update(ws._key + GUID).digest('base64');
    const resp = Buffer.from(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`, 'latin1');
    const msgs = [{ t: 'welcome', session: 's1', seq: 0 }, { t: 'token', id: 'a', seq: 1 }];
    const stream = Buffer.concat([resp, serverFrame(OP_PING, Buffer.from('hi')), ...msgs.map((m) => serverFrame(OP_BINARY, packr.pack(m)))]);
    let off = 0;
    for (const n of splits(stream.length, r % 3 === 0 ? 'bytes' : 'small')) { ws._onData(stream.subarray(off, off + n)); off += n; }
    if (!(r % 2)) ws.onmessage = (b, s, e) => got.push(unpackr.unpack(b.subarray(s, e)));
    assert.equal(failed, null); assert.ok(resolved); assert.equal(ws.state, 'open');
    assert.deepEqual(got, msgs);
    const pong = decodeClientFrame(written[0]);
    assert.equal(pong.opcode, OP_PONG); assert.equal(pong.payload.toString(), 'hi');
  }
  // bad accept and non-101 are rejected
  for (const [line, extra, code] of [['HTTP/1.1 101 Switching Protocols', 'Sec-WebSocket-Accept: wrong\r\n', 'BAD_ACCEPT'], ['HTTP/1.1 404 Not Found', '', 'HTTP_404']]) {
    const ws = new WsConn();
    let failed = null;
    ws.socket = { write() {}, end() {}, destroy() {} };
    ws.state = 'handshake';
    ws._key = 'x';
    ws._hs = { chunks: [], len: 0, resolve() {}, fail: (e) => { failed = e; } };
    ws._onData(Buffer.from(`${line}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n${extra}\r\n`));
    assert.equal(failed && failed.code, code);
  }
  console.log('handshake: ok');
}

// ---- 4. histogram -----------------------------------------------------------
function testHistogram() {
  const vals = [];
  const h = new Histogram();
  for (let i = 0; i < 100000; i++) {
    const v = Math.floor(Math.exp(rnd() * 14)); // 1 µs .. ~1.2 s
    vals.push(v); h.record(v);
  }
  vals.sort((a, b) => a - b);
  for (const q of [1, 10, 50, 90, 99, 99.9]) {
    const exact = vals[Math.ceil(q / 100 * vals.length) - 1];
    const est = h.percentile(q);
    assert.ok(Math.abs(est - exact) <= Math.max(1, exact * 0.016), `p${q}: ${est} vs ${exact}`);
  }
  assert.equal(h.percentile(100), vals[vals.length - 1]);
  // merge == record into one
  const a = new Histogram(), b = new Histogram(), all = new Histogram();
  for (let i = 0; i < 10000; i++) { const v = ri(5e6); (i % 2 ? a : b).record(v); all.record(v); }
  const m = Histogram.fromJSON(JSON.parse(JSON.stringify(a.toJSON())));
  m.addJSON(b.toJSON());
  for (const q of [50, 99, 99.9]) assert.equal(m.percentile(q), all.percentile(q));
  assert.equal(m.count, all.count); assert.equal(m.max, all.max); assert.equal(m.min, all.min);
  console.log('histogram: ok');
}

testParser();
testClientFrames();
testHandshake();
testHistogram();
console.log('selftest passed');
