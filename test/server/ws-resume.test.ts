import t from 'tap';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { testServer } from '../helpers/server.js';
import { type Frame, TestClient } from '../helpers/ws-client.js';

const CHAR = 'gufeng-jianke';
const FIXTURE_CHARACTERS = fileURLToPath(new URL('../fixtures/characters', import.meta.url));

function assertConsecutive(t: Test, frames: Frame[], firstSeq: number, what: string) {
  const seqs = frames.map((f) => f.seq);
  const want = seqs.map((_, i) => firstSeq + i);
  t.same(seqs, want, `${what}: seqs ${firstSeq}..${firstSeq + seqs.length - 1}, each once, in order`);
}

for (const format of ['msgpack', 'json'] as const) {
  t.test(`resume after a drop in the middle of a streamed reply (${format})`, async (t) => {
    const { ws, server } = await testServer(t, { model: 'mock', mockTokens: 40, mockTokenDelayMs: 15 });
    const a = await TestClient.connect(ws, format);
    const welcome = await a.hello();
    a.send({ t: 'chat', id: 'r1', character: CHAR, text: 'a long story please' });
    await a.waitFor((f) => f.t === 'token' && f.seq >= 6);
    a.terminate(); // no close handshake: like a lost network
    const seenByA = a.streamFrames();
    const lastSeq = seenByA.at(-1)!.seq as number;

    await sleep(150);
    const session = server.engine.peek(welcome.session)!;
    t.ok(session.seq > lastSeq + 3, `generation went on while the client was away (seq ${lastSeq} → ${session.seq})`);

    const b = await TestClient.connect(ws, format);
    t.teardown(() => b.close());
    const w2 = await b.hello({ session: welcome.session, resume: lastSeq });
    t.equal(w2.resumed, true);
    t.equal(w2.session, welcome.session);
    const done = await b.waitFor((f) => f.t === 'done' && f.id === 'r1', 5000);
    const streamB = b.streamFrames();
    assertConsecutive(t, streamB, lastSeq + 1, 'after resume');
    const all = [...seenByA, ...streamB];
    assertConsecutive(t, all, 1, 'whole stream across both connections');
    t.same(all.map((f) => f.t), ['start', ...Array(40).fill('token'), 'done']);
    t.equal(
      all.filter((f) => f.t === 'token').map((f) => f.text).join(''),
      done.text,
      'tokens from both connections make up the reply, nothing lost or doubled',
    );

    // The session goes on: history has both messages, a new turn continues the seq.
    const next = await b.chat('r2', CHAR, 'and then?');
    t.equal(next.t, 'done');
    t.equal(b.framesFor('r2')[0]!.seq, done.seq + 1);
    t.same(session.data.turns.map((x) => `${x.role}:${x.id}`), ['user:r1', 'assistant:r1', 'user:r2', 'assistant:r2']);
  });
}

t.test('resume after the reply finished replays the rest, then goes live', async (t) => {
  const { ws } = await testServer(t, { model: 'mock', mockTokens: 10, mockTokenDelayMs: 5 });
  const a = await TestClient.connect(ws);
  const w = await a.hello();
  a.send({ t: 'chat', id: 'x', character: CHAR, text: 'go' });
  await a.waitFor((f) => f.t === 'token' && f.seq === 3);
  a.terminate();
  await sleep(200); // the reply (12 frames) completes meanwhile
  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  const w2 = await b.hello({ session: w.session, resume: 3 });
  t.equal(w2.seq, 12, 'welcome reports the current seq');
  await b.waitFor((f) => f.t === 'done');
  assertConsecutive(t, b.streamFrames(), 4, 'replayed');
  // resume equal to the current seq: nothing to replay.
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  const w3 = await c.hello({ session: w.session, resume: 12 });
  t.equal(w3.resumed, true);
  await sleep(50);
  t.equal(c.frames.length, 1, 'only the welcome');
});

for (const [format, batch] of [['msgpack', false], ['msgpack', true], ['json', false]] as const) {
  t.test(`a reply longer than the replay log, handed over at once, reaches a client that keeps up whole (${format}${batch ? ', batches' : ''})`, async (t) => {
    // 100 tokens with no delay: the whole reply is logged within one event-loop
    // turn, and the log keeps only 16 frames.
    const { ws } = await testServer(t, { model: 'mock', mockTokens: 100, mockTokenDelayMs: 0, replayFrames: 16 });
    const a = await TestClient.connect(ws, format);
    t.teardown(() => a.close());
    await a.hello(batch ? { batch: true } : {});
    const first = await a.chat('b1', CHAR, 'a long story please');
    const second = await a.chat('b2', CHAR, 'and another');
    t.equal(first.t, 'done');
    t.equal(second.t, 'done');
    t.same(a.frames.filter((f) => f.t === 'error'), [], 'no ERR_RESUME_GAP: nothing was skipped');
    const stream = a.streamFrames();
    assertConsecutive(t, stream, 1, 'both replies');
    const one = ['start', ...Array(100).fill('token'), 'done'];
    t.same(stream.map((f) => f.t), [...one, ...one]);
    t.equal(a.framesFor('b1').filter((f) => f.t === 'token').map((f) => f.text).join(''), first.text);
  });
}

