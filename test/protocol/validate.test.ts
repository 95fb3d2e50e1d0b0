import t, { type Test } from 'tap';
import { NpcdError } from '../../src/errors.js';
import { codecs } from '../helpers/codecs.js';
import {
  asMap,
  charsOver,
  MAX_CHARACTER_REF_LENGTH,
  MAX_ID_LENGTH,
  optionalBoolean,
  optionalSessionId,
  parseClientFrame,
  requireChatText,
  SESSION_ID_RE,
} from '../../src/protocol/validate.js';

const LIMITS = { maxMessageChars: 20 };

/** The NpcdError parseClientFrame throws for `value` (fails the test when it parses). */
function rejection(value: unknown): NpcdError {
  try {
    const frame = parseClientFrame(value, LIMITS);
    throw new Error(`parsed: ${JSON.stringify(frame)}`);
  } catch (err) {
    if (err instanceof NpcdError) return err;
    throw err;
  }
}

const expectError = (t: Test, value: unknown, code: string, message: string, detail?: Record<string, unknown>) => {
  const e = rejection(value);
  t.equal(e.code, code, `${JSON.stringify(value)?.slice(0, 60)} → ${code}`);
  t.equal(e.message, message);
  if (detail) t.same(e.detail, detail);
};

t.test('constants', async (t) => {
  t.equal(MAX_ID_LENGTH, 128);
  t.equal(MAX_CHARACTER_REF_LENGTH, 200);
  t.ok(SESSION_ID_RE.test('sess_abc-1.2:3'));
  t.notOk(SESSION_ID_RE.test('../etc'));
});

