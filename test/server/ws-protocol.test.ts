import t from 'tap';
import { InProcessMemoryStore } from '../../src/memory/in-process.js';
import type { Turn } from '../../src/session/types.js';
import { testServer } from '../helpers/server.js';
import { packr, TestClient } from '../helpers/ws-client.js';

const CHAR = '古风剑客';

for (const format of ['msgpack', 'json'] as const) {
  t.test(`protocol v1 frame by frame (${format})`, async (t) => {
    const { ws } = await testServer(t, { model: 'mock', mockTokens: 5 });
    const c = await TestClient.connect(ws, format);
    t.teardown(() => c.close());

    const welcome = await c.hello();
    t.equal(welcome.t, 'welcome');
    t.match(welcome.session, /^sess_[A-Za-z0-9_-]+$/);
    t.equal(welcome.seq, 0);
    t.equal(welcome.heartbeat_ms, 15000);
    t.equal(welcome.resumed, false);
    t.ok(c.binary.every((b) => b === (format === 'msgpack')), 'answers in the client\'s encoding');

    const done = await c.chat('m1', CHAR, 'hello there');
    const frames = c.framesFor('m1');
    t.same(frames.map((f) => f.t), ['start', 'token', 'token', 'token', 'token', 'token', 'done']);
    t.same(frames.map((f) => f.seq), [1, 2, 3, 4, 5, 6, 7], 'seq counts the session stream');
    t.match(frames[0], { t: 'start', id: 'm1', character: 'gufeng-jianke', state: 'calm' });
    const text = frames.filter((f) => f.t === 'token').map((f) => f.text).join('');
    t.equal(done.text, text, 'done carries the whole reply');
    t.equal(done.finish, 'stop');
    t.equal(done.state, 'calm');
    t.match(done.usage, { prompt_tokens: Number, completion_tokens: 5 });

    // A second turn continues the seq.
    await c.chat('m2', CHAR, 'again');
    t.equal(c.framesFor('m2')[0]!.seq, 8);

    const from = c.frames.length;
    c.send({ t: 'ping', ts: 12345 });
    const pong = await c.waitFor((f) => f.t === 'pong', 2000, from);
    t.equal(pong.ts, 12345);
    c.send({ t: 'ping' });
    const pong2 = await c.waitFor((f) => f.t === 'pong' && f.ts !== 12345, 2000, from);
    t.type(pong2.ts, 'number', 'pong without ts carries the server time');
  });
}

