import t from 'tap';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { DoneFrame } from '../../src/protocol/types.js';
import { MockProvider } from '../../src/providers/mock.js';
import { SessionEngine } from '../../src/session/engine.js';
import { InProcessMemoryStore } from '../../src/memory/in-process.js';
import { testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const CHAR = 'gufeng-jianke';
const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));

async function outcomes(metrics: Metrics): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const v of (await metrics.turns.get()).values) out[String(v.labels.outcome)] = (out[String(v.labels.outcome)] ?? 0) + v.value;
  return out;
}

async function until(pred: () => boolean, timeoutMs: number): Promise<number> {
  const start = Date.now();
  while (!pred() && Date.now() - start < timeoutMs) await sleep(5);
  return Date.now() - start;
}

t.test('a WebSocket client that drops and does not come back: the reply is cancelled after the grace', async (t) => {
  const { ws, server } = await testServer(t, { model: 'mock', mockTokens: 400, mockTokenDelayMs: 10, orphanGraceMs: 400 });
  const a = await TestClient.connect(ws);
  const welcome = await a.hello();
  a.send({ t: 'chat', id: 'm1', character: CHAR, text: 'a long story please' });
  await a.waitFor((f) => f.t === 'token' && f.seq >= 4);
  a.terminate();
  const session = server.engine.peek(welcome.session)!;

  await sleep(100);
  t.equal(server.engine.activeGenerations, 1, 'still generating within the grace');
  const waited = await until(() => server.engine.activeGenerations === 0, 3000);
  t.equal(server.engine.activeGenerations, 0);
  t.ok(waited < 1500, `cancelled about the grace after the drop (${waited + 100} ms; the reply takes 4 s)`);

  const reply = session.data.turns.at(-1)!;
  t.match(reply, { role: 'assistant', id: 'm1', finish: 'cancelled' });
  t.ok(reply.text.length > 0, 'what was generated is kept in the history');
  const done = session.log.since(0, session.seq)!.find((f) => f.t === 'done') as DoneFrame;
  t.match(done, { id: 'm1', finish: 'cancelled', text: reply.text }, 'the done frame stays in the replay log');
  t.match(await outcomes(server.metrics), { cancelled: 1, completed: 0 });

  // A client that comes back later learns how the reply ended.
  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  await b.hello({ session: welcome.session, resume: 3 });
  const replayed = await b.waitFor((f) => f.t === 'done');
  t.equal(replayed.finish, 'cancelled');
});

t.test('a client that resumes within the grace gets the whole reply', async (t) => {
  const { ws, server } = await testServer(t, { model: 'mock', mockTokens: 60, mockTokenDelayMs: 10, orphanGraceMs: 300 });
  const a = await TestClient.connect(ws);
  const welcome = await a.hello();
  a.send({ t: 'chat', id: 'm1', character: CHAR, text: 'a long story please' });
  await a.waitFor((f) => f.t === 'token' && f.seq >= 4);
  a.terminate();
  const lastSeq = a.streamFrames().at(-1)!.seq as number;
  await sleep(100);

  const b = await TestClient.connect(ws);
  t.teardown(() => b.close());
  const w = await b.hello({ session: welcome.session, resume: lastSeq });
  t.equal(w.resumed, true);
  // The reply outlives the grace by far: the timer must have been cleared on resume.
  const done = await b.waitFor((f) => f.t === 'done' && f.id === 'm1', 5000);
  t.equal(done.finish, 'stop');
  const tokens = [...a.streamFrames(), ...b.streamFrames()].filter((f) => f.t === 'token');
  t.equal(tokens.length, 60, 'every token arrived across the two connections');
  t.equal(tokens.map((f) => f.text).join(''), done.text);
  t.match(await outcomes(server.metrics), { cancelled: 0, completed: 1 });
});

