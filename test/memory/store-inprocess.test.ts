import t from 'tap';
import { InProcessMemoryStore, sizeOf } from '../../src/memory/in-process.js';
import type { SessionData } from '../../src/session/types.js';
import { header, memory, frame, lease, runStoreSuite, sid, turn } from './store-suite.js';

const MB = 1024 * 1024;

/** A store on a fake clock (ms since the epoch) that only moves when told. */
function fakeClockStore(budgetBytes = 64 * MB) {
  const clock = { now: 1_700_000_000_000 };
  const store = new InProcessMemoryStore({ budgetBytes, now: () => clock.now, sweepIntervalMs: 0 });
  t.teardown(() => store.close());
  return { store, clock };
}

t.test('the MemoryStore suite', async (t) => {
  const { store, clock } = fakeClockStore();
  t.equal(store.kind, 'memory');
  t.equal(store.shared, false);
  runStoreSuite(t, {
    store,
    peer: store,
    make: async () => fakeClockStore().store,
    expiries: async (session) => {
      const left = store.expiresIn(session);
      return left === undefined ? [] : [left];
    },
    advance: async (ms) => {
      clock.now += ms;
    },
  });
});

t.test('records expire on the clock, counted in stats', async (t) => {
  const { store, clock } = fakeClockStore();
  const s = sid('clock');
  await store.save(header(s), 300);
  await store.appendTurns(s, [turn(1)], 10, 300);
  t.equal(store.stats().sessions, 1);
  clock.now += 299_999;
  t.ok(await store.load(s), 'alive 1 ms before its TTL');
  t.equal(store.expiresIn(s), 1, 'reading does not extend it');
  clock.now += 1;
  t.equal(await store.load(s), undefined, 'gone at its TTL');
  t.same(store.stats(), { sessions: 0, bytes: 0, evictions: 0, expirations: 1 }, 'expired lazily: counted, bytes released');
});

t.test('the sweep drops expired sessions nobody touches', async (t) => {
  const { store, clock } = fakeClockStore();
  for (let i = 0; i < 3; i++) await store.save(header(`s${i}`), 300 + i * 100);
  clock.now += 450_000;
  t.equal(store.stats().sessions, 3, 'nothing dropped before the sweep');
  store.sweep();
  t.equal(store.stats().sessions, 1, 'the sweep dropped the two expired ones');
  t.equal(store.stats().expirations, 2);
  t.ok(await store.load('s2'), 'the live one stays');
});

