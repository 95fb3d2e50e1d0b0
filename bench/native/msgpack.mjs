#!/usr/bin/env node
// MessagePack framing: npcd's native codec (native/, through N-API) against
// msgpackr, on the paths the server takes (src/protocol/codec.ts and
// sendFrames in src/server/ws.ts) and on generic encode/decode. Needs the
// build (dist/) and the native binary:
//   node bench/native/msgpack.mjs [--quick] [--json]
//
// First it checks that both implementations agree on every frame and value
// it uses; then it times each case in a child process per implementation,
// so that V8 sees only one codec class, as a running server does. The
// children run in the order native, msgpackr, msgpackr, native, each taking
// half of the rounds, and the medians are taken over all rounds (--quick:
// one child each, four short rounds). --json adds every round's time.
import { fork } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { benchArgs } from '../lib/args.mjs';
import { mulberry32 } from '../../dist/text/random.js';

const DIST = new URL('../../dist/', import.meta.url);
for (const file of ['protocol/codec.js', 'native/index.js']) {
  if (!existsSync(new URL(file, DIST))) {
    console.error(`${fileURLToPath(new URL(file, DIST))} is missing: run npm run build first`);
    process.exit(2);
  }
}
const { NativeCodec, MsgpackrCodec, DEFAULT_DECODE_LIMITS } = await import(new URL('protocol/codec.js', DIST).href);
const { loadNative, describeLoadError, nativePath } = await import(new URL('native/index.js', DIST).href);
const msgpackr = await import('msgpackr');
const { Packr, Unpackr } = msgpackr;

const args = benchArgs(
  {
    quick: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
    child: { type: 'string' },
    rounds: { type: 'string' },
  },
  `Usage: node bench/native/msgpack.mjs [--quick] [--json] [--rounds N]

  --quick      one child per implementation, four short rounds (about 15 s)
  --json       print every round's time as JSON too
  --rounds N   rounds per implementation (default: the full run's)
  -h, --help

MessagePack framing, npcd's native codec against msgpackr (bench/README.md,
"Native MessagePack framing"). Needs npm run build and the native binary.`,
);

// Same options as MsgpackrCodec (src/protocol/codec.ts).
const PACKR_OPTIONS = { useRecords: false, variableMapSize: true };
const UNPACKR_OPTIONS = { useRecords: false, mapsAsObjects: true };

// ---------------------------------------------------------------------------
// Workload: deterministic, so every process builds the same frames.

const rand = mulberry32(20261126);
const pick = (list) => list[Math.floor(rand() * list.length)];
const int = (lo, hi) => lo + Math.floor(rand() * (hi - lo + 1));

// LLM-like tokens: 1–12 UTF-16 units, mostly English words with a leading space.
const ASCII_TOKENS = [
  ' the', ' a', ' you', ' I', ' of', ' and', ' to', ' in', ',', '.', '!', '?', "'s", ' is', ' was',
  ' traveler', ' tavern', ' ale', ' night', ' road', ' sword', ' wind', ' fire', ' coin', ' story',
  ' stranger', ' ancient', ' whispers', ' mountains', ' river', ' quiet', ' warm', ' mug', ' keeper',
  ' adventurers', ' whispering', ' upstairs', ' rumor', ' north', ' gate', ' bread', 'ing', 'ed', ' un',
  '\n', '\n\n', ' —', ' "', '."', ' Aye',
];
const CJK_TOKENS = ['古风剑客', '江湖', '明月', '剑', '。', '，', '侠客', '山风', '酒', '客官', '在下', '何处', '夜雨', '剑气纵横'];
const EMOJI_TOKENS = [' 🍺', '🗡️', ' 🔥', '😊', ' ✨', '🌙'];
const token = () => {
  const r = rand();
  return pick(r < 0.8 ? ASCII_TOKENS : r < 0.94 ? CJK_TOKENS : EMOJI_TOKENS);
};
const CHARACTERS = [
  ['tavern-keeper', ['friendly', 'suspicious', 'closed']],
  ['gufeng-jianke', ['calm', 'wary', 'hostile']],
  ['station-ai', ['nominal', 'alert', 'lockdown']],
];
const WORDS = ['where', 'is', 'the', 'old', 'road', 'to', 'the', 'north', 'gate', 'tell', 'me', 'a', 'story', 'about',
  'your', 'sword', 'I', 'need', 'a', 'room', 'for', 'the', 'night', 'and', 'some', 'bread', 'please', 'what', 'news'];