t.test('bad input gets its ERR_* code and the connection keeps serving', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 3, maxFrameBytes: 1024, maxMessageChars: 50 });
  const c = await TestClient.connect(ws);
  const other = await TestClient.connect(ws);
  t.teardown(() => Promise.all([c.close(), other.close()]));
  await other.hello();

  const expectError = async (send: () => void, code: string, id?: string) => {
    const from = c.frames.length;
    send();
    const f = await c.waitFor((f) => f.t === 'error', 2000, from);
    t.equal(f.code, code, `${code}: ${f.message}`);
    t.equal(f.seq, undefined, 'connection-level errors are not stream frames');
    if (id) t.equal(f.id, id);
    return f;
  };

  await expectError(() => c.send({ t: 'chat', id: 'x', character: CHAR, text: 'hi' }), 'ERR_PROTOCOL_HELLO_REQUIRED', 'x');
  // 0xc1 is never used in MessagePack (the native decoder refuses it).
  await expectError(() => c.sendRaw(Buffer.from([0xc1])), 'ERR_PROTOCOL_MALFORMED');
  await expectError(() => c.sendRaw(packr.pack([1, 2])), 'ERR_PROTOCOL_INVALID_FRAME');
  await expectError(() => c.sendRaw(Buffer.from([0x82, 0xa1, 0x74])), 'ERR_PROTOCOL_MALFORMED');
  await expectError(() => c.sendRaw(Buffer.concat([packr.pack({ t: 'ping' }), Buffer.from([0x01])])), 'ERR_PROTOCOL_MALFORMED');
  await expectError(() => c.sendRaw(Buffer.alloc(0)), 'ERR_PROTOCOL_MALFORMED');
  await expectError(() => c.sendRaw('{"t": "hello", '), 'ERR_PROTOCOL_MALFORMED');
  await expectError(() => c.sendRaw(packr.pack([1, 2, 3])), 'ERR_PROTOCOL_INVALID_FRAME');
  await expectError(() => c.sendRaw(packr.pack({ type: 'hello' })), 'ERR_PROTOCOL_INVALID_FRAME');
  await expectError(() => c.send({ t: 'subscribe' }), 'ERR_PROTOCOL_UNKNOWN_TYPE');
  await expectError(() => c.send({ t: 'hello' }), 'ERR_PROTOCOL_MISSING_FIELD');
  await expectError(() => c.send({ t: 'hello', v: 2 }), 'ERR_PROTOCOL_VERSION');
  // A 64-bit integer (int64 and uint64 forms), and a long string, named in the message without failing.
  const v64 = await expectError(() => c.sendRaw(Buffer.from('82a174a568656c6c6fa176d30000000000000001', 'hex')), 'ERR_PROTOCOL_VERSION');
  t.match(v64.message, /^protocol version 1 is not supported/);
  await expectError(() => c.sendRaw(Buffer.from('82a174a568656c6c6fa176cf0000000000000002', 'hex')), 'ERR_PROTOCOL_VERSION');
  const long = await expectError(() => c.send({ t: 'hello', v: 'v'.repeat(900) }), 'ERR_PROTOCOL_VERSION');
  t.ok((long.message as string).length < 200, 'a long value is cut in the message');
  await expectError(() => c.send({ t: 'hello', v: 1, session: 'bad id with spaces' }), 'ERR_PROTOCOL_INVALID_FIELD');
  await expectError(() => c.send({ t: 'hello', v: 1, resume: -1 }), 'ERR_PROTOCOL_INVALID_FIELD');
  await expectError(() => c.sendRaw(Buffer.alloc(2000, 0x90)), 'ERR_PROTOCOL_FRAME_TOO_LARGE');
  // Deep nesting within the size limit cannot crash the decoder.
  await expectError(() => c.sendRaw(Buffer.alloc(1000, 0x91)), 'ERR_PROTOCOL_MALFORMED');

  await c.hello();
  await expectError(() => c.send({ t: 'hello', v: 1 }), 'ERR_PROTOCOL_DUPLICATE_HELLO');
  await expectError(() => c.send({ t: 'chat', character: CHAR, text: 'hi' }), 'ERR_PROTOCOL_MISSING_FIELD');
  await expectError(() => c.send({ t: 'chat', id: 'a', character: CHAR, text: 42 }), 'ERR_PROTOCOL_INVALID_FIELD');
  await expectError(() => c.send({ t: 'chat', id: 'a', character: CHAR, text: '   ' }), 'ERR_PROTOCOL_INVALID_FIELD');
  await expectError(() => c.send({ t: 'cancel', id: 'nothing' }), 'ERR_CHAT_NOT_ACTIVE', 'nothing');

  // Invalid frames that name an id get it back, to correlate the error.
  const tooLong = await c.chat('long', CHAR, 'x'.repeat(51));
  t.equal(tooLong.code, 'ERR_CHAT_TEXT_TOO_LONG');
  t.equal(tooLong.seq, undefined);
  // Errors about an accepted chat belong to the session stream: they carry a seq.
  const unknown = await c.chat('u1', 'Nobody At All', 'hi');
  t.equal(unknown.code, 'ERR_CHARACTER_NOT_FOUND');
  t.type(unknown.seq, 'number');

  // Still serving this connection and the other one.
  const done = await c.chat('ok1', CHAR, 'hello');
  t.equal(done.t, 'done');
  const done2 = await other.chat('ok2', CHAR, 'hello');
  t.equal(done2.t, 'done');
});