t.test('the periodic sweep runs on its timer', async (t) => {
  const clock = { now: 0 };
  const store = new InProcessMemoryStore({ budgetBytes: MB, now: () => clock.now, sweepIntervalMs: 20 });
  t.teardown(() => store.close());
  await store.save(header('a'), 1);
  clock.now += 1_000;
  const until = Date.now() + 2_000;
  while (store.stats().sessions > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
  t.same(store.stats(), { sessions: 0, bytes: 0, evictions: 0, expirations: 1 });
});

t.test('a lease outlives expired records, and the entry goes with the lease', async (t) => {
  const { store, clock } = fakeClockStore();
  await store.save(header('s'), 1);
  t.equal(await store.claimGeneration('s', lease('n'), 5_000), true);
  clock.now += 2_000;
  t.equal(await store.load('s'), undefined, 'records expired');
  t.same(await store.generation('s'), lease('n'), 'the lease still runs');
  t.equal(store.stats().sessions, 1);
  clock.now += 3_000;
  t.equal(await store.generation('s'), undefined);
  t.same(store.stats(), { sessions: 0, bytes: 0, evictions: 0, expirations: 1 });
});

function withoutTurns(data: SessionData): Omit<SessionData, 'turns'> {
  const { turns: _turns, ...rest } = data;
  return rest;
}

/** Writes one session of about the same size for every id. */
async function fill(store: InProcessMemoryStore, id: string): Promise<void> {
  await store.save(header(id), 600);
  await store.appendTurns(id, [turn(1), turn(2)], 10, 600);
  await store.addMemories(id, [memory(1, 64)], 10, 600);
  await store.appendFrames(id, [frame(1), frame(2)], 10, 600);
}

t.test('the budget evicts the least recently used sessions', async (t) => {
  const probe = fakeClockStore().store;
  await fill(probe, 's0');
  const one = probe.stats().bytes;
  t.ok(one > 1_000, `a session is counted (${one} bytes)`);

  const { store } = fakeClockStore(Math.floor(one * 3.5));
  for (const id of ['s1', 's2', 's3']) await fill(store, id);
  t.same(store.stats(), { sessions: 3, bytes: 3 * one, evictions: 0, expirations: 0 }, 'three fit');
  await store.load('s1'); // s1 is now the most recently used; s2 the least
  await fill(store, 's4');
  t.equal(store.stats().evictions, 1);
  t.equal(await store.load('s2'), undefined, 'the least recently used session was evicted whole');
  t.same(await store.memories('s2', 0), []);
  t.ok(await store.load('s1'), 'a recently read session stays');
  t.ok(await store.load('s3'));
  t.ok(await store.load('s4'), 'the session written stays');
  t.ok(store.stats().bytes <= Math.floor(one * 3.5), 'within the budget');
  await store.memories('s3', 0);
  await store.framesSince('s1', 0);
  await fill(store, 's5');
  t.equal(await store.load('s4'), undefined, 'every read counts as use: s4 was least recently used');
  t.equal(store.stats().evictions, 2);
});

t.test('an expired session is dropped before a live one is evicted', async (t) => {
  const probe = fakeClockStore().store;
  await fill(probe, 'p');
  const one = probe.stats().bytes;
  const { store, clock } = fakeClockStore(Math.floor(one * 2.5));
  await store.save(header('old'), 1);
  await fill(store, 'a');
  clock.now += 2_000;
  await fill(store, 'b');
  await fill(store, 'c');
  t.equal(store.stats().expirations, 1, 'the expired one went first');
  t.equal(store.stats().evictions, 1, 'then the least recently used live one');
  t.equal(await store.load('a'), undefined);
  t.ok(await store.load('b'));
});

t.test('a session larger than the budget is kept while it is the one written', async (t) => {
  const { store } = fakeClockStore(1);
  await fill(store, 'big');
  t.ok(await store.load('big'), 'kept: its own write never evicts it');
  await fill(store, 'next');
  t.equal(await store.load('big'), undefined, 'evicted by the next session');
  t.equal(store.stats().sessions, 1);
});

t.test('bytes follow trimming and deletion exactly', async (t) => {
  const { store } = fakeClockStore();
  await store.save(header('trimmed'), 600);
  for (let i = 0; i < 200; i++) {
    await store.appendTurns('trimmed', [turn(i % 2)], 10, 600);
    await store.addMemories('trimmed', [memory(1, 32)], 4, 600);
  }
  for (let seq = 1; seq <= 3000; seq++) await store.appendFrames('trimmed', [{ t: 'token', seq, id: 'r', text: 'x' }], 16, 600);
  const trimmed = store.stats().bytes;

  const fresh = fakeClockStore().store;
  await fresh.save(header('trimmed'), 600);
  for (let i = 0; i < 10; i++) await fresh.appendTurns('trimmed', [turn(i % 2)], 10, 600);
  for (let i = 0; i < 4; i++) await fresh.addMemories('trimmed', [memory(1, 32)], 4, 600);
  for (let seq = 2985; seq <= 3000; seq++) await fresh.appendFrames('trimmed', [{ t: 'token', seq, id: 'r', text: 'x' }], 16, 600);
  t.equal(trimmed, fresh.stats().bytes, 'a trimmed session counts what it holds, not what it was given');

  const before = header('trimmed');
  const after = header('trimmed', { states: { a: 'x'.repeat(10_000) } });
  await store.save(after, 600);
  t.equal(store.stats().bytes, trimmed - sizeOf(withoutTurns(before)) + sizeOf(withoutTurns(after)), 'replacing the header replaces its bytes');
  await store.delete('trimmed');
  t.same(store.stats(), { sessions: 0, bytes: 0, evictions: 0, expirations: 0 }, 'delete releases everything');
});

t.test('sizeOf counts strings at 2 bytes a character and vectors at their bytes', async (t) => {
  t.equal(sizeOf('abc') - sizeOf(''), 6);
  t.equal(sizeOf(new Float32Array(384)) - sizeOf(new Float32Array(0)), 1536);
  t.ok(sizeOf({ a: 'xyz' }) > sizeOf('xyz'), 'objects add their overhead');
  t.ok(sizeOf([1, 2, 3]) > sizeOf([1, 2]));
});

t.test('options are checked', async (t) => {
  t.throws(() => new InProcessMemoryStore({ budgetBytes: 0 }), { code: 'ERR_CONFIG_INVALID', message: /options\.budgetBytes/ });
  t.throws(() => new InProcessMemoryStore({ budgetBytes: 1.5 }), { code: 'ERR_CONFIG_INVALID', message: /options\.budgetBytes/ });
  t.throws(() => new InProcessMemoryStore({ budgetBytes: MB, sweepIntervalMs: -1 }), { code: 'ERR_CONFIG_INVALID', message: /options\.sweepIntervalMs/ });
});
