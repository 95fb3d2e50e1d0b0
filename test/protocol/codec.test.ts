import { Unpackr } from 'msgpackr';
import t, { type Test } from 'tap';
import { NpcdError } from '../../src/errors.js';
import { decodeFrame, decodeJson, encodeFrame, encodeMsgpack } from '../../src/protocol/codec.js';
import type { ServerFrame } from '../../src/protocol/types.js';

const utf8 = (s: string) => new TextEncoder().encode(s);
const bytes = (...b: number[]) => Uint8Array.from(b);

/** decodeFrame must throw an NpcdError ERR_PROTOCOL_MALFORMED; returns its message. */
function malformed(t: Test, data: Uint8Array | ArrayBuffer, isBinary: boolean, what: string): string {
  try {
    const v = decodeFrame(data, isBinary);
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

t.test('msgpack round trip', async (t) => {
  for (const frame of FRAMES) {
    const encoded = encodeFrame(frame, 'msgpack');
    t.ok(encoded instanceof Uint8Array, `${frame.t}: binary`);
    t.same(decodeFrame(encoded as Uint8Array, true), frame, `${frame.t}: round trip`);
    // Plain MessagePack: a standard decoder reads it (no msgpackr records).
    t.same(new Unpackr({ useRecords: false, mapsAsObjects: true }).unpack(encoded as Uint8Array), frame);
  }
  t.same(Buffer.from(encodeFrame({ t: 'pong', ts: 1 }, 'msgpack') as Uint8Array).toString('hex'), '82a174a4706f6e67a2747301', 'a plain fixmap');
  const client = { t: 'chat', id: 'm1', character: 'x', text: 'hello' };
  t.same(decodeFrame(encodeMsgpack(client), true), client);
  const enc = encodeMsgpack(client);
  const ab = enc.buffer.slice(enc.byteOffset, enc.byteOffset + enc.byteLength);
  t.same(decodeFrame(ab as ArrayBuffer, true), client, 'an ArrayBuffer works too');
});

t.test('JSON round trip', async (t) => {
  for (const frame of FRAMES) {
    const encoded = encodeFrame(frame, 'json');
    t.type(encoded, 'string', `${frame.t}: text`);
    t.same(decodeFrame(utf8(encoded as string), false), frame, `${frame.t}: round trip`);
  }
  t.equal(encodeFrame({ t: 'pong', ts: 1 }, 'json'), '{"t":"pong","ts":1}');
  t.same(decodeJson(utf8('  {"t":"ping"}\n')), { t: 'ping' }, 'blanks around the document are fine');
  t.same(decodeFrame(utf8('[1,2]'), false), [1, 2], 'any JSON value decodes (validation is separate)');
  t.same(decodeFrame(utf8('"x"'), false), 'x');
  t.same(decodeFrame(utf8('\ufeff{"t":"ping"}'), false), { t: 'ping' }, 'a UTF-8 byte order mark is dropped');
});

t.test('msgpack: trailing bytes', async (t) => {
  const full = encodeMsgpack({ t: 'ping' });
  t.match(malformed(t, Buffer.concat([full, bytes(0xc0)]), true, 'one extra nil'), /^invalid MessagePack: Data read, but end of buffer not reached/);
  malformed(t, Buffer.concat([full, full]), true, 'two frames in one message');
});

t.test('msgpack: every truncation of a frame', async (t) => {
  const full = encodeMsgpack({ t: 'chat', id: 'm1', character: '古风剑客', text: 'hello there', n: 1.5, big: 2 ** 40 });
  for (let i = 1; i < full.length; i++) malformed(t, full.subarray(0, i), true, `first ${i} of ${full.length} bytes`);
});

t.test('msgpack: truncated headers of every sized type', async (t) => {
  // float32/64, uint16/32/64, int16/32/64, str16/32, array16/32, map16/32, bin16/32, ext8/16/32, fixext
  for (const b of [0xca, 0xcb, 0xcd, 0xce, 0xcf, 0xd1, 0xd2, 0xd3, 0xd9, 0xda, 0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xc5, 0xc6, 0xc7, 0xc8, 0xc9, 0xd5, 0xd6, 0xd7, 0xd8]) {
    malformed(t, bytes(b, 0x01), true, `0x${b.toString(16)} 0x01`);
  }
  malformed(t, bytes(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61), true, 'str32 claiming 4 GiB');
  malformed(t, bytes(0xdd, 0xff, 0xff, 0xff, 0xff), true, 'array32 claiming 4G items');
  malformed(t, bytes(0xdf, 0xff, 0xff, 0xff, 0xff), true, 'map32 claiming 4G entries');
});

t.test('msgpack: the reason of a truncated value is not "nesting too deep"', async (t) => {
  // Reading past the end of a sized header surfaces as a RangeError from
  // DataView, which codec.ts reports as "nesting too deep".
  for (const [name, b] of [['uint16', 0xcd], ['float64', 0xcb], ['str16', 0xda], ['map16', 0xde]] as const) {
    const message = malformed(t, bytes(b, 0x01), true, name);
    t.notMatch(message, /nesting too deep/, `${name}: ${message}`);
  }
});

t.test('msgpack: empty, unknown extensions, non-string keys', async (t) => {
  t.equal(malformed(t, new Uint8Array(0), true, 'empty'), 'empty MessagePack message');
  t.equal(malformed(t, new ArrayBuffer(0), true, 'empty ArrayBuffer'), 'empty MessagePack message');
  t.equal(malformed(t, bytes(0xd4, 0x01, 0x00), true, 'unknown extension'), 'invalid MessagePack: Unknown extension 1');
  t.match(malformed(t, bytes(0x81, 0x80, 0x02), true, 'a map as a map key'), /^invalid MessagePack: /);
  t.match(malformed(t, bytes(0x81, 0x91, 0x01, 0x02), true, 'an array as a map key'), /^invalid MessagePack: /);
});

t.test('msgpack: deep nesting', async (t) => {
  t.same(decodeFrame(Buffer.concat([Buffer.alloc(100, 0x91), bytes(0xc0)]), true), JSON.parse('['.repeat(100) + 'null' + ']'.repeat(100)), '100 levels decode');
  const deepArrays = Buffer.concat([Buffer.alloc(100_000, 0x91), bytes(0xc0)]);
  t.equal(malformed(t, deepArrays, true, '100k nested arrays'), 'invalid MessagePack: nesting too deep');
  const deepMaps = Buffer.concat([Buffer.alloc(3 * 50_000).fill(bytes(0x81, 0xa1, 0x61)), bytes(0xc0)]);
  t.equal(malformed(t, deepMaps, true, '50k nested maps'), 'invalid MessagePack: nesting too deep');
  malformed(t, Buffer.alloc(200_000, 0x91), true, 'deep and truncated');
});

t.test('JSON: malformed documents', async (t) => {
  t.match(malformed(t, new Uint8Array(0), false, 'empty'), /^invalid JSON: Unexpected end of JSON input/);
  t.match(malformed(t, utf8('   '), false, 'blank'), /^invalid JSON: /);
  t.match(malformed(t, utf8('{"t":"ping"} x'), false, 'trailing garbage'), /^invalid JSON: Unexpected non-whitespace character after JSON at position 13/);
  t.match(malformed(t, utf8('{"t":"ping"}{"t":"ping"}'), false, 'two documents'), /^invalid JSON: /);
  t.match(malformed(t, utf8('{"t":"pi'), false, 'truncated'), /^invalid JSON: Unterminated string in JSON at position 8/);
  malformed(t, utf8("{'t':'ping'}"), false, 'single quotes');
  malformed(t, utf8('{"t":"ping",}'), false, 'trailing comma');
  malformed(t, utf8('NaN'), false, 'NaN');
  malformed(t, utf8('['.repeat(200_000)), false, 'deep and unterminated');
});

t.test('JSON: invalid UTF-8', async (t) => {
  const cases: [string, Uint8Array][] = [
    ['a lone 0xff', bytes(0x7b, 0x22, 0xff, 0x22, 0x7d)],
    ['a truncated 3-byte sequence', bytes(0x22, 0xe4, 0xbd, 0x22)],
    ['an overlong encoding of "/"', bytes(0x22, 0xc0, 0xaf, 0x22)],
    ['an encoded surrogate', bytes(0x22, 0xed, 0xa0, 0x80, 0x22)],
    ['a stray continuation byte', bytes(0x22, 0x80, 0x22)],
  ];
  for (const [what, data] of cases) t.equal(malformed(t, data, false, what), 'invalid UTF-8 in JSON text');
  t.same(decodeFrame(utf8('{"text":"古风 😀"}'), false), { text: '古风 😀' }, 'valid multi-byte UTF-8 is fine');
});

t.test('JSON: deep nesting decodes without throwing anything else', async (t) => {
  // V8's JSON.parse does not recurse, so a deep document decodes; validation
  // then rejects it as a frame. What matters is that nothing but an
  // NpcdError ever escapes decodeFrame.
  for (const doc of ['['.repeat(100_000) + ']'.repeat(100_000), '{"a":'.repeat(50_000) + '1' + '}'.repeat(50_000)]) {
    let thrown: unknown;
    try {
      decodeFrame(utf8(doc), false);
    } catch (err) {
      thrown = err;
    }
    t.ok(thrown === undefined || (thrown instanceof NpcdError && thrown.code === 'ERR_PROTOCOL_MALFORMED'), `${doc.slice(0, 6)}… decodes or is ERR_PROTOCOL_MALFORMED`);
  }
});

t.test('random bytes never escape as another exception type', async (t) => {
  let seed = 7;
  const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  let bad = 0;
  for (let i = 0; i < 2000; i++) {
    const len = 1 + (next() % 24);
    const data = Uint8Array.from({ length: len }, next);
    for (const isBinary of [true, false]) {
      try {
        decodeFrame(data, isBinary);
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