t.test('a frame far beyond the limit closes only that connection', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 2, maxFrameBytes: 1024 });
  const c = await TestClient.connect(ws);
  const other = await TestClient.connect(ws);
  t.teardown(() => other.close());
  await other.hello();
  c.sendRaw(Buffer.alloc(8192));
  await c.closed();
  t.not(c.closeCode, 1000, 'connection closed abnormally');
  const done = await other.chat('x', CHAR, 'still there?');
  t.equal(done.t, 'done');
});

t.test('session busy, duplicate ids and cancel', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 50, mockTokenDelayMs: 20 });
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  await c.hello();

  c.send({ t: 'chat', id: 'long', character: CHAR, text: 'tell me everything' });
  await c.waitFor((f) => f.t === 'token' && f.id === 'long');
  const busy = await c.chat('second', CHAR, 'and this?');
  t.equal(busy.code, 'ERR_SESSION_BUSY');
  t.type(busy.seq, 'number');

  const from = c.frames.length;
  c.send({ t: 'cancel', id: 'long' });
  const done = await c.waitFor((f) => f.t === 'done' && f.id === 'long', 3000, from);
  t.equal(done.finish, 'cancelled');
  const tokens = c.framesFor('long').filter((f) => f.t === 'token');
  t.ok(tokens.length < 50, `stopped early (${tokens.length} tokens)`);
  t.equal(done.text, tokens.map((f) => f.text).join(''), 'done has the partial reply');

  const dup = await c.chat('long', CHAR, 'same id again');
  t.equal(dup.code, 'ERR_CHAT_DUPLICATE_ID');
  const next = await c.chat('third', CHAR, 'fine', 5000);
  t.equal(next.t, 'done');
});

t.test('pipelined chat right after hello is processed after welcome', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 2 });
  const c = await TestClient.connect(ws, 'json');
  t.teardown(() => c.close());
  c.send({ t: 'hello', v: 1 });
  c.send({ t: 'chat', id: 'p1', character: CHAR, text: 'quick' });
  const done = await c.waitFor((f) => f.t === 'done' && f.id === 'p1');
  t.equal(done.t, 'done');
  t.equal(c.frames[0]!.t, 'welcome');
});

t.test('a second hello for the same session takes it over', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 2 });
  const a = await TestClient.connect(ws);
  const w = await a.hello();
  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  const w2 = await b.hello({ session: w.session });
  t.equal(w2.session, w.session);
  await a.closed();
  t.equal(a.closeCode, 4409);
  t.equal(a.frames.at(-1)!.code, 'ERR_SESSION_TAKEN_OVER');
  const done = await b.chat('m', CHAR, 'mine now');
  t.equal(done.t, 'done');
});

t.test('client-chosen session ids are kept', async (t) => {
  const { ws, http } = await testServer(t, { model: 'mock', mockTokens: 2 });
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  const w = await c.hello({ session: 'player-42:npc' });
  t.equal(w.session, 'player-42:npc');
  await c.chat('m', CHAR, 'hi');
  const res = await fetch(`${http}/v1/sessions/player-42:npc`);
  t.equal(res.status, 200);
  t.match(await res.json(), { session_id: 'player-42:npc', seq: 4, connected: true, user_turns: 1 });
});

t.test('a failing session store costs the turn an error frame, not the server', async (t) => {
  class FlakyStore extends InProcessMemoryStore {
    fail = true;
    override async appendTurns(id: string, turns: readonly Turn[], maxTurns: number, ttlS: number): Promise<void> {
      if (this.fail) throw new Error('disk on fire');
      return super.appendTurns(id, turns, maxTurns, ttlS);
    }
  }
  const store = new FlakyStore({ budgetBytes: 64 * 1024 * 1024 });
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 2 }, { store });
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  await c.hello();
  const err = await c.chat('f1', CHAR, 'hello');
  t.equal(err.t, 'error');
  t.equal(err.code, 'ERR_INTERNAL');
  t.type(err.seq, 'number', 'part of the stream');
  store.fail = false;
  const done = await c.chat('f2', CHAR, 'again');
  t.equal(done.t, 'done', 'the session is usable afterwards');
});