const CJK_MESSAGE = '请问大侠，此去江湖路远，何处可寻一壶好酒？夜雨将至，在下愿闻其详。';
function chatText() {
  const target = int(20, 200);
  if (rand() < 0.15) return CJK_MESSAGE.repeat(4).slice(0, Math.max(20, Math.floor(target / 2)));
  let s = '';
  while (s.length < target) s += (s ? ' ' : '') + pick(WORDS);
  return s.slice(0, target);
}
const b64 = '0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_';
const sessionId = () => 'sess_' + Array.from({ length: 16 }, () => pick(b64)).join('');

const POOL = 64; // distinct inputs per case, cycled through
const TOKENS_PER_REPLY = 16;
const replies = [];
let seq = 40;
for (let r = 0; r < POOL; r++) {
  const [character, states] = pick(CHARACTERS);
  const id = `m-${100 + r}`;
  const start = { t: 'start', seq: ++seq, id, character, state: pick(states) };
  const tokens = [];
  for (let i = 0; i < TOKENS_PER_REPLY; i++) tokens.push({ t: 'token', seq: ++seq, id, text: token() });
  const text = tokens.map((f) => f.text).join('');
  const done = {
    t: 'done', seq: ++seq, id, text, state: pick(states),
    usage: { prompt_tokens: int(180, 2400), completion_tokens: TOKENS_PER_REPLY }, finish: 'stop',
  };
  replies.push({ start, tokens, done, frames: [start, ...tokens, done] });
}
const allTokens = replies.flatMap((r) => r.tokens);
const chats = Array.from({ length: POOL }, (_, i) => ({ t: 'chat', id: `m-${100 + i}`, character: pick(CHARACTERS)[0], text: chatText() }));
const hellos = Array.from({ length: POOL }, (_, i) => ({ t: 'hello', v: 1, session: sessionId(), resume: 42 + i * 18 }));
const pings = Array.from({ length: POOL }, (_, i) => ({ t: 'ping', ts: 1_795_000_000_000 + i * 15_000 }));
const otherServerFrames = [
  { t: 'welcome', session: hellos[0].session, seq: 42, heartbeat_ms: 15_000, resumed: true },
  { t: 'welcome', session: hellos[1].session, seq: 0, heartbeat_ms: 15_000, resumed: false, batch: true },
  { t: 'error', seq: 7, id: 'm-7', code: 'ERR_SESSION_BUSY', message: 'a reply is already being generated in this session' },
  { t: 'error', code: 'ERR_PROTOCOL_MALFORMED', message: 'invalid MessagePack: truncated at byte 12' },
  { t: 'pong', ts: pings[0].ts },
  { t: 'pong', ts: 1_795_000_000_123.5 },
];

// Client frames as the server receives them: one ArrayBuffer per message.
const packr = new Packr(PACKR_OPTIONS);
const toArrayBuffer = (frame) => {
  const b = packr.pack(frame);
  return b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
};
const chatBufs = chats.map(toArrayBuffer);
const helloBufs = hellos.map(toArrayBuffer);
const pingBufs = pings.map(toArrayBuffer);

// ---------------------------------------------------------------------------
// Checks: the two implementations must agree before their speed is compared.

function genericValues() {
  const s = (n, unit = 'a') => unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
  const obj = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, i]));
  return [
    null, true, false, undefined,
    0, 1, -1, 127, 128, 255, 256, -32, -33, -128, -129, 65535, 65536, -32768, -32769,
    2 ** 31 - 1, 2 ** 31, 2 ** 32 - 1, 2 ** 32, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53, -(2 ** 53),
    0.5, -1.25, 1e300, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, NaN, Infinity, -Infinity,
    0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n,
    '', 'a', s(31), s(32), s(255), s(256), s(65535), s(65536), '古风剑客', '😊🗡️', s(40, '江湖'), s(300, 'é'),
    [], [1, 'two', [3]], Array.from({ length: 15 }, (_, i) => i), Array.from({ length: 16 }, (_, i) => i),
    Array.from({ length: 70000 }, (_, i) => i & 0xff),
    {}, obj(15), obj(16), obj(70000), { nested: { deeper: [{ x: 1 }, { y: [null, true] }] } }, { a: undefined, b: null },
    Buffer.from([1, 2, 3]), new Uint8Array(0), new Uint8Array(300).fill(7), Buffer.alloc(70000, 1),
    new Date(0), new Date(1_795_000_000_000), new Date(1_795_000_000_123), new Date(-1),
  ];
}

