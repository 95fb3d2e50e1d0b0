import { isDeepStrictEqual } from 'node:util';
import { Packr, Unpackr } from 'msgpackr';
import t, { type Test } from 'tap';
import { NpcdError } from '../../src/errors.js';
import { loadNative } from '../../src/native/index.js';
import { decodeJson, type FrameCodec, MsgpackrCodec, NativeCodec } from '../../src/protocol/codec.js';
import type { ServerFrame, StreamFrame } from '../../src/protocol/types.js';
import { codecs } from '../helpers/codecs.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const bytes = (...b: number[]) => Uint8Array.from(b);

/** decodeFrame must throw an NpcdError ERR_PROTOCOL_MALFORMED; returns its message. */
function malformed(t: Test, codec: FrameCodec, data: Uint8Array | ArrayBuffer, isBinary: boolean, what: string): string {
  try {
    const v = codec.decodeFrame(data, isBinary);
    t.fail(`${what}: decoded to ${typeof v}`);
    return '';
  } catch (err) {
    t.ok(err instanceof NpcdError, `${what}: an NpcdError (got ${(err as Error)?.name})`);
    t.equal((err as NpcdError).code, 'ERR_PROTOCOL_MALFORMED', `${what}: ERR_PROTOCOL_MALFORMED`);
    t.equal((err as NpcdError).status, 400);
    return (err as Error).message;
  }
}

const FRAMES: ServerFrame[] = [
  { t: 'welcome', session: 'sess_abc', seq: 0, heartbeat_ms: 15000, resumed: false },
  { t: 'start', seq: 1, id: 'm1', character: 'gufeng-jianke', state: 'calm' },
  { t: 'token', seq: 2, id: 'm1', text: '古风剑客你好 😀' },
  { t: 'done', seq: 3, id: 'm1', text: 'hello', state: 'wary', usage: { prompt_tokens: 12, completion_tokens: 3 }, finish: 'stop' },
  { t: 'error', seq: 4, id: 'm1', code: 'ERR_PROVIDER_FAILED', message: 'boom' },
  { t: 'error', code: 'ERR_PROTOCOL_MALFORMED', message: 'bad' },
  { t: 'pong', ts: 1732600000000.5 },
];