t.test('frames older than the replay log give ERR_RESUME_GAP', async (t) => {
  const { ws, http } = await testServer(t, { model: 'mock', mockTokens: 40, replayFrames: 16 });
  const a = await TestClient.connect(ws);
  const w = await a.hello();
  await a.chat('g', CHAR, 'fill the log');
  await a.close();

  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  const w2 = await b.hello({ session: w.session, resume: 2 });
  t.equal(w2.resumed, false);
  const gap = await b.waitType('error');
  t.equal(gap.code, 'ERR_RESUME_GAP');
  t.match(gap.message, /messages/);
  // History is still readable over HTTP, and the connection is live.
  const res = await fetch(`${http}/v1/sessions/${w.session}/messages`);
  const body = (await res.json()) as { messages: { role: string; text: string }[] };
  t.equal(body.messages.length, 2);
  t.equal(body.messages[1]!.text, a.frames.find((f) => f.t === 'done')!.text);
  const done = await b.chat('g2', CHAR, 'again');
  t.equal(done.seq, 42 + 42);

  // A resume point ahead of the session (e.g. the server restarted) is a gap too.
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  await c.hello({ session: w.session, resume: 10_000 });
  t.equal((await c.waitType('error')).code, 'ERR_RESUME_GAP');
  // An unknown session id with resume: a new session, and a gap.
  const d = await TestClient.connect(ws);
  t.teardown(() => d.close());
  const w4 = await d.hello({ session: 'never-seen', resume: 5 });
  t.equal(w4.session, 'never-seen');
  t.equal(w4.seq, 0);
  t.equal((await d.waitType('error')).code, 'ERR_RESUME_GAP');
});

/**
 * Kernel socket buffers on loopback absorb several MB, so these tests send one
 * huge token first (the echo character repeats the message): it fills the
 * kernel and uWS buffers, and uWS reports backpressure on the next send.
 */
function floodText(smallWords: number): string {
  return 'x'.repeat(6 * 1024 * 1024) + ' w'.repeat(smallWords);
}

async function slowReader(t: Test, replayFrames: number, smallWords: number) {
  const { ws, server } = await testServer(t, {
    characters: FIXTURE_CHARACTERS,
    maxFrameBytes: 16 * 1024 * 1024,
    maxMessageChars: 8 * 1024 * 1024,
    maxReplyTokens: 100_000,
    replayFrames,
    wsMaxBackpressureBytes: 64 * 1024,
  });
  const c = await TestClient.connect(ws, 'msgpack', { maxPayload: 64 * 1024 * 1024 });
  t.teardown(() => c.close());
  await c.hello();
  const socket = (c.ws as unknown as { _socket: import('node:net').Socket })._socket;
  socket.pause();
  c.send({ t: 'chat', id: 'big', character: 'echo', text: floodText(smallWords) });
  await sleep(1000);
  const pauses = (await server.metrics.wsBackpressurePauses.get()).values[0]!.value;
  socket.resume();
  const done = await c.waitFor((f) => f.t === 'done', 20_000);
  return { c, done, pauses };
}

t.test('a slow reader is paused and caught up from the replay log, in order', async (t) => {
  const words = 2000;
  const { c, done, pauses } = await slowReader(t, 5000, words);
  t.ok(pauses > 0, 'live sending paused at the high-water mark');
  const stream = c.streamFrames();
  t.equal(stream.length, words + 3, 'start, every token, done');
  assertConsecutive(t, stream, 1, 'slow reader');
  t.equal(c.frames.filter((f) => f.t === 'error').length, 0, 'no gap');
  t.equal(done.text.length, 6 * 1024 * 1024 + 2 * words);
});

t.test('a reader slower than the replay log gets ERR_RESUME_GAP and continues', async (t) => {
  const { c, done, pauses } = await slowReader(t, 16, 200);
  t.ok(pauses > 0, 'paused');
  const gap = c.frames.find((f) => f.t === 'error');
  t.equal(gap?.code, 'ERR_RESUME_GAP', 'told that frames were skipped');
  t.equal(gap?.seq, undefined, 'the notice is not a stream frame');
  const seqs = c.streamFrames().map((f) => f.seq as number);
  t.ok(seqs.every((s, i) => i === 0 || s > seqs[i - 1]!), 'never out of order or doubled');
  t.ok(seqs.length < 203, `some frames skipped (${seqs.length} of 203 received)`);
  t.equal(done.seq, 203);
  t.equal(done.text.length, 6 * 1024 * 1024 + 400, 'done still carries the whole reply');
});

t.test('a session without a connection drops its replay log after --replay-retention', async (t) => {
  const { ws, server } = await testServer(t, { model: 'mock', mockTokens: 4, replayRetentionMs: 60_000 });
  const a = await TestClient.connect(ws);
  const w = await a.hello();
  await a.chat('m', CHAR, 'hi');
  await a.close();
  const session = server.engine.peek(w.session)!;
  server.engine.sweep(Date.now() + 30_000);
  t.equal(session.log.size, 6, 'kept within the retention');
  server.engine.sweep(Date.now() + 61_000);
  t.equal(session.log.size, 0, 'dropped after it');
  t.ok(server.engine.peek(w.session), 'the session itself lives on until its TTL');
  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  const w2 = await b.hello({ session: w.session, resume: 2 });
  t.equal(w2.resumed, false);
  t.equal((await b.waitType('error')).code, 'ERR_RESUME_GAP');
  t.equal(session.data.turns.length, 2, 'history is kept');
});