t.test('with no grace the reply stops as soon as the last listener goes', async (t) => {
  const { ws, http, server } = await testServer(t, { model: 'mock', mockTokens: 300, mockTokenDelayMs: 10, orphanGraceMs: 0 });
  const a = await TestClient.connect(ws);
  const welcome = await a.hello();
  a.send({ t: 'chat', id: 'm1', character: CHAR, text: 'go' });
  await a.waitFor((f) => f.t === 'token' && f.seq >= 3);

  // Another connection takes the session over mid-reply: someone still listens.
  const b = await TestClient.connect(ws);
  await b.hello({ session: welcome.session, resume: 3 });
  await b.waitFor((f) => f.t === 'token' && f.seq >= 10);
  t.equal(server.engine.activeGenerations, 1, 'a takeover is not an orphan');

  b.terminate();
  const waited = await until(() => server.engine.activeGenerations === 0, 3000);
  t.ok(waited < 500, `cancelled at once (${waited} ms; the reply takes 3 s)`);
  t.equal(server.engine.peek(welcome.session)!.data.turns.at(-1)!.finish, 'cancelled');

  // An SSE client of POST /v1/chat that goes away is a listener like any other.
  const ac = new AbortController();
  const res = await fetch(`${http}/v1/chat`, { method: 'POST', body: JSON.stringify({ session_id: 'sse-1', character: CHAR, message: 'go', stream: true }), signal: ac.signal });
  await res.body!.getReader().read();
  ac.abort();
  t.ok((await until(() => server.engine.activeGenerations === 0, 3000)) < 500);
  t.equal((await server.engine.find('sse-1'))!.data.turns.at(-1)!.finish, 'cancelled');
  t.match(await outcomes(server.metrics), { cancelled: 2 });
});

t.test('engine: one timer per orphaned generation, cleared when someone listens again', async (t) => {
  const registry = new CharacterRegistry();
  registry.loadDirectory(BUNDLED);
  const metrics = new Metrics({ defaultMetrics: false });
  const engine = new SessionEngine({
    store: new InProcessMemoryStore({ budgetBytes: 64 * 1024 * 1024 }),
    registry,
    provider: new MockProvider({ tokens: 100, ttftMs: 0, tokenDelayMs: 10 }),
    metrics,
    logger: silentLogger,
    limits: { maxSessions: 10, maxReplyTokens: 256, maxHistoryTurns: 100, replayFrames: 512, replayRetentionMs: 60_000, sessionTtlMs: 60_000, scriptTokenDelayMs: 0, orphanGraceMs: 150 },
  });
  t.teardown(() => engine.close());
  const { session } = await engine.open('s1');

  // Started with nobody listening: the timer starts with the generation.
  const g = engine.chat(session, { id: 'a', character: CHAR, text: 'hi' });
  t.ok(g.orphanTimer, 'an orphaned generation has a timer');
  await sleep(80);
  const stop = session.subscribe(() => {});
  t.equal(g.orphanTimer, undefined, 'a listener clears it');
  await sleep(200);
  t.notOk(g.controller.signal.aborted, 'still generating past the grace while listened to');
  session.owner = {};
  stop();
  t.equal(g.orphanTimer, undefined, 'an owning connection counts as a listener');
  session.owner = undefined;
  const timer = g.orphanTimer;
  t.ok(timer, 'orphaned again');
  const again = session.subscribe(() => {});
  again();
  t.not(g.orphanTimer, undefined);
  t.not(g.orphanTimer, timer, 'a new timer after the listener came and went: the grace starts again');
  await g.finished;
  t.equal(session.data.turns.at(-1)!.finish, 'cancelled');
  t.equal(g.orphanTimer, undefined);
  t.match(await outcomes(metrics), { cancelled: 1 });

  // A listener that leaves when the reply ends does not arm anything.
  const live = session.subscribe(() => {});
  const g2 = engine.chat(session, { id: 'b', character: CHAR, text: 'hi' });
  const stopAtDone = session.subscribe((f) => {
    if (f.t === 'done') {
      live();
      stopAtDone();
      t.equal(g2.orphanTimer, undefined, 'no timer once the reply is ending');
    }
  });
  await g2.finished;
  t.equal(session.data.turns.at(-1)!.finish, 'stop');
});
