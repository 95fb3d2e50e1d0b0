/**
 * The MemoryStore contract, run against every backend (store-*.test.ts):
 * what each method keeps, returns and trims, the lease rules, the TTL
 * policy, isolation between sessions, concurrent writers, argument checks.
 * A backend passes it unchanged; what only one backend can show (LRU,
 * Redis outages, Cluster slots) lives in its own test file.
 */
import { randomUUID } from 'node:crypto';
import type { Test } from 'tap';
import type { StreamFrame } from '../../src/protocol/types.js';
import type { GenerationLease, MemoryStore, NewMemory } from '../../src/memory/store.js';
import type { SessionData, Turn } from '../../src/session/types.js';

export interface StoreHarness {
  readonly store: MemoryStore;
  /** A second store on the same data (Redis: another client); the same store when a backend has only one. */
  readonly peer: MemoryStore;
  /** A new store on the same backend, closed by the harness at teardown. */
  make(): Promise<MemoryStore>;
  /** Ms left before each of the session's records expires (Redis: PTTL of each key that exists); [] when none is held. */
  expiries(session: string): Promise<number[]>;
  /** Lets `ms` pass: a fake clock moves, or real time is waited out. */
  advance(ms: number): Promise<void>;
}

export const sid = (name: string) => `${name}-${randomUUID()}`;

export function header(id: string, over: Partial<SessionData> = {}): SessionData {
  return {
    id,
    createdAt: 1_700_000_000_000,
    lastActive: 1_700_000_001_000,
    states: { alice: 'calm', bob: 'wary' },
    traits: { alice: { warmth: 0.25, trust: -3 } },
    turns: [],
    userTurns: 2,
    ...over,
  };
}

export function turn(i: number): Turn {
  const base = { id: `m${i}`, character: 'alice', text: `turn ${i}: ünïcødé ✓ 🐉`, at: 1_700_000_000_000 + i, tokens: 5 + i };
  return i % 2 === 0 ? { ...base, role: 'user' } : { ...base, role: 'assistant', seq: 10 * i, finish: 'stop' };
}

export function vector(i: number, dim = 8): Float32Array {
  return Float32Array.from({ length: dim }, (_, j) => Math.sin(i * 31 + j) / (j + 1));
}

export function memory(i: number, dim = 8): NewMemory {
  return { kind: i % 3 === 0 ? 'event' : 'turn', character: 'alice', text: `memory ${i}`, at: 1_700_000_000_000 + i, weight: (i % 10) / 10, turnId: `m${i}`, vector: vector(i, dim) };
}

export function frame(seq: number): StreamFrame {
  if (seq % 5 === 0) return { t: 'done', seq, id: 'r1', text: `reply ${seq}`, state: 'calm', usage: { prompt_tokens: 12, completion_tokens: seq }, finish: 'stop' };
  return { t: 'token', seq, id: 'r1', text: `tok${seq} ✓` };
}

export function lease(node: string, id = 'r1'): GenerationLease {
  return { id, character: 'alice', node, startSeq: 7 };
}

const TTL = 600;
const range = (from: number, to: number) => Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
const bytes = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength);

/** Every value within (expected - 10 s, expected] and all within 50 ms of each other (the session expires as a whole). */
function expiresTogether(t: Test, values: number[], expectedMs: number, what: string): void {
  t.ok(values.length > 0, `${what}: records are held`);
  t.ok(values.every((v) => v > expectedMs - 10_000 && v <= expectedMs), `${what}: every expiry is about ${expectedMs} ms (${values.join(', ')})`);
  t.ok(Math.max(...values) - Math.min(...values) <= 50, `${what}: all records expire together (${values.join(', ')})`);
}

