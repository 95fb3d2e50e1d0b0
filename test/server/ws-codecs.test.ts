/**
 * The WebSocket protocol over both MessagePack implementations (native and
 * msgpackr), and frame batching for clients that ask for it in `hello`.
 */
import t from 'tap';
import { testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const CHAR = 'gufeng-jianke';

for (const native of [true, false]) {
  const impl = native ? 'native' : 'msgpackr';

  t.test(`${impl}: the server uses the chosen implementation`, async (t) => {
    const { server } = await testServer(t, { native });
    t.equal(server.codec.implementation, impl);
  });

  t.test(`${impl}: a streamed reply, one frame per message`, async (t) => {
    const { ws } = await testServer(t, { native, model: 'mock', mockTokens: 40 });
    const c = await TestClient.connect(ws);
    t.teardown(() => c.close());
    const welcome = await c.hello();
    t.equal(welcome.batch, undefined, 'no batching unless asked');
    const done = await c.chat('m1', CHAR, 'hello');
    const stream = c.framesFor('m1');
    t.same(stream.map((f) => f.t), ['start', ...Array(40).fill('token'), 'done']);
    t.same(stream.map((f) => f.seq), stream.map((_, i) => i + 1), 'seqs 1..42');
    t.equal(stream.filter((f) => f.t === 'token').map((f) => f.text).join(''), done.text, 'tokens add up to the reply');
    t.same(done.usage, { prompt_tokens: done.usage.prompt_tokens, completion_tokens: 40 });
    t.ok(c.framesPerMessage.every((n) => n === 1), 'every message holds one frame');
  });

  t.test(`${impl}: a client that asks for batches gets runs of frames per message`, async (t) => {
    const { ws } = await testServer(t, { native, model: 'mock', mockTokens: 100 });
    const c = await TestClient.connect(ws);
    t.teardown(() => c.close());
    const welcome = await c.hello({ batch: true });
    t.equal(welcome.batch, true, 'welcome confirms batching');
    const done = await c.chat('m1', CHAR, 'hello');
    const stream = c.framesFor('m1');
    t.equal(stream.length, 102);
    t.same(stream.map((f) => f.seq), stream.map((_, i) => i + 1), 'every frame once, in order');
    t.equal(stream.filter((f) => f.t === 'token').map((f) => f.text).join(''), done.text);
    t.ok(Math.max(...c.framesPerMessage) > 1, `some messages carry several frames (${c.framesPerMessage.join(',')})`);
  });

  t.test(`${impl}: resume replays missed frames in batches`, async (t) => {
    const { ws } = await testServer(t, { native, model: 'mock', mockTokens: 60 });
    const a = await TestClient.connect(ws);
    const w = await a.hello();
    await a.chat('m1', CHAR, 'hello');
    await a.close();
    const b = await TestClient.connect(ws);
    t.teardown(() => b.close());
    const w2 = await b.hello({ session: w.session, resume: 10, batch: true });
    t.equal(w2.resumed, true);
    await b.waitFor((f) => f.t === 'done');
    t.same(b.streamFrames().map((f) => f.seq), Array.from({ length: 62 - 10 }, (_, i) => i + 11), 'frames 11..62 once, in order');
    t.ok(b.framesPerMessage.length < 10, `${b.framesPerMessage.length} messages for 52 frames and the welcome`);
  });

  t.test(`${impl}: JSON clients are never batched`, async (t) => {
    const { ws } = await testServer(t, { native, model: 'mock', mockTokens: 30 });
    const c = await TestClient.connect(ws, 'json');
    t.teardown(() => c.close());
    const welcome = await c.hello({ batch: true });
    t.equal(welcome.batch, undefined);
    await c.chat('m1', CHAR, 'hi');
    t.ok(c.framesPerMessage.every((n) => n === 1));
    t.ok(c.binary.every((b) => !b), 'all text messages');
  });

  t.test(`${impl}: malformed MessagePack gets an error frame and the connection goes on`, async (t) => {
    const { ws } = await testServer(t, { native });
    const c = await TestClient.connect(ws);
    t.teardown(() => c.close());
    await c.hello();
    c.sendRaw(Buffer.from([0x82, 0xa1, 0x74, 0xa4, 0x63, 0x68])); // a map cut inside a string
    const err = await c.waitType('error');
    t.equal(err.code, 'ERR_PROTOCOL_MALFORMED');
    if (native) t.match(err.message, /^invalid MessagePack: truncated input at offset 3/, err.message);
    c.sendRaw(Buffer.from([0xc1]));
    const err2 = await c.waitFor((f) => f.t === 'error' && f !== err);
    // msgpackr reads 0xc1 (never used) as a value of its own, which is then no frame.
    t.equal(err2.code, native ? 'ERR_PROTOCOL_MALFORMED' : 'ERR_PROTOCOL_INVALID_FRAME');
    const done = await c.chat('ok', CHAR, '古风剑客，请赐教');
    t.equal(done.t, 'done', 'still usable');
  });
}

t.test('native: frames nested deeper than --max-frame-depth are refused', async (t) => {
  const { ws } = await testServer(t, { native: true, maxFrameDepth: 3 });
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  c.send({ t: 'hello', v: 1, extra: [[1]] });
  const welcome = await c.waitType('welcome');
  t.ok(welcome.session, 'depth 3 is fine');
  c.send({ t: 'ping', extra: [[[1]]] });
  const err = await c.waitType('error');
  t.equal(err.code, 'ERR_PROTOCOL_MALFORMED');
  t.match(err.message, /nesting deeper than 3/);
});