for (const codec of codecs()) {
  const impl = codec.implementation;
  const native = impl === 'native';
  t.test(`${impl}: msgpack round trip`, async (t) => {
    for (const frame of FRAMES) {
      const encoded = codec.encodeFrame(frame, 'msgpack');
      t.ok(encoded instanceof Uint8Array, `${frame.t}: binary`);
      t.same(codec.decodeFrame(encoded as Uint8Array, true), frame, `${frame.t}: round trip`);
      // Plain MessagePack: a standard decoder reads it (no msgpackr records).
      t.same(new Unpackr({ useRecords: false, mapsAsObjects: true }).unpack(encoded as Uint8Array), frame);
    }
    t.same(Buffer.from(codec.encodeFrame({ t: 'pong', ts: 1 }, 'msgpack') as Uint8Array).toString('hex'), '82a174a4706f6e67a2747301', 'a plain fixmap');
    const client = { t: 'chat', id: 'm1', character: 'x', text: 'hello' };
    t.same(codec.decodeFrame(codec.encodeMsgpack(client), true), client);
    const enc = codec.encodeMsgpack(client);
    const ab = enc.buffer.slice(enc.byteOffset, enc.byteOffset + enc.byteLength);
    t.same(codec.decodeFrame(ab as ArrayBuffer, true), client, 'an ArrayBuffer works too');
  });

  t.test(`${impl}: JSON round trip`, async (t) => {
    for (const frame of FRAMES) {
      const encoded = codec.encodeFrame(frame, 'json');
      t.type(encoded, 'string', `${frame.t}: text`);
      t.same(codec.decodeFrame(utf8(encoded as string), false), frame, `${frame.t}: round trip`);
    }
    t.equal(codec.encodeFrame({ t: 'pong', ts: 1 }, 'json'), '{"t":"pong","ts":1}');
    t.same(decodeJson(utf8('  {"t":"ping"}\n')), { t: 'ping' }, 'blanks around the document are fine');
    t.same(codec.decodeFrame(utf8('[1,2]'), false), [1, 2], 'any JSON value decodes (validation is separate)');
    t.same(codec.decodeFrame(utf8('"x"'), false), 'x');
    t.same(codec.decodeFrame(utf8('\ufeff{"t":"ping"}'), false), { t: 'ping' }, 'a UTF-8 byte order mark is dropped');
  });

  t.test(`${impl}: msgpack: trailing bytes`, async (t) => {
    const full = codec.encodeMsgpack({ t: 'ping' });
    const extra = malformed(t, codec, Buffer.concat([full, bytes(0xc0)]), true, 'one extra nil');
    if (native) t.equal(extra, `invalid MessagePack: 1 trailing byte after the value, at offset ${full.length}`);
    else t.match(extra, /^invalid MessagePack: Data read, but end of buffer not reached/);
    malformed(t, codec, Buffer.concat([full, full]), true, 'two frames in one message');
  });

  t.test(`${impl}: msgpack: every truncation of a frame`, async (t) => {
    const full = codec.encodeMsgpack({ t: 'chat', id: 'm1', character: '古风剑客', text: 'hello there', n: 1.5, big: 2 ** 40 });
    for (let i = 1; i < full.length; i++) malformed(t, codec, full.subarray(0, i), true, `first ${i} of ${full.length} bytes`);
  });

  t.test(`${impl}: msgpack: truncated headers of every sized type`, async (t) => {
    // float32/64, uint16/32/64, int16/32/64, str16/32, array16/32, map16/32, bin16/32, ext8/16/32, fixext
    for (const b of [0xca, 0xcb, 0xcd, 0xce, 0xcf, 0xd1, 0xd2, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd5, 0xd6, 0xd7, 0xd8]) {
      malformed(t, codec, bytes(b, 0x01), true, `0x${b.toString(16)} 0x01`);
    }
    malformed(t, codec, bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61), true, 'str32 claiming 4 GiB');
    malformed(t, codec, bytes(0xdd, 0xff, 0xff, 0xff, 0xff), true, 'array32 claiming 4G items');
    malformed(t, codec, bytes(0xdf, 0xff, 0xff, 0xff, 0xff), true, 'map32 claiming 4G entries');
  });

  t.test(`${impl}: msgpack: the reason of a truncated value is not "nesting too deep"`, async (t) => {
    // Reading past the end of a sized header surfaces as a RangeError from
    // DataView, which codec.ts reports as "nesting too deep".
    for (const [name, b] of [['uint16', 0xcd], ['float64', 0xcb], ['str16', 0xda], ['map16', 0xde]] as const) {
      const message = malformed(t, codec, bytes(b, 0x01), true, name);
      t.notMatch(message, /nesting too deep/, `${name}: ${message}`);
    }
  });

  t.test(`${impl}: msgpack: empty, unknown extensions, non-string keys`, async (t) => {
    t.equal(malformed(t, codec, new Uint8Array(0), true, 'empty'), 'empty MessagePack message');
    t.equal(malformed(t, codec, new ArrayBuffer(0), true, 'empty ArrayBuffer'), 'empty MessagePack message');
    if (native) {
      // The native decoder covers every extension type: unknown ones become { type, data }.
      t.same(codec.decodeFrame(bytes(0xd4, 0x01, 0x07), true), { type: 1, data: Buffer.from([7]) }, 'an unknown extension');
    } else {
      t.equal(malformed(t, codec, bytes(0xd4, 0x01, 0x00), true, 'unknown extension'), 'invalid MessagePack: Unknown extension 1');
    }
    t.match(malformed(t, codec, bytes(0x81, 0x80, 0x02), true, 'a map as a map key'), /^invalid MessagePack: /);
    t.match(malformed(t, codec, bytes(0x81, 0x91, 0x01, 0x02), true, 'an array as a map key'), /^invalid MessagePack: /);
  });

  t.test(`${impl}: msgpack: deep nesting`, async (t) => {
    t.same(codec.decodeFrame(Buffer.concat([Buffer.alloc(100, 0x91), bytes(0xc0)]), true), JSON.parse('['.repeat(100) + 'null' + ']'.repeat(100)), '100 levels decode');
    const deepArrays = Buffer.concat([Buffer.alloc(100_000, 0x91), bytes(0xc0)]);
    const deep = native ? 'invalid MessagePack: nesting deeper than 128 at offset 128' : 'invalid MessagePack: nesting too deep';
    t.equal(malformed(t, codec, deepArrays, true, '100k nested arrays'), deep);
    const deepMaps = Buffer.concat([Buffer.alloc(3 * 50_000).fill(bytes(0x81, 0xa1, 0x61)), bytes(0xc0)]);
    t.equal(malformed(t, codec, deepMaps, true, '50k nested maps'), native ? 'invalid MessagePack: nesting deeper than 128 at offset 384' : deep);
    malformed(t, codec, Buffer.alloc(200_000, 0x91), true, 'deep and truncated');
  });

  t.test(`${impl}: JSON: malformed documents`, async (t) => {
    t.match(malformed(t, codec, new Uint8Array(0), false, 'empty'), /^invalid JSON: Unexpected end of JSON input/);
    t.match(malformed(t, codec, utf8('   '), false, 'blank'), /^invalid JSON: /);
    t.match(malformed(t, codec, utf8('{"t":"ping"} x'), false, 'trailing garbage'), /^invalid JSON: Unexpected non-whitespace character after JSON at position 13/);
    t.match(malformed(t, codec, utf8('{"t":"ping"}{"t":"ping"}'), false, 'two documents'), /^invalid JSON: /);
    t.match(malformed(t, codec, utf8('{"t":"pi'), false, 'truncated'), /^invalid JSON: Unterminated string in JSON at position 8/);
    malformed(t, codec, utf8("{'t':'ping'}"), false, 'single quotes');
    malformed(t, codec, utf8('{"t":"ping",}'), false, 'trailing comma');
    malformed(t, codec, utf8('NaN'), false, 'NaN');
    malformed(t, codec, utf8('['.repeat(200_000)), false, 'deep and unterminated');
  });

  t.test(`${impl}: JSON: invalid UTF-8`, async (t) => {
    const cases: [string, Uint8Array][] = [
      ['a lone 0xff', bytes(0x7b, 0x22, 0xff, 0x22, 0x7d)],
      ['a truncated 3-byte sequence', bytes(0x22, 0xe4, 0xbd, 0x22)],
      ['an overlong encoding of "/"', bytes(0x22, 0xc0, 0xaf, 0x22)],
      ['an encoded surrogate', bytes(0x22, 0xed, 0xa0, 0x80, 0x22)],
      ['a stray continuation byte', bytes(0x22, 0x80, 0x22)],
    ];
    for (const [what, data] of cases) t.equal(malformed(t, codec, data, false, what), 'invalid UTF-8 in JSON text');
    t.same(codec.decodeFrame(utf8('{"text":"古风 😀"}'), false), { text: '古风 😀' }, 'valid multi-byte UTF-8 is fine');
  });

  t.test(`${impl}: JSON: deep nesting decodes without throwing anything else`, async (t) => {
    // V8's JSON.parse does not recurse, so a deep document decodes; validation
    // then rejects it as a frame. What matters is that nothing but an
    // NpcdError ever escapes decodeFrame.
    for (const doc of ['['.repeat(100_000) + ']'.repeat(100_000), '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000)]) {
      let thrown: unknown;
      try {
        codec.decodeFrame(utf8(doc), false);
      } catch (err) {
        thrown = err;
      }
      t.ok(thrown === undefined || (thrown instanceof NpcdError && thrown.code === 'ERR_PROTOCOL_MALFORMED'), `${doc.slice(0, 6)}… decodes or is ERR_PROTOCOL_MALFORMED`);
    }
  });

  t.test(`${impl}: random bytes never escape as another exception type`, async (t) => {
    let seed = 7;
    const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
    let bad = 0;
    for (let i = 0; i < 2000; i++) {
      const len = 1 + (next() % 24);
      const data = Uint8Array.from({ length: len }, next);
      for (const isBinary of [true, false]) {
        try {
          codec.decodeFrame(data, isBinary);
        } catch (err) {
          if (!(err instanceof NpcdError) || err.code !== 'ERR_PROTOCOL_MALFORMED') {
            bad++;
            if (bad < 5) t.fail(`${Buffer.from(data).toString('hex')} (${isBinary ? 'binary' : 'text'}) threw ${String(err)}`);
          }
        }
      }
    }
    t.equal(bad, 0, '4000 random messages');
  });

  t.test(`${impl}: encodeRun encodes runs of stream frames back to back`, async (t) => {
    const frames: StreamFrame[] = [{ t: 'start', seq: 1, id: 'm1', character: 'gufeng-jianke', state: 'calm' }];
    for (let i = 0; i < 600; i++) frames.push({ t: 'token', seq: i + 2, id: 'm1', text: i % 3 === 0 ? ' 古风剑客 😀' : ` w${i}` });
    frames.push({ t: 'error', seq: 602, code: 'ERR_X', message: 'no id' }, { t: 'error', seq: 603, id: 'm1', code: 'ERR_Y', message: 'with id' });
    frames.push({ t: 'done', seq: 604, id: 'm1', text: 'x'.repeat(70_000), state: 'wary', usage: { prompt_tokens: 7, completion_tokens: 600 }, finish: 'length' });
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
    const seen: unknown[] = [];
    let runs = 0;
    for (let i = 0; i < frames.length; ) {
      const n = codec.encodeRun(frames, i);
      t.ok(n >= 1, 'at least one frame per run');
      let start = 0;
      for (let j = 0; j < n; j++) {
        seen.push(unpackr.unpack(codec.bytes.subarray(start, codec.ends[j])));
        start = codec.ends[j]!;
      }
      i += n;
      runs++;
    }
    t.same(seen, frames, 'every frame, in order, decoded by msgpackr');
    t.ok(runs >= 4, `${runs} runs: runs stop at 256 frames, and the 70 KB frame gets a buffer of its own`);
    t.equal(codec.encodeRun(frames, frames.length), 0, 'nothing left');
  });

  t.test(`${impl}: control frames and their optional fields`, async (t) => {
    const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
    const welcome = { t: 'welcome', session: 's', seq: 3, heartbeat_ms: 15000, resumed: true, batch: true } as const;
    t.same(unpackr.unpack(codec.encodeFrame(welcome, 'msgpack') as Uint8Array), welcome);
    const noBatch = { t: 'welcome', session: 's', seq: 3, heartbeat_ms: 15000, resumed: false } as const;
    t.same(unpackr.unpack(codec.encodeFrame(noBatch, 'msgpack') as Uint8Array), noBatch, 'batch left out when absent');
    const a = codec.encodeFrame({ t: 'pong', ts: 1 }, 'msgpack') as Uint8Array;
    const b = codec.encodeFrame({ t: 'pong', ts: 2 }, 'msgpack') as Uint8Array;
    t.not(Buffer.from(a).toString('hex'), Buffer.from(b).toString('hex'), 'each call returns its own bytes');
  });
}

