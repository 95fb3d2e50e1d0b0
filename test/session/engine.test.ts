import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { NpcdError } from '../../src/errors.js';
import { silentLogger } from '../../src/log.js';
import { Metrics } from '../../src/metrics/metrics.js';
import type { DoneFrame, StreamFrame } from '../../src/protocol/types.js';
import { MockProvider, mockToken } from '../../src/providers/mock.js';
import { pause } from '../../src/providers/pace.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from '../../src/providers/types.js';
import { type EngineLimits, SessionEngine } from '../../src/session/engine.js';
import { InProcessMemoryStore } from '../../src/memory/in-process.js';
import type { Session } from '../../src/session/session.js';
import { streamPieces } from '../../src/text/tokens.js';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));
const CHAR = 'gufeng-jianke';

const LIMITS: EngineLimits = {
  maxSessions: 100,
  maxReplyTokens: 256,
  maxHistoryTurns: 200,
  replayFrames: 1024,
  replayRetentionMs: 600_000,
  sessionTtlMs: 1_800_000,
  scriptTokenDelayMs: 0,
};

function setup(t: Test, options: { provider?: ModelProvider; limits?: Partial<EngineLimits> } = {}) {
  const registry = new CharacterRegistry();
  registry.loadDirectory(BUNDLED);
  const store = new InProcessMemoryStore({ budgetBytes: 64 * 1024 * 1024 });
  const metrics = new Metrics({ defaultMetrics: false });
  const engine = new SessionEngine({
    store,
    registry,
    provider: options.provider ?? new MockProvider({ tokens: 5, ttftMs: 0, tokenDelayMs: 0 }),
    metrics,
    logger: silentLogger,
    limits: { ...LIMITS, ...options.limits },
  });
  t.teardown(() => engine.close());
  return { engine, store, registry, metrics };
}

/** Records the frames of a session. */
function record(session: Session): { frames: StreamFrame[]; stop: () => void } {
  const frames: StreamFrame[] = [];
  const stop = session.subscribe((f) => frames.push(f));
  return { frames, stop };
}

function next(session: Session, pred: (f: StreamFrame) => boolean): Promise<StreamFrame> {
  return new Promise((resolve) => {
    const stop = session.subscribe((f) => {
      if (pred(f)) {
        stop();
        resolve(f);
      }
    });
  });
}

/** Runs one chat turn to its end and returns its frames. */
async function chat(engine: SessionEngine, session: Session, id: string, text: string, character = CHAR): Promise<StreamFrame[]> {
  const { frames, stop } = record(session);
  const g = engine.chat(session, { id, character, text });
  await g.finished;
  stop();
  return frames.filter((f) => f.id === id);
}

function thrown(f: () => unknown): NpcdError {
  try {
    f();
  } catch (err) {
    if (err instanceof NpcdError) return err;
    throw err;
  }
  throw new Error('did not throw');
}

async function rejected(p: Promise<unknown>): Promise<NpcdError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof NpcdError) return err;
    throw err;
  }
  throw new Error('did not reject');
}

async function turnCounts(metrics: Metrics): Promise<Record<string, number>> {
  const m = await metrics.turns.get();
  return Object.fromEntries(m.values.map((v) => [String(v.labels.outcome), v.value]));
}