export function runStoreSuite(t: Test, h: StoreHarness): void {
  const { store, peer } = h;

  t.test('an unknown session reads as empty', async (t) => {
    const s = sid('unknown');
    t.equal(await store.load(s), undefined);
    t.same(await store.memories(s, 0), []);
    t.same(await store.framesSince(s, 0), { frames: [], oldestSeq: undefined, lastSeq: 0 });
    t.equal(await store.generation(s), undefined);
    t.equal(await store.renewGeneration(s, lease('n1'), 1000), false);
    await store.releaseGeneration(s, lease('n1'));
    await store.delete(s);
    t.same(await h.expiries(s), [], 'reading created nothing');
  });

  t.test('the header round-trips and save replaces it', async (t) => {
    const s = sid('header');
    const data = header(s);
    await store.save(data, TTL);
    t.same(await store.load(s), data);
    t.same(await peer.load(s), data, 'another store instance sees it');

    // What the caller holds is not the stored copy.
    data.states.alice = 'changed';
    data.traits!.alice!.warmth = 99;
    const loaded = (await store.load(s))!;
    t.equal(loaded.states.alice, 'calm', 'mutating the saved object changes nothing');
    t.equal(loaded.traits!.alice!.warmth, 0.25);
    loaded.states.bob = 'mutated';
    t.equal((await store.load(s))!.states.bob, 'wary', 'mutating a loaded object changes nothing');

    const next = header(s, { lastActive: 1_800_000_000_000, states: { alice: 'angry' }, traits: undefined, userTurns: 9 });
    delete next.traits;
    await store.save(next, TTL);
    const replaced = (await store.load(s))!;
    t.same(replaced, next, 'save replaces the whole header');
    t.notOk('traits' in replaced, 'a header without traits comes back without them');
  });

  t.test('turns are appended, kept in order and trimmed to maxTurns', async (t) => {
    const s = sid('turns');
    await store.appendTurns(s, [turn(0)], 5, TTL);
    t.equal(await store.load(s), undefined, 'a session is loaded only once its header is saved');
    await store.save(header(s), TTL);
    t.same((await store.load(s))!.turns, [turn(0)], 'turns appended before the header are kept');
    await store.appendTurns(s, [turn(1)], 5, TTL);
    await store.appendTurns(s, [turn(2), turn(3)], 5, TTL);
    t.same((await store.load(s))!.turns, range(0, 3).map(turn));
    await store.appendTurns(s, range(4, 7).map(turn), 5, TTL);
    t.same((await store.load(s))!.turns, range(3, 7).map(turn), 'the newest 5, oldest first');
    await store.save(header(s, { userTurns: 4 }), TTL);
    t.same((await store.load(s))!.turns, range(3, 7).map(turn), 'save leaves the turns alone');
    await store.appendTurns(s, [], 5, TTL);
    t.same((await store.load(s))!.turns, range(3, 7).map(turn), 'appending nothing changes nothing');
    await store.appendTurns(s, range(8, 20).map(turn), 3, TTL);
    t.same((await store.load(s))!.turns, range(18, 20).map(turn), 'a batch longer than maxTurns keeps its newest');
  });

  t.test('memories keep their vectors bit-exact and get increasing ids', async (t) => {
    const s = sid('memories');
    const special = new Float32Array([NaN, -0, 0, Infinity, -Infinity, 1.4e-45, 3.4028234663852886e38, -Math.PI, 1 / 3, 0]);
    new Uint32Array(special.buffer)[9] = 0x7fc12345; // a NaN with a payload
    const backing = new Float32Array(20).fill(7);
    const view = backing.subarray(4, 12); // a view at an offset: only its 8 values count
    view.set(vector(2));
    const { turnId: _turnId, ...noTurn } = memory(3, 3);
    const items: NewMemory[] = [{ ...memory(1), vector: special }, { ...memory(2), vector: view }, noTurn];

    const added = await store.addMemories(s, items, 100, TTL);
    t.same(added.map((m) => m.id), [1, 2, 3], 'ids from 1, in order');
    const held = await store.memories(s, 0);
    t.same(held.map((m) => m.id), [1, 2, 3]);
    for (const [i, m] of held.entries()) {
      t.ok(m.vector instanceof Float32Array, `memory ${m.id}: vector is a Float32Array`);
      t.ok(bytes(m.vector).equals(bytes(items[i]!.vector)), `memory ${m.id}: vector bit-exact`);
      t.same({ ...m, vector: undefined }, { ...items[i], id: m.id, vector: undefined }, `memory ${m.id}: fields`);
    }
    t.notOk('turnId' in held[2]!, 'a memory without turnId comes back without it');
    t.ok(bytes(added[0]!.vector).equals(bytes(special)), 'the returned memories carry their vectors');

    // Copies both ways.
    special[1] = 42;
    held[1]!.vector[0] = 42;
    const again = await peer.memories(s, 0);
    t.ok(Object.is(again[0]!.vector[1], -0), 'mutating a passed vector changes nothing');
    t.not(again[1]!.vector[0], 42, 'mutating a returned vector changes nothing');

    t.same((await store.memories(s, 2)).map((m) => m.id), [3], 'afterId');
    t.same(await store.memories(s, 3), [], 'afterId at the last id');
    t.same(await store.memories(s, 99), [], 'afterId beyond the last id');
    t.same((await store.memories(s, -5)).map((m) => m.id), [1, 2, 3], 'a negative afterId reads all');
    t.same((await store.memories(s, 1.5)).map((m) => m.id), [2, 3], 'a fractional afterId is floored');
    t.same((await store.addMemories(s, [memory(4), memory(5)], 100, TTL)).map((m) => m.id), [4, 5], 'ids continue');
    t.same(await store.addMemories(s, [], 100, TTL), [], 'adding nothing');
    t.same((await store.memories(s, 0)).map((m) => m.id), [1, 2, 3, 4, 5]);
  });

  t.test('memories are trimmed to maxMemories, oldest first', async (t) => {
    const s = sid('memtrim');
    await store.addMemories(s, range(1, 3).map((i) => memory(i)), 5, TTL);
    await store.addMemories(s, range(4, 7).map((i) => memory(i)), 5, TTL);
    const held = await store.memories(s, 0);
    t.same(held.map((m) => m.id), range(3, 7));
    t.same(held.map((m) => m.text), range(3, 7).map((i) => `memory ${i}`), 'the right memories under their ids');
    const batch = await store.addMemories(s, range(8, 15).map((i) => memory(i)), 5, TTL);
    t.same(batch.map((m) => m.id), range(8, 15), 'a batch longer than maxMemories gets all its ids');
    t.same((await store.memories(s, 0)).map((m) => m.id), range(11, 15), 'and only the newest are kept');
    await store.addMemories(s, [memory(16)], 2, TTL);
    t.same((await store.memories(s, 0)).map((m) => m.id), [15, 16], 'a smaller maxMemories trims further');
    t.same((await store.memories(s, 10)).map((m) => m.id), [15, 16], 'afterId below the oldest kept');
  });

  t.test('memories are read in pages with a limit', async (t) => {
    const s = sid('mempage');
    await store.addMemories(s, range(1, 7).map((i) => memory(i)), 5, TTL);
    t.same((await store.memories(s, 0, 2)).map((m) => m.id), [3, 4], 'the first page starts at the oldest kept');
    t.same((await store.memories(s, 4, 2)).map((m) => m.id), [5, 6]);
    t.same((await store.memories(s, 6, 2)).map((m) => m.id), [7], 'the last page is short');
    t.same(await store.memories(s, 7, 2), [], 'then empty');
    t.same((await store.memories(s, 0, 100)).map((m) => m.id), range(3, 7), 'a limit above the count reads all');
    await t.rejects(store.memories(s, 0, 0), /limit/, 'limit 0 is refused');
  });

  t.test('frames: append, read since a seq, trim to maxFrames', async (t) => {
    const s = sid('frames');
    await store.appendFrames(s, range(1, 3).map(frame), 10, TTL);
    t.same(await store.framesSince(s, 0), { frames: range(1, 3).map(frame), oldestSeq: 1, lastSeq: 3 });
    t.same(await store.framesSince(s, 2), { frames: [frame(3)], oldestSeq: 1, lastSeq: 3 });
    t.same(await store.framesSince(s, 3), { frames: [], oldestSeq: 1, lastSeq: 3 }, 'caught up');
    t.same(await store.framesSince(s, 99), { frames: [], oldestSeq: 1, lastSeq: 3 }, 'after beyond the last seq');
    t.same(await store.framesSince(s, -1), { frames: range(1, 3).map(frame), oldestSeq: 1, lastSeq: 3 }, 'a negative after reads all');

    await store.appendFrames(s, range(4, 12).map(frame), 5, TTL);
    const all = await peer.framesSince(s, 0);
    t.same(all.frames.map((f) => f.seq), range(8, 12), 'the newest 5');
    t.same(all.frames, range(8, 12).map(frame), 'frames round-trip (done frames with usage included)');
    t.equal(all.oldestSeq, 8);
    t.equal(all.lastSeq, 12);
    t.same((await store.framesSince(s, 9)).frames.map((f) => f.seq), [10, 11, 12]);
    t.same((await store.framesSince(s, 2)).frames.map((f) => f.seq), range(8, 12), 'after below the oldest kept: what is kept');

    await store.appendFrames(s, [frame(11), frame(12), frame(13)], 5, TTL);
    t.same((await store.framesSince(s, 0)).frames.map((f) => f.seq), range(9, 13), 'seqs already held are skipped (a retried write)');
    await store.appendFrames(s, [], 5, TTL);
    t.equal((await store.framesSince(s, 0)).lastSeq, 13, 'appending nothing');
    await store.appendFrames(s, [frame(14)], 1, TTL);
    t.same(await store.framesSince(s, 0), { frames: [frame(14)], oldestSeq: 14, lastSeq: 14 }, 'maxFrames 1');
  });

  t.test('frames are copies', async (t) => {
    const s = sid('framecopy');
    const f = { t: 'token', seq: 1, id: 'r', text: 'a' } as StreamFrame & { text: string };
    await store.appendFrames(s, [f], 10, TTL);
    f.text = 'changed';
    const [got] = (await store.framesSince(s, 0)).frames as (StreamFrame & { text: string })[];
    t.equal(got!.text, 'a', 'mutating an appended frame changes nothing');
    got!.text = 'mutated';
    t.equal(((await store.framesSince(s, 0)).frames[0] as { text: string }).text, 'a', 'mutating a returned frame changes nothing');
  });

  t.test('the generation lease: claim, renew, release', async (t) => {
    const s = sid('lease');
    const a = lease('node-a');
    t.equal(await store.claimGeneration(s, a, 30_000), true, 'a free lease is taken');
    t.same(await peer.generation(s), a, 'every store sees the holder');
    t.equal(await peer.claimGeneration(s, lease('node-b'), 30_000), false, 'another node cannot take it');
    t.equal(await store.claimGeneration(s, a, 30_000), true, 'the holder may claim again');
    t.equal(await peer.renewGeneration(s, lease('node-b'), 30_000), false, 'renew by another node fails');
    t.equal(await peer.renewGeneration(s, lease('node-a', 'r2'), 30_000), false, 'renew for another reply fails');
    t.equal(await peer.renewGeneration(s, a, 30_000), true, 'renew by the holder (from any store instance)');
    await peer.releaseGeneration(s, lease('node-b'));
    t.same(await store.generation(s), a, 'release by another node does nothing');
    await store.releaseGeneration(s, a);
    t.equal(await store.generation(s), undefined, 'released');
    t.equal(await store.renewGeneration(s, a, 30_000), false, 'a released lease cannot be renewed');
    t.equal(await peer.claimGeneration(s, lease('node-b'), 30_000), true, 'then another node takes it');
    t.same(await store.generation(s), lease('node-b'));
    t.equal(await store.load(s), undefined, 'a lease alone is no session');
  });

  t.test('the holding node may take its lease over for a newer reply', async (t) => {
    const s = sid('leasenext');
    const a = lease('node-a');
    const next = lease('node-a', 'r2');
    t.equal(await store.claimGeneration(s, a, 30_000), true);
    t.equal(await peer.claimGeneration(s, next, 30_000), true, 'same node, newer reply');
    t.same(await store.generation(s), next, 'the newer reply holds it');
    t.equal(await store.renewGeneration(s, a, 30_000), false, 'the older reply can no longer renew it');
    await store.releaseGeneration(s, a);
    t.same(await store.generation(s), next, 'nor release it');
    t.equal(await peer.claimGeneration(s, lease('node-b', 'r2'), 30_000), false, 'another node still cannot take it');
    await store.releaseGeneration(s, next);
    t.equal(await store.generation(s), undefined);
  });

  t.test('a lease expires after leaseMs unless renewed', async (t) => {
    const s = sid('leasettl');
    const a = lease('node-a');
    t.equal(await store.claimGeneration(s, a, 1000), true);
    await h.advance(600);
    t.equal(await store.renewGeneration(s, a, 1000), true, 'renewed before expiry');
    await h.advance(600);
    t.same(await store.generation(s), a, 'still held 1200 ms after the claim: the renewal counted');
    await h.advance(600);
    t.equal(await store.generation(s), undefined, 'expired');
    t.equal(await store.renewGeneration(s, a, 1000), false, 'an expired lease cannot be renewed');
    t.equal(await peer.claimGeneration(s, lease('node-b'), 1000), true, 'another node takes it');
  });

  t.test('delete removes every record of the session', async (t) => {
    const s = sid('delete');
    await store.save(header(s), TTL);
    await store.appendTurns(s, [turn(1)], 10, TTL);
    await store.addMemories(s, [memory(1), memory(2)], 10, TTL);
    await store.appendFrames(s, [frame(1), frame(2)], 10, TTL);
    await store.claimGeneration(s, lease('node-a'), 30_000);
    await peer.delete(s);
    t.equal(await store.load(s), undefined);
    t.same(await store.memories(s, 0), []);
    t.same(await store.framesSince(s, 0), { frames: [], oldestSeq: undefined, lastSeq: 0 });
    t.equal(await store.generation(s), undefined);
    t.same(await h.expiries(s), [], 'no record is left');
    t.same((await store.addMemories(s, [memory(3)], 10, TTL)).map((m) => m.id), [1], 'memory ids start again');
    await store.appendFrames(s, [frame(1)], 10, TTL);
    t.equal((await store.framesSince(s, 0)).lastSeq, 1, 'frame seqs start again');
  });

  t.test('every write sets the TTL of all the session records, never shortening it', async (t) => {
    const s = sid('ttl');
    await store.save(header(s), TTL);
    expiresTogether(t, await h.expiries(s), 600_000, 'after save');
    await store.appendTurns(s, [turn(1)], 10, 300);
    expiresTogether(t, await h.expiries(s), 600_000, 'a shorter TTL keeps the longer one, for new records too');
    await store.addMemories(s, [memory(1)], 10, 900);
    expiresTogether(t, await h.expiries(s), 900_000, 'a longer TTL extends every record');
    await store.appendFrames(s, [frame(1)], 10, 60);
    expiresTogether(t, await h.expiries(s), 900_000, 'after appendFrames with a shorter TTL');
    await store.save(header(s), 300);
    expiresTogether(t, await h.expiries(s), 900_000, 'after save with a shorter TTL');
    await store.claimGeneration(s, lease('node-a'), 5_000);
    expiresTogether(t, await h.expiries(s), 900_000, 'the lease has its own expiry');
  });

  t.test('records expire together after their TTL', async (t) => {
    const s = sid('expire');
    await store.save(header(s), 0.4);
    await store.appendTurns(s, [turn(1)], 10, 0.8);
    await store.addMemories(s, [memory(1)], 10, 0.4);
    await store.appendFrames(s, [frame(1)], 10, 0.4);
    await h.advance(500);
    const live = await store.load(s);
    t.same(live?.turns, [turn(1)], 'alive after 500 ms: the 0.8 s write extended the 0.4 s ones');
    t.equal((await store.memories(s, 0)).length, 1);
    t.equal((await store.framesSince(s, 0)).lastSeq, 1);
    await h.advance(500);
    t.equal(await store.load(s), undefined, 'gone after 1000 ms');
    t.same(await store.memories(s, 0), []);
    t.same(await store.framesSince(s, 0), { frames: [], oldestSeq: undefined, lastSeq: 0 });
    t.same(await h.expiries(s), []);
  });

  t.test('sessions are isolated from each other', async (t) => {
    const [s1, s2] = [sid('iso1'), sid('iso2')];
    await store.save(header(s1, { userTurns: 1 }), TTL);
    await store.save(header(s2, { userTurns: 2 }), TTL);
    await store.appendTurns(s1, [turn(1)], 10, TTL);
    await store.appendTurns(s2, [turn(2), turn(3)], 10, TTL);
    t.same((await store.addMemories(s1, [memory(1)], 10, TTL)).map((m) => m.id), [1]);
    t.same((await store.addMemories(s2, [memory(2), memory(3)], 10, TTL)).map((m) => m.id), [1, 2], 'ids are per session');
    await store.appendFrames(s1, [frame(1)], 10, TTL);
    await store.appendFrames(s2, [frame(1), frame(2)], 10, TTL);
    await store.claimGeneration(s1, lease('node-a'), 30_000);
    t.equal(await store.claimGeneration(s2, lease('node-b'), 30_000), true, 'leases are per session');

    t.equal((await store.load(s1))!.userTurns, 1);
    t.same((await store.load(s1))!.turns, [turn(1)]);
    t.same((await store.load(s2))!.turns, [turn(2), turn(3)]);
    t.same((await store.memories(s2, 0)).map((m) => m.text), ['memory 2', 'memory 3']);
    t.equal((await store.framesSince(s1, 0)).lastSeq, 1);
    t.equal((await store.framesSince(s2, 0)).lastSeq, 2);

    await store.delete(s1);
    t.equal(await store.load(s1), undefined);
    t.same((await store.load(s2))!.turns, [turn(2), turn(3)], 'deleting one leaves the other');
    t.same(await store.generation(s2), lease('node-b'));
  });

  t.test('concurrent writes from two store instances are all kept', async (t) => {
    const s = sid('concurrent');
    await store.save(header(s), TTL);
    const writers = [store, peer];
    await Promise.all(range(0, 39).map((i) => writers[i % 2]!.appendTurns(s, [turn(i)], 100, TTL)));
    const turns = (await store.load(s))!.turns;
    t.equal(turns.length, 40, 'no turn lost');
    t.same(new Set(turns.map((x) => x.id)), new Set(range(0, 39).map((i) => `m${i}`)));

    const batches = await Promise.all(range(0, 19).map((i) => writers[i % 2]!.addMemories(s, [memory(2 * i), memory(2 * i + 1)], 100, TTL)));
    const ids = batches.flatMap((b) => b.map((m) => m.id)).sort((a, b) => a - b);
    t.same(ids, range(1, 40), 'every memory got its own id');
    for (const batch of batches) t.equal(batch[1]!.id, batch[0]!.id + 1, 'a batch gets consecutive ids');
    const held = await peer.memories(s, 0);
    t.same(held.map((m) => m.id), range(1, 40), 'no memory lost');
    const byId = new Map(batches.flat().map((m) => [m.id, m.text]));
    t.ok(held.every((m) => byId.get(m.id) === m.text), 'each memory is stored under the id it was given');
  });

  t.test('invalid arguments reject with RangeError and write nothing', async (t) => {
    const s = sid('invalid');
    const checks: [string, () => Promise<unknown>, RegExp][] = [
      ['empty session id', () => store.load(''), /session id/],
      ['save without id', () => store.save(header(''), TTL), /session id/],
      ['ttlS 0', () => store.save(header(s), 0), /ttlS/],
      ['ttlS NaN', () => store.appendTurns(s, [turn(1)], 10, NaN), /ttlS/],
      ['maxTurns 0', () => store.appendTurns(s, [turn(1)], 0, TTL), /maxTurns/],
      ['maxMemories 1.5', () => store.addMemories(s, [memory(1)], 1.5, TTL), /maxMemories/],
      ['vector not a Float32Array', () => store.addMemories(s, [{ ...memory(1), vector: [1, 2] as unknown as Float32Array }], 10, TTL), /vector/],
      ['maxFrames -1', () => store.appendFrames(s, [frame(1)], -1, TTL), /maxFrames/],
      ['frame seq 0', () => store.appendFrames(s, [frame(0)], 10, TTL), /seq/],
      ['frame seq 2.5', () => store.appendFrames(s, [frame(1), { ...frame(2), seq: 2.5 }], 10, TTL), /seq/],
      ['afterId NaN', () => store.memories(s, NaN), /afterId/],
      ['after NaN', () => store.framesSince(s, NaN), /after/],
      ['leaseMs 0', () => store.claimGeneration(s, lease('n'), 0), /leaseMs/],
      ['lease without node', () => store.claimGeneration(s, lease(''), 1000), /lease\.node/],
      ['lease without id', () => store.renewGeneration(s, lease('n', ''), 1000), /lease\.id/],
    ];
    for (const [what, call, message] of checks) await t.rejects(call(), { name: 'RangeError', message }, what);
    t.equal(await store.load(s), undefined);
    t.same(await store.memories(s, 0), []);
    t.same(await store.framesSince(s, 0), { frames: [], oldestSeq: undefined, lastSeq: 0 });
    t.equal(await store.generation(s), undefined);
    t.same(await h.expiries(s), [], 'nothing was written');
  });

  t.test('a closed store rejects every call with ERR_STORE_UNAVAILABLE', async (t) => {
    const closed = await h.make();
    const s = sid('closed');
    await closed.save(header(s), TTL);
    t.equal(closed.status, 'ready');
    await closed.close();
    t.equal(closed.status, 'down', 'a closed store is down');
    await closed.close(); // twice is fine
    const calls: [string, () => Promise<unknown>][] = [
      ['load', () => closed.load(s)],
      ['save', () => closed.save(header(s), TTL)],
      ['appendTurns', () => closed.appendTurns(s, [turn(1)], 10, TTL)],
      ['delete', () => closed.delete(s)],
      ['addMemories', () => closed.addMemories(s, [memory(1)], 10, TTL)],
      ['memories', () => closed.memories(s, 0)],
      ['appendFrames', () => closed.appendFrames(s, [frame(1)], 10, TTL)],
      ['framesSince', () => closed.framesSince(s, 0)],
      ['claimGeneration', () => closed.claimGeneration(s, lease('n'), 1000)],
      ['renewGeneration', () => closed.renewGeneration(s, lease('n'), 1000)],
      ['releaseGeneration', () => closed.releaseGeneration(s, lease('n'))],
      ['generation', () => closed.generation(s)],
    ];
    for (const [what, call] of calls) await t.rejects(call(), { name: 'NpcdError', code: 'ERR_STORE_UNAVAILABLE', message: /closed/ }, what);
  });
}