t.test('native: decode errors name the offset and the reason', async (t) => {
  const [, native] = codecs();
  const cases: [string, Uint8Array, RegExp][] = [
    ['invalid marker', bytes(0x92, 0x01, 0xc1), /^invalid MessagePack: invalid marker 0xc1 at offset 2$/],
    ['truncated str', bytes(0x81, 0xa1, 0x74, 0xa4, 0x70), /^invalid MessagePack: truncated input at offset 3: /],
    ['invalid UTF-8', bytes(0x81, 0xa1, 0x74, 0xa2, 0xc3, 0x28), /^invalid MessagePack: invalid UTF-8 in string at offset 3/],
    ['bad timestamp', bytes(0xd5, 0xff, 0x00, 0x00), /^invalid MessagePack: .*timestamp.*offset 0/],
  ];
  for (const [what, data, re] of cases) t.match(malformed(t, native!, data, true, what), re, what);
});

t.test('native: decode limits are enforced before anything is allocated', async (t) => {
  const limits = { maxInputBytes: 64, maxDepth: 4, maxStrBytes: 8, maxContainerLen: 3, maxTotalItems: 10 };
  const [, native] = codecs(limits);
  const pack = (v: unknown) => new MsgpackrCodec().encodeMsgpack(v);
  t.match(malformed(t, native!, pack('x'.repeat(9)), true, 'long string'), /string of 9 bytes at offset 0 exceeds the limit of 8/);
  t.match(malformed(t, native!, pack([1, 2, 3, 4]), true, 'long array'), /array|elements|container/i);
  t.match(malformed(t, native!, pack([[[[[1]]]]]), true, 'deep'), /nesting deeper than 4/);
  t.match(malformed(t, native!, pack([[1, 2, 3], [1, 2, 3], [1, 2, 3]]), true, 'many items'), /more than 10 values in the input/);
  t.match(malformed(t, native!, pack('y'.repeat(60) + 'zzzzzz'), true, 'large input'), /input/);
  t.same(native!.decodeFrame(pack({ t: 'ping', ts: 1 }), true), { t: 'ping', ts: 1 }, 'within the limits');
});