const binAsHex = (v) => (v instanceof Uint8Array ? { bin: Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex') } : v);
const BIG_LIMITS = { maxInputBytes: 1 << 24, maxStrBytes: 1 << 24, maxBinBytes: 1 << 24, maxContainerLen: 1 << 20, maxTotalItems: 1 << 22 };

function check(native) {
  const failures = [];
  const fail = (what, detail) => failures.push(`${what}: ${detail}`);
  const nc = new NativeCodec(native);
  const mc = new MsgpackrCodec();
  const unpackr = new Unpackr(UNPACKR_OPTIONS);
  const hex = (b) => Buffer.from(b).toString('hex');
  const equalBytes = (a, b) => Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
  const runBytes = (codec, frames) => {
    const n = codec.encodeRun(frames, 0);
    return { n, bytes: codec.bytes.slice(0, codec.ends[n - 1]), ends: Array.from(codec.ends.subarray(0, n)) };
  };
  let counts = { serverFrames: 0, runs: 0, clientFrames: 0, genericValues: 0 };

  // Every server frame alone: byte-equal runs, and each decodes the other's bytes.
  const serverFrames = [...replies.flatMap((r) => r.frames), ...otherServerFrames];
  for (const f of serverFrames) {
    const a = runBytes(nc, [f]);
    const b = runBytes(mc, [f]);
    if (a.n !== 1 || b.n !== 1) fail(`encodeRun ${f.t}`, `count ${a.n}/${b.n}`);
    if (!equalBytes(a.bytes, b.bytes)) fail(`encodeRun ${f.t} bytes`, `native ${hex(a.bytes)} msgpackr ${hex(b.bytes)}`);
    if (!isDeepStrictEqual(unpackr.unpack(a.bytes), f)) fail(`msgpackr decode of native ${f.t}`, JSON.stringify(unpackr.unpack(a.bytes)));
    if (!isDeepStrictEqual(native.decode(b.bytes), f)) fail(`native decode of msgpackr ${f.t}`, JSON.stringify(native.decode(b.bytes)));
    const ca = nc.encodeFrame(f, 'msgpack');
    const cb = mc.encodeFrame(f, 'msgpack');
    if (!equalBytes(ca, cb)) fail(`encodeFrame ${f.t} bytes`, `native ${hex(ca)} msgpackr ${hex(cb)}`);
    counts.serverFrames++;
  }
  // Whole runs (a reply, and 4/16/64 tokens): same bytes, same ends, streams decode to the frames.
  const runs = [...replies.map((r) => r.frames), ...[4, 16, 64].map((len) => allTokens.slice(len, len * 2))];
  for (const frames of runs) {
    const a = runBytes(nc, frames);
    const b = runBytes(mc, frames);
    if (a.n !== frames.length || b.n !== frames.length) fail('encodeRun run', `count ${a.n}/${b.n} of ${frames.length}`);
    if (!equalBytes(a.bytes, b.bytes) || !isDeepStrictEqual(a.ends, b.ends)) fail('encodeRun run bytes', `${frames.length} frames differ`);
    if (!isDeepStrictEqual(unpackr.unpackMultiple(a.bytes), frames)) fail('msgpackr unpackMultiple of native run', `${frames.length} frames`);
    if (!isDeepStrictEqual(native.decodeStream(b.bytes), frames)) fail('native decodeStream of msgpackr run', `${frames.length} frames`);
    counts.runs++;
  }
  // Client frames through decodeFrame, each implementation on the other's bytes.
  for (const f of [...chats, ...hellos, ...pings, { t: 'cancel', id: 'm-1' }, { t: 'hello', v: 1, batch: true }, { t: 'ping' }]) {
    const a = native.encode(f);
    const b = packr.pack(f);
    if (!equalBytes(a, b)) fail(`encode ${f.t} bytes`, `native ${hex(a)} msgpackr ${hex(b)}`);
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
    if (!isDeepStrictEqual(nc.decodeFrame(ab, true), f)) fail(`NativeCodec.decodeFrame ${f.t}`, JSON.stringify(nc.decodeFrame(ab, true)));
    if (!isDeepStrictEqual(mc.decodeFrame(a, true), f)) fail(`MsgpackrCodec.decodeFrame ${f.t}`, JSON.stringify(mc.decodeFrame(a, true)));
    counts.clientFrames++;
  }
  // Generic values: native encode(v) is byte for byte msgpackr pack(v).
  for (const v of genericValues()) {
    let a;
    let b;
    try {
      a = native.encode(v);
      b = packr.pack(v);
    } catch (err) {
      fail('generic encode', `${String(v).slice(0, 40)} threw ${err.message}`);
      continue;
    }
    if (!equalBytes(a, b)) fail('generic encode bytes', `${typeof v} ${String(v).slice(0, 40)}: native ${hex(a).slice(0, 64)} msgpackr ${hex(b).slice(0, 64)}`);
    // And both read them back alike: through decodeFrame (whatever path it
    // takes) when within the server's limits, else the module's decode.
    const ab = b.buffer.slice(b.byteOffset, b.byteOffset + b.length);
    const small = b.length <= DEFAULT_DECODE_LIMITS.maxInputBytes;
    const x = small ? nc.decodeFrame(ab, true) : native.decode(b, BIG_LIMITS);
    const y = small ? mc.decodeFrame(ab, true) : unpackr.unpack(b);
    // bin comes back as a Buffer from one and a Uint8Array from the other: compare bytes.
    if (!isDeepStrictEqual(binAsHex(x), binAsHex(y)) && !(Number.isNaN(x) && Number.isNaN(y))) {
      fail('generic decodeFrame', `${typeof v} ${String(v).slice(0, 40)}: native ${String(x).slice(0, 40)} msgpackr ${String(y).slice(0, 40)}`);
    }
    counts.genericValues++;
  }
  return { ok: failures.length === 0, failures, counts };
}

// ---------------------------------------------------------------------------
// Cases. Each `make` returns fn(iters) → a number (kept, so no work is dead).

/** sendFrames (src/server/ws.ts) without the socket: encode runs, take the views it sends. */
function sendFrames(codec, frames, batch) {
  let sent = 0;
  for (let i = 0; i < frames.length; ) {
    const n = codec.encodeRun(frames, i);
    const { bytes, ends } = codec;
    if (batch && n > 1) {
      sent += bytes.subarray(0, ends[n - 1]).length;
    } else {
      for (let j = 0, start = 0; j < n; start = ends[j], j++) sent += bytes.subarray(start, ends[j]).length;
    }
    i += n;
  }
  return sent;
}

const MASK = POOL - 1;
const singles = allTokens.map((f) => [f]); // one token per call, as when a model streams
const replySingles = replies.map((r) => r.frames.map((f) => [f]));
const replyFrames = replies.map((r) => r.frames);
const runsOf = (len) => Array.from({ length: POOL }, (_, k) => Array.from({ length: len }, (_, i) => allTokens[(k * len + i) % allTokens.length]));
const welcome = otherServerFrames[0];
const pongs = pings.map((p) => ({ t: 'pong', ts: p.ts }));
const tokenFrames = allTokens.slice(0, POOL);
const startFrames = replies.map((r) => r.start);
const doneFrames = replies.map((r) => r.done);
const bytesOf = (frames) => frames.map(toArrayBuffer);

function cases() {
  const list = [];
  const add = (group, name, unit, frames, make) => list.push({ group, name, unit, frames, make });

  add('a', 'token, one frame per run', 'frame', 1, (codec) => (iters) => {
    let sum = 0;
    const mask = singles.length - 1;
    for (let i = 0; i < iters; i++) sum += sendFrames(codec, singles[i & mask], false);
    return sum;
  });
  for (const len of [4, 16, 64]) {
    const runs = runsOf(len);
    add('b', `tokens, run of ${len}`, 'run', len, (codec) => (iters) => {
      let sum = 0;
      for (let i = 0; i < iters; i++) sum += sendFrames(codec, runs[i & MASK], false);
      return sum;
    });
  }
  add('c', 'reply (start + 16 token + done), one run', 'reply', 18, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += sendFrames(codec, replyFrames[i & MASK], false);
    return sum;
  });
  add('c', 'reply, one run, batch client', 'reply', 18, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += sendFrames(codec, replyFrames[i & MASK], true);
    return sum;
  });
  add('c', 'control frame: pong (encodeFrame)', 'frame', 1, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += codec.encodeFrame(pongs[i & MASK], 'msgpack').length;
    return sum;
  });
  add('c', 'control frame: welcome (encodeFrame)', 'frame', 1, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += codec.encodeFrame(welcome, 'msgpack').length;
    return sum;
  });
  for (const [name, bufs] of [['chat', chatBufs], ['hello', helloBufs], ['ping', pingBufs]]) {
    add('d', `decodeFrame ${name}`, 'frame', 1, (codec) => (iters) => {
      let sum = 0;
      for (let i = 0; i < iters; i++) sum += codec.decodeFrame(bufs[i & MASK], true).t.length;
      return sum;
    });
  }
  add('e', 'turn: decode chat + reply, one frame per run', 'turn', 19, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) {
      sum += codec.decodeFrame(chatBufs[i & MASK], true).text.length;
      const frames = replySingles[i & MASK];
      for (let j = 0; j < frames.length; j++) sum += sendFrames(codec, frames[j], false);
    }
    return sum;
  });
  add('e', 'turn: decode chat + reply, one run', 'turn', 19, (codec) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) {
      sum += codec.decodeFrame(chatBufs[i & MASK], true).text.length;
      sum += sendFrames(codec, replyFrames[i & MASK], false);
    }
    return sum;
  });
  // Generic: the module's encode/decode against msgpackr's pack/unpack, no tape, no codec.
  // msgpackr's pack returns a view into a buffer it reuses; encode returns a new Buffer.
  for (const [name, frames] of [['token', tokenFrames], ['start', startFrames], ['done', doneFrames], ['chat', chats]]) {
    add('f', `generic encode: ${name}`, 'value', 1, (_codec, impl) => (iters) => {
      let sum = 0;
      for (let i = 0; i < iters; i++) sum += impl.encode(frames[i & MASK]).length;
      return sum;
    });
  }
  for (const [name, bufs] of [['token', bytesOf(tokenFrames)], ['start', bytesOf(startFrames)], ['done', bytesOf(doneFrames)], ['chat', chatBufs]]) {
    add('f', `generic decode: ${name}`, 'value', 1, (_codec, impl) => (iters) => {
      let sum = 0;
      for (let i = 0; i < iters; i++) sum += impl.decode(bufs[i & MASK]).t.length;
      return sum;
    });
  }
  const nil = toArrayBuffer(null);
  add('f', 'generic encode: null (call floor)', 'value', 1, (_codec, impl) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += impl.encode(null).length;
    return sum;
  });
  add('f', 'generic decode: nil (call floor)', 'value', 1, (_codec, impl) => (iters) => {
    let sum = 0;
    for (let i = 0; i < iters; i++) sum += impl.decode(nil) === null ? 1 : 0;
    return sum;
  });
  return list;
}