t.test('a chat streams start, tokens and done with seq 1..n', async (t) => {
  const { engine, store } = setup(t);
  const { session, created } = await engine.open('s1');
  t.equal(created, true);
  const frames = await chat(engine, session, 'm1', 'hello there');
  t.same(frames.map((f) => f.t), ['start', 'token', 'token', 'token', 'token', 'token', 'done']);
  t.same(frames.map((f) => f.seq), [1, 2, 3, 4, 5, 6, 7]);
  t.same(frames[0], { t: 'start', seq: 1, id: 'm1', character: CHAR, state: 'calm' });
  t.same(frames.slice(1, 6).map((f) => (f as { text: string }).text), [0, 1, 2, 3, 4].map(mockToken));
  const done = frames[6] as DoneFrame;
  t.match(done, { t: 'done', seq: 7, id: 'm1', text: 'the lantern swings in the', state: 'calm', finish: 'stop' });
  t.equal(done.usage.completion_tokens, 5);
  t.ok(done.usage.prompt_tokens > 0, 'prompt tokens are counted');
  t.equal(session.seq, 7);
  t.equal(session.log.size, 7, 'every frame is in the replay log');
  t.same(session.log.since(0, session.seq), frames);
  t.equal(session.generation, undefined, 'the generation is over');
  t.equal(engine.activeGenerations, 0);

  t.equal(session.data.userTurns, 1);
  t.match(session.data.turns, [
    { id: 'm1', role: 'user', character: CHAR, text: 'hello there', tokens: 2 },
    { id: 'm1', role: 'assistant', character: CHAR, text: 'the lantern swings in the', tokens: 5, seq: 7, finish: 'stop' },
  ]);
  const stored = await store.load('s1');
  t.same(stored?.turns, session.data.turns, 'the store has the same history');

  const second = await chat(engine, session, 'm2', 'again');
  t.same(second.map((f) => f.seq), [8, 9, 10, 11, 12, 13, 14], 'the seq continues across turns');
  t.equal(session.data.userTurns, 2);
  t.equal(session.data.turns.length, 4);
});

t.test('a scripted trigger reply streams through the engine', async (t) => {
  const { engine } = setup(t);
  const { session } = await engine.open('s1');
  const frames = await chat(engine, session, 'm1', '古风剑客你好');
  const reply = '古风剑客你好 → 古风剑客微笑点头';
  t.same(frames.filter((f) => f.t === 'token').map((f) => (f as { text: string }).text), streamPieces(reply));
  t.match(frames.at(-1), { t: 'done', text: reply, state: 'calm', finish: 'stop' });
  t.same(frames.map((f) => f.seq), frames.map((_, i) => i + 1));
});

t.test('state transitions are kept in session.data.states and the store', async (t) => {
  const { engine, store } = setup(t);
  const { session } = await engine.open('s1');
  const walk: [string, string][] = [['比武', 'wary'], ['懦夫', 'hostile'], ['天气不错', 'hostile'], ['道歉', 'calm']];
  let n = 0;
  for (const [text, state] of walk) {
    const frames = await chat(engine, session, `m${++n}`, text);
    t.equal((frames[0] as { state: string }).state, state, `start.state after ${text}`);
    t.equal((frames.at(-1) as DoneFrame).state, state, `done.state after ${text}`);
    t.equal(session.data.states[CHAR], state);
    t.equal((await store.load('s1'))?.states[CHAR], state, 'persisted');
  }
  // States are per character.
  await chat(engine, session, 'h1', 'override the airlock', 'station-ai');
  t.same(session.data.states, { [CHAR]: 'calm', 'station-ai': 'alert' });
});