t.test('hello', async (t) => {
  t.same(parseClientFrame({ t: 'hello', v: 1 }, LIMITS), { t: 'hello', v: 1 });
  t.same(parseClientFrame({ t: 'hello', v: 1, session: 'sess_abc', resume: 0, token: 'k' }, LIMITS), { t: 'hello', v: 1, session: 'sess_abc', resume: 0, token: 'k' });
  t.same(parseClientFrame({ t: 'hello', v: 1, session: null, resume: null, token: null }, LIMITS), { t: 'hello', v: 1 }, 'null optional fields are absent');
  t.same(parseClientFrame({ t: 'hello', v: 1, resume: 9007199254740991 }, LIMITS), { t: 'hello', v: 1, resume: 9007199254740991 });
  t.same(parseClientFrame({ t: 'hello', v: 1, session: 'x'.repeat(128) }, LIMITS), { t: 'hello', v: 1, session: 'x'.repeat(128) });

  expectError(t, { t: 'hello' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "v"', { field: 'v' });
  expectError(t, { t: 'hello', v: null }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "v"');
  expectError(t, { t: 'hello', v: 2 }, 'ERR_PROTOCOL_VERSION', 'protocol version 2 is not supported; this server speaks 1');
  expectError(t, { t: 'hello', v: '1' }, 'ERR_PROTOCOL_VERSION', 'protocol version "1" is not supported; this server speaks 1');
  t.match(rejection({ t: 'hello', v: 1n }), { code: 'ERR_PROTOCOL_VERSION', message: 'protocol version 1 is not supported; this server speaks 1' }, 'a 64-bit integer');
  expectError(t, { t: 'hello', v: { a: 1 } }, 'ERR_PROTOCOL_VERSION', 'protocol version a value of type object is not supported; this server speaks 1');
  expectError(t, { t: 'hello', v: 1, session: '../../etc' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "session" may only hold letters, digits and _ . : - (1-128 characters)', { field: 'session' });
  expectError(t, { t: 'hello', v: 1, session: 'x'.repeat(129) }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "session" must be at most 128 characters');
  expectError(t, { t: 'hello', v: 1, session: '' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "session" must not be empty');
  expectError(t, { t: 'hello', v: 1, session: 5 }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "session" must be a string');
  expectError(t, { t: 'hello', v: 1, session: 'a b' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "session" may only hold letters, digits and _ . : - (1-128 characters)');
  for (const resume of [-1, 1.5, '3', Number.NaN, 2 ** 53, true]) {
    expectError(t, { t: 'hello', v: 1, resume }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "resume" must be a non-negative integer', { field: 'resume' });
  }
  expectError(t, { t: 'hello', v: 1, token: '' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "token" must not be empty');
  expectError(t, { t: 'hello', v: 1, token: 'k'.repeat(4097) }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "token" must be at most 4096 characters');
  expectError(t, { t: 'hello', v: 1, token: ['k'] }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "token" must be a string');
});

t.test('chat', async (t) => {
  t.same(parseClientFrame({ t: 'chat', id: 'm1', character: '古风剑客', text: '你好' }, LIMITS), { t: 'chat', id: 'm1', character: '古风剑客', text: '你好' });
  t.same(parseClientFrame({ t: 'chat', id: 'm1', character: 'c', text: '  x  ' }, LIMITS).t, 'chat');
  t.equal((parseClientFrame({ t: 'chat', id: 'm1', character: 'c', text: '  x  ' }, LIMITS) as { text: string }).text, '  x  ', 'text is kept as sent');
  t.same(parseClientFrame({ t: 'chat', id: 'i'.repeat(128), character: 'c'.repeat(200), text: 'x'.repeat(20) }, LIMITS), {
    t: 'chat', id: 'i'.repeat(128), character: 'c'.repeat(200), text: 'x'.repeat(20),
  }, 'every limit exactly');

  expectError(t, { t: 'chat', character: 'c', text: 'x' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "id"', { field: 'id' });
  expectError(t, { t: 'chat', id: 'm', text: 'x' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "character"', { field: 'character' });
  expectError(t, { t: 'chat', id: 'm', character: 'c' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "text"', { field: 'text' });
  expectError(t, { t: 'chat', id: 1, character: 'c', text: 'x' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "id" must be a string');
  expectError(t, { t: 'chat', id: '', character: 'c', text: 'x' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "id" must not be empty');
  expectError(t, { t: 'chat', id: 'i'.repeat(129), character: 'c', text: 'x' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "id" must be at most 128 characters');
  expectError(t, { t: 'chat', id: 'm', character: 'c'.repeat(201), text: 'x' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "character" must be at most 200 characters');
  expectError(t, { t: 'chat', id: 'm', character: {}, text: 'x' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "character" must be a string');
  expectError(t, { t: 'chat', id: 'm', character: 'c', text: 5 }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "text" must be a string', { field: 'text' });
  expectError(t, { t: 'chat', id: 'm', character: 'c', text: '' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "text" must not be blank');
  expectError(t, { t: 'chat', id: 'm', character: 'c', text: ' \n\t ' }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "text" must not be blank');
  expectError(t, { t: 'chat', id: 'm', character: 'c', text: 'x'.repeat(21) }, 'ERR_CHAT_TEXT_TOO_LONG', 'message is 21 characters; the limit is 20', { field: 'text', limit: 20 });
  const tooLong = rejection({ t: 'chat', id: 'm', character: 'c', text: 'x'.repeat(21) });
  t.equal(tooLong.status, 413);
  // Fields are checked in order: id, character, text.
  expectError(t, { t: 'chat' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "id"');
  expectError(t, { t: 'chat', id: 'm', character: '', text: 'x'.repeat(99) }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "character" must not be empty');
});

t.test('cancel', async (t) => {
  t.same(parseClientFrame({ t: 'cancel', id: 'm1' }, LIMITS), { t: 'cancel', id: 'm1' });
  expectError(t, { t: 'cancel' }, 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "id"');
  expectError(t, { t: 'cancel', id: 7 }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "id" must be a string');
});

t.test('ping', async (t) => {
  t.same(parseClientFrame({ t: 'ping' }, LIMITS), { t: 'ping' });
  t.same(parseClientFrame({ t: 'ping', ts: null }, LIMITS), { t: 'ping' });
  t.same(parseClientFrame({ t: 'ping', ts: 12345.5 }, LIMITS), { t: 'ping', ts: 12345.5 });
  t.same(parseClientFrame({ t: 'ping', ts: -1 }, LIMITS), { t: 'ping', ts: -1 });
  for (const ts of ['1', Number.NaN, Number.POSITIVE_INFINITY, {}]) {
    expectError(t, { t: 'ping', ts }, 'ERR_PROTOCOL_INVALID_FIELD', 'field "ts" must be a number', { field: 'ts' });
  }
});

t.test('frame shape and type', async (t) => {
  for (const value of [null, undefined, 5, 'chat', true, [], [{ t: 'ping' }], new Uint8Array([1])]) {
    expectError(t, value, 'ERR_PROTOCOL_INVALID_FRAME', 'frame must be a map/object');
  }
  expectError(t, {}, 'ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
  expectError(t, { t: 1 }, 'ERR_PROTOCOL_INVALID_FRAME', 'frame type "t" must be a string');
  expectError(t, { t: null }, 'ERR_PROTOCOL_INVALID_FRAME', 'frame type "t" must be a string');
  expectError(t, { t: 'welcome' }, 'ERR_PROTOCOL_UNKNOWN_TYPE', 'unknown frame type "welcome"', { type: 'welcome' });
  expectError(t, { t: 'CHAT' }, 'ERR_PROTOCOL_UNKNOWN_TYPE', 'unknown frame type "CHAT"');
  expectError(t, { t: '' }, 'ERR_PROTOCOL_UNKNOWN_TYPE', 'unknown frame type ""');
  expectError(t, { t: 'x'.repeat(100) }, 'ERR_PROTOCOL_UNKNOWN_TYPE', `unknown frame type "${'x'.repeat(40)}"`, { type: 'x'.repeat(40) });
  expectError(t, { t: 'toString' }, 'ERR_PROTOCOL_UNKNOWN_TYPE', 'unknown frame type "toString"');
  expectError(t, { t: '__proto__' }, 'ERR_PROTOCOL_UNKNOWN_TYPE', 'unknown frame type "__proto__"');
  t.throws(() => asMap([1], 'body'), { code: 'ERR_PROTOCOL_INVALID_FRAME', message: 'body must be a map/object' });
});

t.test('only own properties are read', async (t) => {
  // JSON.parse makes "__proto__" an own key; it cannot supply `t`.
  const fromJson = JSON.parse('{"__proto__": {"t": "ping"}}') as unknown;
  expectError(t, fromJson, 'ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
  // An object whose prototype holds the fields.
  expectError(t, Object.create({ t: 'ping' }), 'ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
  expectError(t, Object.assign(Object.create({ id: 'm', character: 'c', text: 'x' }), { t: 'chat' }), 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "id"');
  expectError(t, Object.assign(Object.create({ v: 1 }), { t: 'hello' }), 'ERR_PROTOCOL_MISSING_FIELD', 'missing field "v"');
  // Through the decoder, both encodings.
  for (const codec of codecs()) {
    const json = codec.decodeFrame(new TextEncoder().encode('{"__proto__": {"t": "ping"}}'), false);
    expectError(t, json, 'ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
    const mp = codec.decodeFrame(Uint8Array.from([0x81, 0xa9, ...new TextEncoder().encode('__proto__'), 0x81, 0xa1, 0x74, 0xa4, ...new TextEncoder().encode('ping')]), true);
    expectError(t, mp, 'ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
    t.equal(Object.getPrototypeOf(mp), Object.prototype, `${codec.implementation}: the prototype stays Object.prototype`);
  }
  t.equal(({} as Record<string, unknown>).t, undefined, 'Object.prototype was not polluted');
  // Null-prototype objects work.
  const bare = Object.assign(Object.create(null), { t: 'cancel', id: 'm' }) as unknown;
  t.same(parseClientFrame(bare, LIMITS), { t: 'cancel', id: 'm' });
});

t.test('extra fields are ignored and not copied', async (t) => {
  t.same(parseClientFrame({ t: 'ping', ts: 1, extra: 'x', nested: { deep: [1] } }, LIMITS), { t: 'ping', ts: 1 });
  t.same(parseClientFrame({ t: 'chat', id: 'm', character: 'c', text: 'x', future: true, v: 2 }, LIMITS), { t: 'chat', id: 'm', character: 'c', text: 'x' });
  t.same(parseClientFrame({ t: 'hello', v: 1, compression: 'zstd' }, LIMITS), { t: 'hello', v: 1 });
  t.same(parseClientFrame({ t: 'cancel', id: 'm', text: 5 }, LIMITS), { t: 'cancel', id: 'm' }, 'a field of another frame type is not validated');
  for (const codec of codecs()) {
    const decoded = codec.decodeFrame(codec.encodeMsgpack({ t: 'chat', id: 'm', character: 'c', text: 'x', extra: [1, 2] }), true);
    t.same(parseClientFrame(decoded, LIMITS), { t: 'chat', id: 'm', character: 'c', text: 'x' });
  }
});

t.test('helpers used by HTTP bodies', async (t) => {
  t.equal(optionalBoolean({ stream: true }, 'stream'), true);
  t.equal(optionalBoolean({}, 'stream'), undefined);
  t.equal(optionalBoolean({ stream: null }, 'stream'), undefined);
  t.throws(() => optionalBoolean({ stream: 'yes' }, 'stream'), { code: 'ERR_PROTOCOL_INVALID_FIELD', message: 'field "stream" must be true or false' });
  t.equal(optionalSessionId({ session_id: 'sess_1' }, 'session_id'), 'sess_1');
  t.throws(() => optionalSessionId({ session_id: '../x' }, 'session_id'), { code: 'ERR_PROTOCOL_INVALID_FIELD', detail: { field: 'session_id' } });
  t.equal(requireChatText({ message: 'hi' }, 'message', 2), 'hi');
  t.throws(() => requireChatText({ message: 'hi!' }, 'message', 2), { code: 'ERR_CHAT_TEXT_TOO_LONG', message: 'message is 3 characters; the limit is 2', detail: { field: 'message', limit: 2 } });
  t.throws(() => requireChatText({}, 'message', 2), { code: 'ERR_PROTOCOL_MISSING_FIELD', message: 'missing field "message"' });
});

t.test('message length limits count characters (code points), not UTF-16 code units', async (t) => {
  // 😀 and 𠀀 are two code units each; é and 剑 one.
  t.equal(charsOver('😀😀😀', 3), undefined, 'three emoji are three characters');
  t.equal(charsOver('😀😀😀😀', 3), 4);
  t.equal(charsOver('𠀀剑é😀', 4), undefined);
  t.equal(charsOver('𠀀剑é😀x', 4), 5);
  t.equal(charsOver('abcd', 3), 4);
  t.equal(charsOver('abc', 3), undefined);
  // Lone surrogates count one each, and a high one at the end is not read past.
  t.equal(charsOver('\uD83D\uD83Dab', 3), 4, 'two lone high surrogates, then two letters');
  t.equal(charsOver('\uDE00\uD83D\uDE00\uD83D', 2), 3, 'lone low, a pair, lone high at the end');
  t.equal(requireChatText({ message: '😀'.repeat(20) }, 'message', 20), '😀'.repeat(20), '20 emoji pass a limit of 20 (40 code units)');
  t.throws(() => requireChatText({ message: '😀'.repeat(21) }, 'message', 20), {
    code: 'ERR_CHAT_TEXT_TOO_LONG',
    message: 'message is 21 characters; the limit is 20',
    detail: { field: 'message', limit: 20 },
  });
  expectError(t, { t: 'chat', id: 'm', character: 'c', text: '剑'.repeat(10) + '😀'.repeat(11) }, 'ERR_CHAT_TEXT_TOO_LONG', 'message is 21 characters; the limit is 20', { field: 'text', limit: 20 });
});