// ---------------------------------------------------------------------------
// Child: time every case for one implementation.

function timeCase(fn, { warmupMs, roundMs, rounds }) {
  const now = () => Number(process.hrtime.bigint());
  let sink = 0;
  // Calibrate: double the batch until one call takes 10 ms, then keep warming up.
  let iters = 16;
  let perOp;
  const warmEnd = now() + warmupMs * 1e6;
  for (;;) {
    const t0 = now();
    sink += fn(iters);
    const elapsed = now() - t0;
    perOp = elapsed / iters;
    if (elapsed < 10e6) iters *= 2;
    else if (now() >= warmEnd) break;
  }
  iters = Math.max(1, Math.round((roundMs * 1e6) / perOp));
  const samples = [];
  for (let r = 0; r < rounds; r++) {
    const t0 = now();
    sink += fn(iters);
    samples.push((now() - t0) / iters);
  }
  return { samples, iters, sink };
}

async function runChild(impl, rounds) {
  let codec;
  let generic;
  if (impl === 'native') {
    const native = loadNative();
    codec = new NativeCodec(native);
    native.setDecodeLimits(DEFAULT_DECODE_LIMITS);
    generic = { encode: native.encode, decode: native.decode };
  } else {
    codec = new MsgpackrCodec();
    const p = new Packr(PACKR_OPTIONS);
    const u = new Unpackr(UNPACKR_OPTIONS);
    // Inputs are ArrayBuffers, as the server receives them: the native module
    // takes one as it is, msgpackr needs a view (a fresh one per message, as
    // MsgpackrCodec makes; msgpackr caches a DataView on it).
    generic = { encode: (v) => p.pack(v), decode: (ab) => u.unpack(new Uint8Array(ab)) };
  }
  const timing = args.quick ? { warmupMs: 100, roundMs: 40, rounds } : { warmupMs: 300, roundMs: 150, rounds };
  const out = [];
  let sink = 0;
  for (const c of cases()) {
    const r = timeCase(c.make(codec, generic), timing);
    sink += r.sink;
    out.push({ name: c.name, samples: r.samples, iters: r.iters });
  }
  const cpu = process.cpuUsage();
  process.send({ impl, results: out, sink, cpuMs: (cpu.user + cpu.system) / 1000 });
}