t.test('native and msgpackr agree byte for byte on random values', async (t) => {
  const native = loadNative();
  const packr = new Packr({ useRecords: false, variableMapSize: true });
  const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
  let seed = 12345;
  const rand = () => ((seed = (Math.imul(seed ^ (seed >>> 15), 2246822519) + 374761393) >>> 0) / 2 ** 32);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const numbers = [0, -0, 1, 127, 128, 255, 256, 65535, 65536, 2 ** 32 - 1, 2 ** 32, 2 ** 53, -1, -32, -33, -128, -129, -32768, -32769, -(2 ** 31), -(2 ** 31) - 1, 0.5, -1.25, 1e300, Number.MAX_VALUE, Number.MIN_VALUE, Infinity, -Infinity];
  const strings = ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'y'.repeat(255), 'y'.repeat(256), 'z'.repeat(65536), '古风剑客', '😀 emoji', 'tab\tnew\nline', 'é'.repeat(20)];
  const value = (depth: number): unknown => {
    const r = rand();
    if (depth > 3 || r < 0.45) {
      switch (Math.floor(rand() * 9)) {
        case 0: return null;
        case 1: return rand() < 0.5;
        case 2: return pick(numbers);
        case 3: return Math.floor((rand() - 0.5) * 2 ** (1 + Math.floor(rand() * 40)));
        case 4: return (rand() - 0.5) * 1e6;
        case 5: return pick(strings);
        case 6: return Buffer.from(Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256)));
        case 7: return pick([0n, 1n, -1n, 2n ** 63n - 1n, -(2n ** 63n), 2n ** 64n - 1n]);
        default: return new Date(Math.floor((rand() - 0.3) * 2 ** 44));
      }
    }
    if (r < 0.7) return Array.from({ length: Math.floor(rand() * (rand() < 0.1 ? 70 : 6)) }, () => value(depth + 1));
    const obj: Record<string, unknown> = {};
    const n = Math.floor(rand() * (rand() < 0.1 ? 40 : 6));
    for (let i = 0; i < n; i++) obj[pick(['t', 'seq', 'id', 'text', 'k' + i, '键' + i, String(i)])] = value(depth + 1);
    return obj;
  };
  const tapeCodec = new NativeCodec(native, { maxInputBytes: 1 << 24, maxStrBytes: 1 << 24, maxDepth: 64, maxContainerLen: 1 << 16, maxTotalItems: 1 << 20 });
  let mismatches = 0;
  for (let i = 0; i < 3000; i++) {
    const v = value(0);
    const ours = native.encode(v);
    const theirs = packr.pack(v);
    if (!Buffer.from(ours).equals(theirs)) {
      if (mismatches++ < 3) t.fail(`encode differs for ${JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? `${x}n` : x))?.slice(0, 200)}`);
      continue;
    }
    // And decoding: native reads msgpackr's bytes as msgpackr does.
    const a = native.decode(theirs, { maxInputBytes: 1 << 24, maxStrBytes: 1 << 24 });
    const b = unpackr.unpack(theirs);
    // The server's path: the decode tape, built in JS (falling back to
    // decode for BigInt, bin and dates).
    const c = tapeCodec.decodeFrame(theirs, true);
    if (!isDeepStrictEqual(a, b) || !isDeepStrictEqual(c, b)) {
      if (mismatches++ < 3) t.fail(`decode differs for ${theirs.toString('hex').slice(0, 200)}`);
    }
  }
  t.equal(mismatches, 0, '3000 random values: same bytes, same decoded values');
});