t.test('turns that cannot start throw NpcdError and emit nothing', async (t) => {
  const { engine, metrics } = setup(t, { provider: new MockProvider({ tokens: 1000, ttftMs: 0, tokenDelayMs: 5 }), limits: { maxReplyTokens: 1000 } });
  const { session } = await engine.open('s1');
  const before = session.seq;
  t.match(thrown(() => engine.chat(session, { id: 'x', character: 'nobody', text: 'hi' })), { code: 'ERR_CHARACTER_NOT_FOUND', status: 404 });
  t.equal(session.seq, before);

  const g = engine.chat(session, { id: 'm1', character: CHAR, text: 'tell me a long story' });
  t.equal(session.generation, g);
  t.equal(g.id, 'm1');
  t.equal(g.character, CHAR);
  const busy = thrown(() => engine.chat(session, { id: 'm2', character: CHAR, text: 'hi' }));
  t.equal(busy.code, 'ERR_SESSION_BUSY');
  t.equal(busy.message, 'session is generating the reply to "m1"; send one chat at a time or cancel it');
  t.equal(thrown(() => engine.chat(session, { id: 'm1', character: CHAR, text: 'hi' })).code, 'ERR_SESSION_BUSY', 'busy is checked before the id');
  t.equal(thrown(() => engine.chat(session, { id: 'm2', character: 'nobody', text: 'hi' })).code, 'ERR_CHARACTER_NOT_FOUND', 'the character is checked first');
  t.ok(engine.cancel(session, 'm1'));
  await g.finished;

  const dup = thrown(() => engine.chat(session, { id: 'm1', character: CHAR, text: 'hi' }));
  t.equal(dup.code, 'ERR_CHAT_DUPLICATE_ID');
  t.equal(dup.message, 'message id "m1" was already used in this session');
  t.equal(dup.status, 409);
  t.same(await turnCounts(metrics), { completed: 0, cancelled: 1, failed: 0, rejected: 5 });
});

t.test('cancel ends the reply with finish "cancelled" and keeps the partial text', async (t) => {
  const { engine, store } = setup(t, { provider: new MockProvider({ tokens: 1000, ttftMs: 0, tokenDelayMs: 5 }), limits: { maxReplyTokens: 1000 } });
  const { session } = await engine.open('s1');
  const { frames, stop } = record(session);
  const g = engine.chat(session, { id: 'm1', character: CHAR, text: 'a long story' });
  await next(session, (f) => f.t === 'token' && f.seq === 3);
  t.equal(engine.cancel(session, 'other'), false, 'another id is not generating');
  t.equal(engine.cancel(session, 'm1'), true);
  await g.finished;
  stop();
  t.equal(engine.cancel(session, 'm1'), false, 'nothing to cancel any more');

  const tokens = frames.filter((f) => f.t === 'token').map((f) => (f as { text: string }).text);
  t.ok(tokens.length >= 2 && tokens.length < 1000, `${tokens.length} tokens before the cancel`);
  t.same(tokens, tokens.map((_, i) => mockToken(i)));
  const done = frames.at(-1) as DoneFrame;
  t.match(done, { t: 'done', id: 'm1', finish: 'cancelled', state: 'calm', text: tokens.join('') });
  t.equal(done.seq, frames.length);
  t.equal(done.usage.completion_tokens, tokens.length, 'usage counts what was streamed');
  // The prompt was sent whole: usage counts all of it, as for the same turn run to its end.
  const { engine: whole } = setup(t);
  const { session: s2 } = await whole.open('s2');
  const r2 = record(s2);
  await whole.chat(s2, { id: 'm1', character: CHAR, text: 'a long story' }).finished;
  r2.stop();
  const full = r2.frames.at(-1) as DoneFrame;
  t.match(full, { t: 'done', finish: 'stop' });
  t.ok(full.usage.prompt_tokens > 100, `the prompt has the character's system prompt (${full.usage.prompt_tokens} tokens)`);
  t.equal(done.usage.prompt_tokens, full.usage.prompt_tokens, 'prompt_tokens of the cancelled reply: the whole prompt');
  const reply = session.data.turns.at(-1)!;
  t.match(reply, { role: 'assistant', id: 'm1', text: tokens.join(''), finish: 'cancelled', seq: done.seq });
  t.equal((await store.load('s1'))?.turns.at(-1)?.finish, 'cancelled');
  t.equal(session.generation, undefined);

  // A cancel right after chat() (before any token) gives an empty reply.
  const { frames: f2, stop: stop2 } = record(session);
  const g2 = engine.chat(session, { id: 'm2', character: CHAR, text: 'again' });
  engine.cancel(session, 'm2');
  await g2.finished;
  stop2();
  t.same(f2.map((f) => f.t), ['start', 'done']);
  t.match(f2[1], { finish: 'cancelled', text: '' });
});