/** Busy and total CPU time of the whole machine so far, in ms (Linux), to see what else ran. */
function machineCpu() {
  try {
    const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const tick = 10; // USER_HZ = 100 on Linux
    const idle = fields[3] + fields[4];
    const total = fields.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busyMs: (total - idle) * tick, totalMs: total * tick };
  } catch {
    return undefined;
  }
}

/** Runs one child; `otherCores` is the CPU the rest of the machine used meanwhile, in cores. */
async function runChildProcess(impl, rounds) {
  const cpu0 = machineCpu();
  const t0 = Date.now();
  const result = await spawnChild(impl, rounds);
  const cpu1 = machineCpu();
  const wallMs = Date.now() - t0;
  if (cpu0 && cpu1) result.otherCores = Math.max(0, (cpu1.busyMs - cpu0.busyMs - result.cpuMs) / wallMs);
  return result;
}

function spawnChild(impl, rounds) {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), ['--child', impl, '--rounds', String(rounds), ...(args.quick ? ['--quick'] : [])], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    let result;
    child.on('message', (m) => { result = m; });
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 && result ? resolve(result) : reject(new Error(`${impl} child exited with ${code}`))));
  });
}

// ---------------------------------------------------------------------------
// Report.

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtNs = (ns) => (ns >= 1000 ? Math.round(ns).toLocaleString('en-US') : ns.toFixed(1));
const fmtOps = (ops) => (ops >= 1e6 ? `${(ops / 1e6).toPrecision(3)} M` : `${(ops / 1e3).toPrecision(3)} k`);
const fmtRatio = (r) => (r >= 1 ? `${r.toFixed(2)}× faster` : `${(1 / r).toFixed(2)}× slower`);