t.test('native encode refuses what MessagePack cannot hold', async (t) => {
  const native = loadNative();
  t.throws(() => native.encode(Symbol('x')), { code: 'ERR_NATIVE_MSGPACK_ENCODE' });
  t.throws(() => native.encode(2n ** 64n), { code: 'ERR_NATIVE_MSGPACK_ENCODE' });
  const cycle: Record<string, unknown> = {};
  cycle.self = cycle;
  t.throws(() => native.encode(cycle), { code: 'ERR_NATIVE_MSGPACK_ENCODE', message: /deeper than 512/ });
  t.throws(() => native.decode('x' as unknown as Uint8Array), { code: 'ERR_NATIVE_INVALID_ARG' });
  t.throws(() => native.encodeFrameTape({} as never, 1, ''), { code: 'ERR_NATIVE_INVALID_ARG' });
  const decodeTape = native.createDecodeTape(new Uint8Array(16), new Float64Array(16));
  t.throws(() => native.encodeFrameTape(decodeTape as never, 1, ''), { code: 'ERR_NATIVE_INVALID_ARG', message: /another kind/ }, 'a tape of the other kind is recognised');
  t.throws(() => native.createFrameTape(new Uint8Array(4), new Float64Array(4), new Uint32Array(4), new Uint8Array(4), new Float64Array(4) as never), { code: 'ERR_NATIVE_INVALID_ARG', message: /ends must be a Uint32Array/ });
});