/** Yields two pieces, then fails (the first `failures` times it is called). */
class FlakyProvider implements ModelProvider {
  readonly name = 'flaky';
  readonly description = 'fails mid-stream';
  calls = 0;
  constructor(private failures: number) {}
  async *generate(_req: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    this.calls++;
    yield 'a';
    await pause(0, signal);
    yield ' b';
    if (this.failures-- > 0) throw new Error('upstream exploded');
    return { finish: 'stop', usage: { promptTokens: 11, completionTokens: 2 } };
  }
}

t.test('a provider that throws mid-stream gives an ERR_PROVIDER_FAILED frame; the session stays usable', async (t) => {
  const provider = new FlakyProvider(1);
  const { engine, metrics } = setup(t, { provider });
  const { session } = await engine.open('s1');
  const frames = await chat(engine, session, 'm1', 'hello there');
  t.same(frames.map((f) => f.t), ['start', 'token', 'token', 'error']);
  t.same(frames[3], { t: 'error', seq: 4, id: 'm1', code: 'ERR_PROVIDER_FAILED', message: 'provider flaky failed: upstream exploded' });
  t.equal(session.generation, undefined);
  t.same(session.data.turns.map((x) => x.role), ['user'], 'no reply is stored for a failed turn');

  const ok = await chat(engine, session, 'm2', 'hello again');
  t.same(ok.map((f) => f.t), ['start', 'token', 'token', 'done']);
  t.same(ok.map((f) => f.seq), [5, 6, 7, 8]);
  t.match(ok[3], { text: 'a b', finish: 'stop', usage: { prompt_tokens: 11, completion_tokens: 2 } }, 'provider usage is passed on');
  t.equal(provider.calls, 2);
  t.same(await turnCounts(metrics), { completed: 1, cancelled: 0, failed: 1, rejected: 0 });
});

t.test('a provider that throws before its first token', async (t) => {
  const provider: ModelProvider = {
    name: 'broken',
    description: 'throws at once',
    async *generate(): AsyncGenerator<string, GenerateResult, void> {
      throw new TypeError('no connection');
    },
  };
  const { engine } = setup(t, { provider });
  const { session } = await engine.open('s1');
  const frames = await chat(engine, session, 'm1', 'hello');
  t.same(frames, [
    { t: 'start', seq: 1, id: 'm1', character: CHAR, state: 'calm' },
    { t: 'error', seq: 2, id: 'm1', code: 'ERR_PROVIDER_FAILED', message: 'provider broken failed: no connection' },
  ]);
});

t.test('a listener that throws does not stop the stream for others', async (t) => {
  const { engine } = setup(t);
  const { session } = await engine.open('s1');
  const stopBad = session.subscribe(() => {
    throw new Error('listener bug');
  });
  const frames = await chat(engine, session, 'm1', 'hello there');
  stopBad();
  t.same(frames.map((f) => f.seq), [1, 2, 3, 4, 5, 6, 7]);
  t.equal(frames.at(-1)?.t, 'done');
});

t.test('drain() with nothing running', async (t) => {
  const { engine } = setup(t, { provider: new MockProvider({ tokens: 3, ttftMs: 0, tokenDelayMs: 1 }) });
  t.same(await engine.drain(10), { finished: 0, cancelled: 0 }, 'nothing running');
  t.equal(engine.isDraining, true);
});