function summarise(samples) {
  const med = median(samples);
  const spread = Math.max(...samples.map((x) => Math.abs(x - med))) / med;
  return { medianNs: med, opsPerSec: 1e9 / med, maxDeviationPct: spread * 100, roundsNs: samples.map((x) => Math.round(x * 10) / 10) };
}

function table(results) {
  const rows = [['', 'case', 'per', 'native ns', 'native ops/s', 'msgpackr ns', 'msgpackr ops/s', 'native vs msgpackr']];
  for (const r of results) {
    const line = (label, per, div) => rows.push([
      r.group, label, per,
      `${fmtNs(r.native.medianNs / div)} ±${r.native.maxDeviationPct.toFixed(0)}%`, fmtOps(r.native.opsPerSec * div),
      `${fmtNs(r.msgpackr.medianNs / div)} ±${r.msgpackr.maxDeviationPct.toFixed(0)}%`, fmtOps(r.msgpackr.opsPerSec * div),
      fmtRatio(r.ratio),
    ]);
    line(r.name, r.unit, 1);
    if (r.unit === 'run') line('', 'frame', r.frames);
  }
  return rows;
}

function printMarkdown(rows) {
  const right = new Set([3, 4, 5, 6]);
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const cell = (row) => '| ' + row.map((c, i) => (right.has(i) ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join(' | ') + ' |';
  console.log(cell(rows[0]));
  console.log('|' + widths.map((w, i) => (right.has(i) ? '-'.repeat(w + 1) + ':' : '-'.repeat(w + 2))).join('|') + '|');
  for (const row of rows.slice(1)) console.log(cell(row));
}

/** What was measured: the start of the SHA-256 of the native binary and of the compiled codec. */
function buildId() {
  const hash = (path) => {
    try {
      return createHash('sha256').update(readFileSync(path)).digest('hex').slice(0, 16);
    } catch {
      return undefined;
    }
  };
  return { nativeBinary: hash(nativePath()), codecJs: hash(new URL('protocol/codec.js', DIST)) };
}

function msgpackrVersion() {
  try {
    return JSON.parse(readFileSync(new URL('../../node_modules/msgpackr/package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

async function main() {
  let native;
  try {
    native = loadNative();
  } catch (err) {
    console.error(`native module: ${describeLoadError(err)}`);
    process.exit(2);
  }
  const checks = check(native);
  if (!checks.ok) {
    console.error('implementations disagree:');
    for (const f of checks.failures.slice(0, 20)) console.error(`  ${f}`);
    process.exit(1);
  }
  const build = buildId();
  const totalRounds = args.quick ? 4 : 10;
  const half = totalRounds / 2;
  const started = Date.now();
  const samples = { native: new Map(), msgpackr: new Map() };
  const children = [];
  for (const impl of args.quick ? ['native', 'msgpackr'] : ['native', 'msgpackr', 'msgpackr', 'native']) {
    const { results, cpuMs, otherCores } = await runChildProcess(impl, args.quick ? totalRounds : half);
    children.push({ impl, cpuMs: Math.round(cpuMs), otherCores });
    for (const r of results) samples[impl].set(r.name, [...(samples[impl].get(r.name) ?? []), ...r.samples]);
  }
  const buildChanged = JSON.stringify(buildId()) !== JSON.stringify(build);
  if (buildChanged) console.error('warning: the native binary or dist/protocol/codec.js changed during the run');
  const otherCores = Math.max(...children.map((c) => c.otherCores ?? 0));
  if (otherCores > 0.1) {
    console.error(`warning: other processes used up to ${otherCores.toFixed(2)} cores while timing; the numbers are not clean`);
  }
  const results = cases().map((c) => {
    const n = summarise(samples.native.get(c.name));
    const m = summarise(samples.msgpackr.get(c.name));
    return { group: c.group, name: c.name, unit: c.unit, frames: c.frames, native: n, msgpackr: m, ratio: m.medianNs / n.medianNs };
  });
  const machine = {
    node: process.version, cpu: os.cpus()[0]?.model ?? 'unknown', cores: os.cpus().length,
    msgpackr: msgpackrVersion(),
    msgpackrNativeStrings: msgpackr.isNativeAccelerationEnabled === true,
    loadavg: os.loadavg().map((x) => Math.round(x * 100) / 100),
    sha256: build,
    buildChanged,
  };
  const seconds = (Date.now() - started) / 1000;
  if (args.json) {
    console.log(JSON.stringify({ machine, quick: args.quick, roundsPerImplementation: args.quick ? totalRounds : 2 * half, seconds, children, checks, results }, null, 2));
    return;
  }
  console.log(`checks: ${checks.counts.serverFrames} server frames, ${checks.counts.runs} runs, ${checks.counts.clientFrames} client frames, ` +
    `${checks.counts.genericValues} generic values: native and msgpackr agree`);
  console.log(`${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, msgpackr ${machine.msgpackr}` +
    `${machine.msgpackrNativeStrings ? ' (with msgpackr-extract)' : ''}; ${args.quick ? totalRounds : 2 * half} rounds per implementation, ` +
    `median ns per op (± largest deviation of a round from it), ${seconds.toFixed(0)} s; ` +
    `other processes used at most ${otherCores.toFixed(2)} cores meanwhile\n`);
  printMarkdown(table(results));
}

if (args.child) await runChild(args.child, Number(args.rounds));
else await main();