t.test('drain() waits for a short turn', async (t) => {
  const { engine } = setup(t, { provider: new MockProvider({ tokens: 3, ttftMs: 0, tokenDelayMs: 1 }) });
  const { session } = await engine.open('s1');
  const { frames, stop } = record(session);
  engine.chat(session, { id: 'm1', character: CHAR, text: 'hello there' });
  t.same(await engine.drain(10_000), { finished: 1, cancelled: 0 });
  stop();
  t.match(frames.at(-1), { t: 'done', finish: 'stop', text: 'the lantern swings' });
  t.equal(engine.activeGenerations, 0);
  t.match(await rejected(engine.open('s2')), { code: 'ERR_SHUTTING_DOWN' }, 'no new sessions while draining');
  t.match(await rejected(engine.open('s1')), { code: 'ERR_SHUTTING_DOWN' }, 'nor existing ones');
  t.match(thrown(() => engine.chat(session, { id: 'm2', character: CHAR, text: 'hi' })), { code: 'ERR_SHUTTING_DOWN', status: 503 });
});

t.test('drain() cancels what is still running at the deadline', async (t) => {
  const { engine } = setup(t, { provider: new MockProvider({ tokens: 100_000, ttftMs: 0, tokenDelayMs: 5 }), limits: { maxReplyTokens: 100_000 } });
  const { session } = await engine.open('s1');
  const { frames, stop } = record(session);
  engine.chat(session, { id: 'm1', character: CHAR, text: 'a long story' });
  await next(session, (f) => f.t === 'token');
  t.same(await engine.drain(20), { finished: 0, cancelled: 1 });
  stop();
  const done = frames.at(-1) as DoneFrame;
  t.equal(done.t, 'done', 'the cancelled turn still ends with done');
  t.equal(done.finish, 'cancelled');
  t.ok(frames.filter((f) => f.t === 'token').length < 100_000);
  t.equal(engine.activeGenerations, 0);
});

t.test('open() and find()', async (t) => {
  const { engine, store } = setup(t);
  const fresh = await engine.open();
  t.match(fresh.session.id, /^sess_[A-Za-z0-9_-]{16}$/);
  t.equal(fresh.created, true);
  const [a, b] = await Promise.all([engine.open('same'), engine.open('same')]);
  t.equal(a.session, b.session, 'two concurrent opens of one new id give one session');
  t.equal(engine.sessionCount, 2);
  t.equal(store.stats().sessions, 2);
  const again = await engine.open('same');
  t.equal(again.session, a.session);
  t.equal(again.created, false);
  t.equal(engine.peek('same'), a.session);
  t.equal(await engine.find('same'), a.session);
  t.equal(await engine.find('never'), undefined);
  t.equal(engine.peek('never'), undefined);

  // A session only in the store is adopted, with its history and states.
  await store.save({ id: 'stored', createdAt: 1, lastActive: 1, states: { [CHAR]: 'wary' }, turns: [], userTurns: 1 }, 3600);
  await store.appendTurns('stored', [{ id: 'old', role: 'user', character: CHAR, text: 'x', at: 1, tokens: 1 }], 200, 3600);
  const s = await engine.find('stored');
  t.equal(s?.stateOf({ id: CHAR, initialState: 'calm', states: ['calm', 'wary'] }), 'wary');
  t.equal(s?.stateOf({ id: CHAR, initialState: 'calm', states: ['calm'] }), 'calm', 'a state a reloaded character no longer has falls back to its initial state');
  t.equal(s?.hasId('old'), true, 'ids of stored user turns are remembered');
  t.match(thrown(() => engine.chat(s!, { id: 'old', character: CHAR, text: 'x' })), { code: 'ERR_CHAT_DUPLICATE_ID' });
  const opened = await engine.open('stored');
  t.equal(opened.session, s);
  t.equal(opened.created, false);
});

t.test('ERR_SESSION_LIMIT', async (t) => {
  const { engine } = setup(t, { limits: { maxSessions: 2 } });
  await engine.open('a');
  await engine.open('b');
  const e = await rejected(engine.open('c'));
  t.equal(e.code, 'ERR_SESSION_LIMIT');
  t.equal(e.message, 'the server holds its maximum of 2 sessions');
  t.equal(e.status, 503);
  t.equal(engine.sessionCount, 2);
  t.equal((await engine.open('a')).created, false, 'existing sessions still open');
  const [x, y] = await Promise.allSettled([engine.open('d'), engine.open('d')]);
  t.same([x.status, y.status], ['rejected', 'rejected']);
});

t.test('sweep() expires idle sessions after the TTL and drops idle replay logs', async (t) => {
  const ttl = 60_000;
  const retention = 10_000;
  const { engine, store, metrics } = setup(t, { limits: { sessionTtlMs: ttl, replayRetentionMs: retention } });
  const idle = (await engine.open('idle')).session;
  const watched = (await engine.open('watched')).session;
  const owned = (await engine.open('owned')).session;
  await chat(engine, idle, 'm1', 'hello there');
  const stopWatching = watched.subscribe(() => {});
  owned.owner = {};
  t.equal(idle.log.size, 7);

  const now = Date.now();
  t.equal(engine.sweep(now), 0);
  t.equal(engine.sweep(now + retention + 1000), 0, 'after the replay retention nothing expires…');
  t.equal(idle.log.size, 0, '…but the idle session\'s replay log is dropped');
  t.same(idle.log.since(0, idle.seq), undefined, 'a resume now reports a gap');
  t.equal(idle.data.turns.length, 2, 'history is kept');

  t.equal(engine.sweep(now + ttl + 1000), 1, 'after the TTL the idle session expires');
  t.equal(engine.peek('idle'), undefined);
  t.equal(await store.load('idle'), undefined, 'and is deleted from the store');
  t.ok(engine.peek('watched'), 'a session with a listener stays');
  t.ok(engine.peek('owned'), 'a session with a connection stays');
  t.equal(engine.sessionCount, 2);
  t.equal((await metrics.sessionsExpired.get()).values[0]?.value, 1);
  t.equal((await metrics.sessions.get()).values[0]?.value, 2);

  stopWatching();
  owned.owner = undefined;
  t.equal(engine.sweep(now + ttl + 1000), 2);
  t.equal(engine.sessionCount, 0);
  t.equal((await engine.open('idle')).created, true, 'an expired id starts afresh');
});

t.test('a session generating a reply is not swept', async (t) => {
  const { engine } = setup(t, { provider: new MockProvider({ tokens: 1000, ttftMs: 0, tokenDelayMs: 5 }), limits: { maxReplyTokens: 1000, sessionTtlMs: 1000 } });
  const { session } = await engine.open('s1');
  const g = engine.chat(session, { id: 'm1', character: CHAR, text: 'x' });
  t.equal(engine.sweep(Date.now() + 3_600_000), 0);
  t.equal(engine.peek('s1'), session);
  engine.cancel(session, 'm1');
  await g.finished;
  t.equal(engine.sweep(Date.now() + 3_600_000), 1);
});

t.test('history is bounded by maxHistoryTurns', async (t) => {
  const { engine, store } = setup(t, { limits: { maxHistoryTurns: 3 } });
  const { session } = await engine.open('s1');
  for (let i = 1; i <= 3; i++) await chat(engine, session, `m${i}`, `message ${i}`);
  t.same(session.data.turns.map((x) => `${x.role}:${x.id}`), ['assistant:m2', 'user:m3', 'assistant:m3']);
  t.same((await store.load('s1'))?.turns.map((x) => `${x.role}:${x.id}`), ['assistant:m2', 'user:m3', 'assistant:m3']);
  t.equal(session.data.userTurns, 3, 'userTurns keeps counting');
});

t.test('close() aborts running generations', async (t) => {
  const { engine } = setup(t, { provider: new MockProvider({ tokens: 1000, ttftMs: 0, tokenDelayMs: 5 }), limits: { maxReplyTokens: 1000 } });
  const { session } = await engine.open('s1');
  const { frames, stop } = record(session);
  const g = engine.chat(session, { id: 'm1', character: CHAR, text: 'x' });
  engine.close();
  await g.finished;
  stop();
  t.match(frames.at(-1), { t: 'done', finish: 'cancelled' });
});
