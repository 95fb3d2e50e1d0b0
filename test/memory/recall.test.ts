/**
 * Memory recall for real: MemoryRecall over the in-process store with the
 * embedded `glove` embedder (paraphrases found first; k, minScore, the
 * character filter, excluded turns, sessions kept apart, maxMemories, the
 * index built lazily and kept up to date, dropped and rebuilt, evicted least
 * recently used first; an embedder failure rejects and leaves the state
 * usable), then through the whole server: a fact told early comes back as a
 * memories system message (after the lore, before the state line) once it
 * has left the recent turns, nothing comes back with recall off, the recall
 * histogram counts each turn, and a key event lengthens the session's TTL.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { ServeConfig } from '../../src/config/serve.js';
import { NpcdError } from '../../src/errors.js';
import { createLogger } from '../../src/log.js';
import { createEmbedder, type Embedder } from '../../src/memory/embed/index.js';
import { embeddingError } from '../../src/memory/embed/types.js';
import { InProcessMemoryStore } from '../../src/memory/in-process.js';
import { DEFAULT_RECALL, MemoryRecall, type RecallOptions, type Remembered } from '../../src/memory/recall.js';
import type { Memory, MemoryStore } from '../../src/memory/store.js';
import { INTENT_WEIGHT_S } from '../../src/memory/ttl.js';
import { nativeLoadError } from '../../src/native/index.js';
import { type FakeUpstream, startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { getJson, testServer, type TestServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const MB = 1024 * 1024;
const TTL_S = 3600;
const log = createLogger('silent');

const glove = createEmbedder('glove');
await glove.init();
t.teardown(() => glove.close());

/** Exact indexes in plain JS, and in the native module when it loads (the server's default). */
const BACKENDS = nativeLoadError() ? [{ native: false }] : [{ native: false }, { native: true }];

// Memories and questions that paraphrase them with few shared words (from paraphrase.json).
const DRAGON = 'A dragon burned the village three years ago.';
const PRINCESS = 'The princess ran away from the castle to avoid an arranged marriage.';
const LUTE = 'The user is learning to play the lute from a wandering bard.';
const BANDITS = 'Bandits attacked the caravan on the mountain road at night.';
const SNOW = 'Snow blocked the mountain pass for the whole winter.';
const ASK_DRAGON = 'What destroyed that town with fire long ago?';
const ASK_PRINCESS = "Why did the king's daughter flee her palace home?";
const ASK_LUTE = 'Who is teaching me a musical instrument?';
const ASK_SNOW = 'Why could nobody cross the peaks during the cold months?';
const ASK_BANDITS = 'When were the wagons ambushed by robbers in the hills?';
const ALL = [DRAGON, PRINCESS, LUTE, BANDITS, SNOW];

const NONE: ReadonlySet<string> = new Set();

function cosine(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

/** A store whose memories() calls are recorded: afterId 0 means an index was (re)built. */
class SpyStore extends InProcessMemoryStore {
  readonly reads: { session: string; afterId: number }[] = [];
  override async memories(session: string, afterId: number, limit?: number): Promise<Memory[]> {
    this.reads.push({ session, afterId });
    return super.memories(session, afterId, limit);
  }
}

function setup(t: Test, backend: { native: boolean }, options: Partial<RecallOptions> = {}, embedder: Embedder = glove) {
  const store = new SpyStore({ budgetBytes: 64 * MB, sweepIntervalMs: 0 });
  t.teardown(() => store.close());
  const recall = new MemoryRecall(store, embedder, backend, { ...DEFAULT_RECALL, ...options }, log);
  return { store, recall };
}

const item = (text: string, turnId?: string, character = 'mara', kind: Remembered['kind'] = 'turn'): Remembered => ({ kind, character, text, weight: 0, ...(turnId === undefined ? {} : { turnId }) });

/** Remembers each text as its own turn (t1, t2, ...), one call each, like the engine does. */
async function rememberAll(recall: MemoryRecall, session: string, texts: readonly string[], character = 'mara', prefix = 't'): Promise<void> {
  for (const [i, text] of texts.entries()) await recall.remember(session, [item(text, `${prefix}${i + 1}`, character)], TTL_S);
}

/** What another node does: embeds and stores memories straight into the shared store. */
async function storeDirectly(store: MemoryStore, session: string, texts: readonly string[], character = 'mara', maxMemories = DEFAULT_RECALL.maxMemories): Promise<Memory[]> {
  const vectors = await glove.embed(texts);
  return store.addMemories(session, texts.map((text, i) => ({ kind: 'turn', character, text, weight: 0, at: Date.now(), vector: vectors[i]! })), maxMemories, TTL_S);
}

const texts = (found: readonly { text: string }[]) => found.map((m) => m.text);

for (const backend of BACKENDS) {
  const name = backend.native ? 'native' : 'js';

  t.test(`[${name}] the memory a message paraphrases comes first, best first, with its cosine similarity`, async (t) => {
    const { recall } = setup(t, backend);
    await rememberAll(recall, 's1', ALL);
    for (const [question, memory] of [[ASK_DRAGON, DRAGON], [ASK_PRINCESS, PRINCESS], [ASK_LUTE, LUTE], [ASK_SNOW, SNOW], [ASK_BANDITS, BANDITS]] as const) {
      const found = await recall.recall('s1', 'mara', question, NONE);
      t.ok(found.length >= 1 && found.length <= DEFAULT_RECALL.k, `${found.length} recalled for ${JSON.stringify(question)}`);
      t.equal(found[0]?.text, memory, `${JSON.stringify(question)} recalls ${JSON.stringify(memory)} first`);
      for (let i = 1; i < found.length; i++) t.ok(found[i - 1]!.score >= found[i]!.score, 'best first');
      t.ok(found.every((m) => m.score >= DEFAULT_RECALL.minScore), 'every score reaches minScore');
      const [q, m] = await glove.embed([question, memory]);
      t.ok(Math.abs(found[0]!.score - cosine(q!, m!)) < 1e-4, `score ${found[0]!.score.toFixed(4)} is the cosine similarity`);
      t.match(found[0], { kind: 'turn', turnId: `t${ALL.indexOf(memory) + 1}` });
    }
    t.same(await recall.recall('s1', 'mara', '   ', NONE), [], 'a blank message recalls nothing');
  });

  t.test(`[${name}] at most k memories`, async (t) => {
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', ALL);
    t.equal((await recall.recall('s1', 'mara', ASK_DRAGON, NONE)).length, ALL.length, 'k 10, minScore -1: all five');
    for (const k of [1, 2, 3]) {
      const limited = new MemoryRecall(store, glove, backend, { ...DEFAULT_RECALL, k, minScore: -1 }, log);
      const found = await limited.recall('s1', 'mara', ASK_DRAGON, NONE);
      t.equal(found.length, k, `k ${k}`);
      t.equal(found[0]!.text, DRAGON);
    }
    // k 0: recall is off; it does not even embed the message.
    let calls = 0;
    const counting: Embedder = { name: 'counting', dim: glove.dim, init: async () => {}, close: async () => {}, embed: (x, s) => (calls++, glove.embed(x, s)) };
    const off = new MemoryRecall(store, counting, backend, { ...DEFAULT_RECALL, k: 0 }, log);
    t.same(await off.recall('s1', 'mara', ASK_DRAGON, NONE), []);
    t.equal(calls, 0, 'k 0 embeds nothing');
    t.equal(off.indexedSessions, 0, 'k 0 builds no index');
  });

  t.test(`[${name}] only memories scoring at least minScore`, async (t) => {
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', ALL);
    const all = await recall.recall('s1', 'mara', ASK_DRAGON, NONE);
    t.equal(all.length, 5);
    const between = (all[0]!.score + all[1]!.score) / 2;
    const strict = new MemoryRecall(store, glove, backend, { ...DEFAULT_RECALL, k: 10, minScore: between }, log);
    t.same(texts(await strict.recall('s1', 'mara', ASK_DRAGON, NONE)), [DRAGON], `minScore ${between.toFixed(3)}: only the best`);
    const exact = new MemoryRecall(store, glove, backend, { ...DEFAULT_RECALL, k: 10, minScore: all[2]!.score }, log);
    t.equal((await exact.recall('s1', 'mara', ASK_DRAGON, NONE)).length, 3, 'a score equal to minScore counts');
    const none = new MemoryRecall(store, glove, backend, { ...DEFAULT_RECALL, k: 10, minScore: 0.99 }, log);
    t.same(await none.recall('s1', 'mara', ASK_DRAGON, NONE), [], 'minScore 0.99: nothing');
  });

  t.test(`[${name}] only the memories of the character spoken to`, async (t) => {
    const { recall } = setup(t, backend, { minScore: -1 });
    await recall.remember('s1', [item(DRAGON, 't1', 'sven'), item(PRINCESS, 't2', 'mara'), item(LUTE, 't3', 'mara')], TTL_S);
    const mara = await recall.recall('s1', 'mara', ASK_DRAGON, NONE);
    t.same(texts(mara).sort(), [LUTE, PRINCESS].sort(), 'mara does not recall what sven was told');
    t.same(texts(await recall.recall('s1', 'sven', ASK_DRAGON, NONE)), [DRAGON], 'sven does');
    t.same(await recall.recall('s1', 'nobody', ASK_DRAGON, NONE), [], 'a character with no memories recalls none');
  });

  t.test(`[${name}] a character's best match is found however many closer memories other characters have`, async (t) => {
    // Exact search "never misses the best match" (recall.ts) and "only memories of the character being spoken to
    // are recalled" (docs/memory.md): other characters' memories must not crowd the character's own out.
    const { recall } = setup(t, backend, { k: 1 });
    await recall.remember('s1', [item(DRAGON, 't0', 'mara')], TTL_S);
    // The user asked sven the very question, again and again: each of those memories scores 1.
    await recall.remember('s1', Array.from({ length: 6 }, (_, i) => item(ASK_DRAGON, `s${i}`, 'sven')), TTL_S);
    t.same(texts(await recall.recall('s1', 'sven', ASK_DRAGON, NONE)), [ASK_DRAGON]);
    const found = await recall.recall('s1', 'mara', ASK_DRAGON, NONE);
    t.same(texts(found), [DRAGON], 'mara recalls her own memory, although sven has six closer ones');
  });

  t.test(`[${name}] memories of excluded turns are skipped`, async (t) => {
    const { recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', ALL);
    await recall.remember('s1', [item('A dragon burned the town long ago.')], TTL_S); // no turn: never excluded
    const found = await recall.recall('s1', 'mara', ASK_DRAGON, new Set(['t1', 't2']));
    t.notOk(texts(found).includes(DRAGON), 'the excluded turn t1 is not recalled');
    t.notOk(texts(found).includes(PRINCESS), 'nor t2');
    t.equal(found[0]!.text, 'A dragon burned the town long ago.', 'a memory without a turn is');
    t.same(texts(found).sort(), [LUTE, BANDITS, SNOW, 'A dragon burned the town long ago.'].sort());
    t.same(await recall.recall('s1', 'mara', ASK_DRAGON, new Set(['t1', 't2', 't3', 't4', 't5', 'nope'])).then(texts), ['A dragon burned the town long ago.']);
  });

  t.test(`[${name}] excluded turns holding several memories each do not crowd out the rest`, async (t) => {
    // The engine stores up to three memories per turn (message, reply, key event), all under the turn's id.
    const { recall } = setup(t, backend, { k: 1 });
    await recall.remember('s1', [item(DRAGON, 'old')], TTL_S);
    // The user asked the very question in the two latest turns (excluded: they are in the prompt).
    for (const turn of ['r1', 'r2']) {
      await recall.remember('s1', [item(ASK_DRAGON, turn), item(`${ASK_DRAGON} Fire, it was.`, turn), item(`${ASK_DRAGON} → Fire, it was.`, turn, 'mara', 'event')], TTL_S);
    }
    t.same(texts(await recall.recall('s1', 'mara', ASK_DRAGON, new Set(['r1', 'r2']))), [DRAGON], 'the older turn is recalled');
  });

  t.test(`[${name}] sessions are kept apart`, async (t) => {
    const { recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 'a', [DRAGON, LUTE]);
    await rememberAll(recall, 'b', [PRINCESS, SNOW]);
    t.same(texts(await recall.recall('b', 'mara', ASK_DRAGON, NONE)).sort(), [PRINCESS, SNOW].sort(), 'b recalls only its own');
    t.same(texts(await recall.recall('a', 'mara', ASK_DRAGON, NONE)), [DRAGON, LUTE]);
    t.same(await recall.recall('c', 'mara', ASK_DRAGON, NONE), [], 'an unknown session recalls nothing');
    t.equal(recall.indexedSessions, 3);
    await recall.remember('a', [item(BANDITS, 't9')], TTL_S);
    t.notOk(texts(await recall.recall('b', 'mara', ASK_BANDITS, NONE)).includes(BANDITS), 'a memory of a does not reach b');
    t.equal((await recall.recall('a', 'mara', ASK_BANDITS, NONE))[0]!.text, BANDITS);
  });

  t.test(`[${name}] at most maxMemories per session, the oldest dropped`, async (t) => {
    // Index built before the memories come (taken as they are stored) ...
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1, maxMemories: 3 });
    t.same(await recall.recall('s1', 'mara', ASK_DRAGON, NONE), [], 'an empty session');
    await rememberAll(recall, 's1', ALL);
    t.same(texts(await recall.recall('s1', 'mara', ASK_DRAGON, NONE)).sort(), [LUTE, BANDITS, SNOW].sort(), 'the newest three');
    t.same((await store.memories('s1', 0)).map((m) => m.text), [LUTE, BANDITS, SNOW], 'the store keeps the same three');
    // ... and built after they came (read from the store).
    await rememberAll(recall, 's2', ALL);
    t.same(texts(await recall.recall('s2', 'mara', ASK_DRAGON, NONE)).sort(), [LUTE, BANDITS, SNOW].sort(), 'built from the store: the newest three');
    // Memories added in one batch larger than maxMemories.
    await recall.remember('s1', ALL.map((text) => item(text)), TTL_S);
    t.same(texts(await recall.recall('s1', 'mara', ASK_PRINCESS, NONE)).sort(), [LUTE, BANDITS, SNOW].sort(), 'a batch of five keeps its last three');
    const strict = new MemoryRecall(store, glove, backend, { ...DEFAULT_RECALL, maxMemories: 3 }, log);
    t.notOk(texts(await strict.recall('s1', 'mara', ASK_DRAGON, NONE)).includes(DRAGON), 'the dropped memory is not recalled even when asked about');
  });

  t.test(`[${name}] the index is built on first recall, then takes memories added later, by this node or another`, async (t) => {
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', [DRAGON, PRINCESS]);
    t.equal(recall.indexedSessions, 0, 'remembering builds no index');
    t.same(store.reads, [], 'nor reads the store');
    t.same(texts(await recall.recall('s1', 'mara', ASK_DRAGON, NONE)), [DRAGON, PRINCESS]);
    t.equal(recall.indexedSessions, 1, 'the first recall built it');
    t.same(store.reads, [{ session: 's1', afterId: 0 }], 'from every memory of the store');

    await recall.remember('s1', [item(LUTE, 't3')], TTL_S);
    t.equal((await recall.recall('s1', 'mara', ASK_LUTE, NONE))[0]?.text, LUTE, 'a memory this node stores is recalled');
    await storeDirectly(store, 's1', [SNOW]);
    t.equal((await recall.recall('s1', 'mara', ASK_SNOW, NONE))[0]?.text, SNOW, 'a memory another node stored is recalled');
    t.ok(store.reads.slice(1).every((r) => r.afterId > 0), 'catching up reads only what is new');
    const all = await recall.recall('s1', 'mara', ASK_DRAGON, NONE);
    t.equal(all.length, 4, 'each memory once');
    t.same(new Set(all.map((m) => m.id)).size, 4);
  });

  t.test(`[${name}] a memory another node stored just before this node stores one is not lost`, async (t) => {
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', [DRAGON]);
    await recall.recall('s1', 'mara', ASK_DRAGON, NONE); // the index exists
    await storeDirectly(store, 's1', [SNOW]); // id 2, by another node
    await recall.remember('s1', [item(LUTE, 't3')], TTL_S); // id 3, by this node: taken at once
    const found = await recall.recall('s1', 'mara', ASK_SNOW, NONE);
    t.same(found.map((m) => m.id).sort(), [1, 2, 3], 'all three memories of the store are searched');
    t.equal(found[0]?.text, SNOW, 'the other node\'s memory is recalled');
  });

  t.test(`[${name}] drop() forgets the index; the next recall rebuilds it from the store`, async (t) => {
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 });
    await rememberAll(recall, 's1', [DRAGON, PRINCESS, LUTE]);
    await rememberAll(recall, 's2', [SNOW]);
    const before = await recall.recall('s1', 'mara', ASK_PRINCESS, NONE);
    await recall.recall('s2', 'mara', ASK_SNOW, NONE);
    t.equal(recall.indexedSessions, 2);
    recall.drop('s1');
    t.equal(recall.indexedSessions, 1, 'dropped');
    recall.drop('s1');
    recall.drop('unknown');
    t.equal(recall.indexedSessions, 1, 'dropping again or an unknown session is harmless');
    await recall.remember('s1', [item(BANDITS, 't4')], TTL_S); // while no index is held
    store.reads.length = 0;
    const after = await recall.recall('s1', 'mara', ASK_PRINCESS, NONE);
    t.same(store.reads, [{ session: 's1', afterId: 0 }], 'rebuilt from the start');
    t.equal(recall.indexedSessions, 2);
    t.same(after.filter((m) => m.text !== BANDITS), before, 'the same memories, the same scores');
    t.equal((await recall.recall('s1', 'mara', ASK_BANDITS, NONE))[0]?.text, BANDITS, 'with the one stored meanwhile');
  });

  t.test(`[${name}] at most maxIndexes sessions hold an index, least recently used evicted first`, async (t) => {
    const { store, recall } = setup(t, backend, { maxIndexes: 2 });
    await rememberAll(recall, 'a', [DRAGON]);
    await rememberAll(recall, 'b', [PRINCESS]);
    await rememberAll(recall, 'c', [LUTE]);
    const ask = async (s: string, question: string) => (await recall.recall(s, 'mara', question, NONE))[0]?.text;
    const rebuilt = () => store.reads.filter((r) => r.afterId === 0).map((r) => r.session);
    t.equal(await ask('a', ASK_DRAGON), DRAGON);
    t.equal(await ask('b', ASK_PRINCESS), PRINCESS);
    t.equal(recall.indexedSessions, 2);
    t.equal(await ask('a', ASK_DRAGON), DRAGON, 'a used again: b is now the least recently used');
    t.equal(await ask('c', ASK_LUTE), LUTE);
    t.equal(recall.indexedSessions, 2, 'c took the place of one');
    t.same(rebuilt(), ['a', 'b', 'c']);
    t.equal(await ask('a', ASK_DRAGON), DRAGON);
    t.same(rebuilt(), ['a', 'b', 'c'], 'a kept its index');
    t.equal(await ask('b', ASK_PRINCESS), PRINCESS, 'b still recalls');
    t.same(rebuilt(), ['a', 'b', 'c', 'b'], 'b was evicted and is rebuilt');
    t.equal(recall.indexedSessions, 2);
    t.equal(await ask('c', ASK_LUTE), LUTE);
    t.same(rebuilt(), ['a', 'b', 'c', 'b', 'c'], 'then c was the least recently used');
  });

  t.test(`[${name}] an embedder failure rejects and leaves recall working`, async (t) => {
    let failing = false;
    let calls = 0;
    const flaky: Embedder = {
      name: 'flaky',
      dim: glove.dim,
      init: async () => {},
      close: async () => {},
      embed: async (x, signal) => {
        calls++;
        if (failing) throw embeddingError('flaky', 'connection refused');
        return glove.embed(x, signal);
      },
    };
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 }, flaky);
    await rememberAll(recall, 's1', [DRAGON, PRINCESS]);

    failing = true;
    const first = await recall.recall('s1', 'mara', ASK_DRAGON, NONE).catch((err: unknown) => err);
    t.ok(first instanceof NpcdError && first.code === 'ERR_EMBEDDING_FAILED', 'recall rejects with ERR_EMBEDDING_FAILED (first recall, index being built)');
    const stored = await recall.remember('s1', [item(LUTE, 't3')], TTL_S).catch((err: unknown) => err);
    t.match(stored, { code: 'ERR_EMBEDDING_FAILED', message: /flaky: connection refused/ }, 'remember rejects');
    t.equal((await store.memories('s1', 0)).length, 2, 'nothing was stored');

    failing = false;
    t.same(texts(await recall.recall('s1', 'mara', ASK_DRAGON, NONE)), [DRAGON, PRINCESS], 'the next recall works');
    failing = true;
    await t.rejects(recall.recall('s1', 'mara', ASK_DRAGON, NONE), { code: 'ERR_EMBEDDING_FAILED' }, 'a failure with the index held');
    failing = false;
    await recall.remember('s1', [item(LUTE, 't3')], TTL_S);
    await storeDirectly(store, 's1', [SNOW]);
    const all = await recall.recall('s1', 'mara', ASK_LUTE, NONE);
    t.equal(all[0]?.text, LUTE);
    t.same(all.map((m) => m.id).sort(), [1, 2, 3, 4], 'every stored memory, once');
    t.equal(recall.indexedSessions, 1);
    t.ok(calls > 0);
  });

  t.test(`[${name}] the message recalled for is not embedded again when the turn is remembered`, async (t) => {
    const embedded: string[][] = [];
    const counting: Embedder = { name: 'counting', dim: glove.dim, init: async () => {}, close: async () => {}, embed: (x, s) => (embedded.push([...x]), glove.embed(x, s)) };
    const { store, recall } = setup(t, backend, { k: 10, minScore: -1 }, counting);
    await rememberAll(recall, 's1', [DRAGON]);
    embedded.length = 0;
    await recall.recall('s1', 'mara', ASK_DRAGON, NONE);
    await recall.remember('s1', [item(ASK_DRAGON, 't2'), item(PRINCESS, 't2')], TTL_S);
    t.same(embedded, [[ASK_DRAGON], [PRINCESS]], 'the message once, for recall; then the reply alone');
    const [asked] = await glove.embed([ASK_DRAGON]);
    const stored = await store.memories('s1', 0);
    t.same(stored.map((m) => m.text), [DRAGON, ASK_DRAGON, PRINCESS]);
    t.same([...stored[1]!.vector], [...asked!], 'the message is stored with its own vector');
    t.equal((await recall.recall('s1', 'mara', ASK_DRAGON, NONE))[0]?.text, ASK_DRAGON, 'and found by it');

    // Once, and only for the same text.
    embedded.length = 0;
    await recall.remember('s1', [item(ASK_DRAGON, 't3')], TTL_S);
    await recall.remember('s1', [item(ASK_DRAGON, 't4')], TTL_S);
    await recall.recall('s1', 'mara', ASK_LUTE, NONE);
    await recall.remember('s1', [item(ASK_SNOW, 't5'), item(LUTE, 't5')], TTL_S);
    t.same(embedded, [[ASK_DRAGON], [ASK_LUTE], [ASK_SNOW, LUTE]], 'the last recall\'s vector taken once; then embedded again; another text embedded');
    // A message that is the whole of what is remembered embeds nothing more.
    embedded.length = 0;
    await recall.recall('s1', 'mara', ASK_BANDITS, NONE);
    await recall.remember('s1', [item(ASK_BANDITS, 't5')], TTL_S);
    t.same(embedded, [[ASK_BANDITS]]);
    t.equal((await store.memories('s1', 0)).length, 8);
  });
}

// ---- through the server ------------------------------------------------------

const FACT = 'My sister Elena lives in the lighthouse by the northern cliffs.';
const PARAPHRASE = 'Where does my sibling live?';
// Chat with no bearing on the fact.
const SMALL_TALK = [
  'What is the weather like on the harbor today?',
  'How many ships came into port this week?',
  'The rain has not stopped for days.',
  'Have you seen any strange travellers lately?',
  'I like the smell of wood smoke.',
  'The fire is warm and the chairs are soft.',
  'Tell me about the old sea captain in the corner.',
  'What kind of ale do you brew here?',
  'A gull stole bread from the window sill.',
  'The fishing nets need mending before morning.',
];
/** engine.ts: the memories of this many turns at the end of the history are not recalled. */
const RECENT_TURNS_NOT_RECALLED = 8;
const REPLY = ['Aye', ', go', ' on', '.'];
const MEMORY_HEADER = 'Mara remembers from earlier in this conversation:';
const LORE = 'Kin on this coast keep lamps lit for one another.';

interface Message {
  role: string;
  content: string;
}

/** A character with a lorebook whose entry the word "sibling" activates, and one trigger. */
function characterDir(t: Test): string {
  const root = mkdtempSync(join(tmpdir(), 'npcd-recall-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const lore = join(root, 'kin.lorebook.json');
  writeFileSync(lore, JSON.stringify({ entries: { 0: { uid: 0, key: ['sibling'], content: LORE } } }));
  const chars = mkdtempSync(join(root, 'chars-'));
  writeFileSync(
    join(chars, 'mara.yaml'),
    [
      'id: mara',
      'name: Mara',
      'system_prompt: "You are {{char}}, keeper of a harbor tavern."',
      'greeting: "Come in out of the rain."',
      `lorebooks: [${JSON.stringify(lore)}]`,
      'initial_state: calm',
      'states: [calm, wary]',
      'triggers:',
      '  - on_keyword: [smuggler]',
      '    goto: wary',
      '    respond: "We do not talk about that here."',
      '',
    ].join('\n'),
  );
  return chars;
}

async function serve(t: Test, overrides: Partial<ServeConfig> = {}): Promise<{ srv: TestServer; fake: FakeUpstream; store: InProcessMemoryStore; client: TestClient; session: string }> {
  const fake = await startFakeOpenAi({ default: { type: 'stream', tokens: REPLY } });
  t.teardown(() => fake.close());
  const store = new InProcessMemoryStore({ budgetBytes: 64 * MB, sweepIntervalMs: 0 });
  t.teardown(() => store.close());
  // The paraphrase scores 0.245 against the fact with glove, under the default --recall-min-score (0.3).
  const srv = await testServer(
    t,
    { model: `openai:fake-model?url=${fake.url}&retries=0`, upstreamHealthIntervalMs: 0, characters: characterDir(t), recallMinScore: 0.2, ...overrides },
    { store },
  );
  t.equal(srv.server.registry.get('mara')?.lorebooks.length, 1, 'the character and its lorebook loaded');
  const client = await TestClient.connect(srv.ws);
  t.teardown(() => client.close());
  const welcome = await client.hello();
  return { srv, fake, store, client, session: welcome.session as string };
}

let n = 0;
/** One turn; resolves once its memories are stored (engine.memoriesSettled), with the request the model got. */
async function say(t: Test, env: { srv: TestServer; fake: FakeUpstream; client: TestClient }, text: string): Promise<Message[] | undefined> {
  const requests = env.fake.chatRequests.length;
  const done = await env.client.chat(`m${++n}`, 'mara', text);
  t.equal(done.t, 'done', `reply to ${JSON.stringify(text)}`);
  await env.srv.server.engine.memoriesSettled();
  return env.fake.chatRequests.length > requests ? (env.fake.chatRequests.at(-1)!.body as { messages: Message[] }).messages : undefined;
}

async function recallCount(srv: TestServer): Promise<number> {
  const metrics = (await getJson(`${srv.http}/metrics`)).body as string;
  const m = /^npcd_memory_recall_duration_seconds_count (\d+)$/m.exec(metrics);
  if (!m) throw new Error('npcd_memory_recall_duration_seconds_count not exported');
  return Number(m[1]);
}

const memoryBlocks = (messages: readonly Message[]) => messages.filter((m) => m.role === 'system' && m.content.startsWith(MEMORY_HEADER));

t.test('a fact told early is recalled into the prompt, after the lore and before the state line, once it left the recent turns', async (t) => {
  const env = await serve(t);
  const { srv, store, session } = env;
  t.equal(await recallCount(srv), 0);
  await say(t, env, FACT);
  const stored = await store.memories(session, 0);
  t.same(stored.map((m) => [m.kind, m.text]), [['turn', FACT], ['turn', REPLY.join('')]], 'the message and the reply are stored as memories');
  t.equal(stored[0]!.character, 'mara');
  t.equal(stored[0]!.vector.length, 256, 'embedded by glove');

  for (const text of SMALL_TALK.slice(0, RECENT_TURNS_NOT_RECALLED + 1)) await say(t, env, text);
  const turns = RECENT_TURNS_NOT_RECALLED + 2;
  t.equal(await recallCount(srv), turns, 'the recall histogram counted every turn');
  t.equal((await store.memories(session, 0)).length, 2 * turns, 'two memories per turn');

  const messages = (await say(t, env, PARAPHRASE))!;
  t.equal(await recallCount(srv), turns + 1, 'and this one');
  const blocks = memoryBlocks(messages);
  t.equal(blocks.length, 1, 'one memories message');
  const lines = blocks[0]!.content.split('\n');
  t.equal(lines[0], MEMORY_HEADER);
  t.equal(lines[1], `- ${FACT}`, 'the fact is the first memory');
  t.notOk(lines.includes(`- ${PARAPHRASE}`), 'the message itself is not among them');

  // system prompt, greeting, history, lore, memories, state, message (prompt.ts).
  const at = messages.indexOf(blocks[0]!);
  t.match(messages[0], { role: 'system', content: /You are Mara/ });
  t.match(messages[1], { role: 'assistant', content: 'Come in out of the rain.' });
  t.match(messages[at - 1], { role: 'system', content: `World info:\n${LORE}` }, 'right after the lore');
  t.match(messages[at + 1], { role: 'system', content: /^Mara's current state: calm\.$/ }, 'right before the state line');
  t.same(messages.slice(at + 2), [{ role: 'user', content: PARAPHRASE }], 'then the message, last');
  t.ok(messages.slice(2, at - 1).every((m) => m.role === 'user' || m.role === 'assistant'), 'the history before the lore');
  t.equal(messages.slice(2, at - 1).length, 2 * turns, 'the whole history');
});

t.test('a fact among the recent turns is not recalled: the prompt holds it already', async (t) => {
  const env = await serve(t);
  await say(t, env, FACT);
  // The fact's two turns stay within the last RECENT_TURNS_NOT_RECALLED turns.
  for (const text of SMALL_TALK.slice(0, RECENT_TURNS_NOT_RECALLED / 2 - 1)) await say(t, env, text);
  const messages = (await say(t, env, PARAPHRASE))!;
  t.same(memoryBlocks(messages), [], 'no memories message');
  t.ok(messages.some((m) => m.role === 'user' && m.content === FACT), 'the fact is in the history');
  t.match(messages.at(-2), { role: 'system', content: /^Mara's current state/ });
  t.match(messages.at(-3), { role: 'system', content: /^World info:/ });
});

t.test('with recall 0 no memories are kept and none are recalled', async (t) => {
  const env = await serve(t, { recallK: 0 });
  const { srv, store, session } = env;
  t.equal(srv.config.recallK, 0);
  await say(t, env, FACT);
  for (const text of SMALL_TALK.slice(0, RECENT_TURNS_NOT_RECALLED + 1)) await say(t, env, text);
  const messages = (await say(t, env, PARAPHRASE))!;
  t.same(memoryBlocks(messages), [], 'no memories message');
  t.notOk(messages.some((m) => m.content.includes('remembers from earlier')));
  // Lore and state line are next to each other again.
  t.match(messages.slice(-3), [{ role: 'system', content: /^World info:/ }, { role: 'system', content: /^Mara's current state/ }, { role: 'user', content: PARAPHRASE }]);
  t.same(await store.memories(session, 0), [], 'no memories stored');
  t.equal(await recallCount(srv), 0, 'no recall timed');
  t.equal((await store.load(session))?.intent, undefined, 'no intent weight kept');
});

t.test('a key event raises the session\'s intent weight and TTL in the store', async (t) => {
  const env = await serve(t);
  const { srv, store, session } = env;
  const baseTtlMs = srv.config.sessionTtlMs * 2; // ttl.ts with intent 0 (1 h by default)
  await say(t, env, 'The rain has not stopped for days.');
  t.equal((await store.load(session))?.intent ?? 0, 0, 'an ordinary turn has intent 0');
  const ordinary = store.expiresIn(session)!;
  t.ok(ordinary <= baseTtlMs && ordinary > baseTtlMs - 60_000, `expires in ${ordinary} ms: the base TTL`);

  await say(t, env, 'My name is Kestrel, and I sail the northern route.');
  t.equal((await store.load(session))?.intent, 0.5, 'a detected key event weighs 0.5');
  const keyEvent = store.expiresIn(session)!;
  const extended = baseTtlMs + 0.5 * INTENT_WEIGHT_S * 1000;
  t.ok(keyEvent <= extended && keyEvent > extended - 60_000, `expires in ${keyEvent} ms: half an hour longer`);
  const events = (await store.memories(session, 0)).filter((m) => m.kind === 'event');
  t.match(events, [{ kind: 'event', weight: 0.5, text: `My name is Kestrel, and I sail the northern route. → ${REPLY.join('')}` }], 'kept as a key event memory');
  t.match((await getJson(`${srv.http}/metrics`)).body, /npcd_memories_stored_total\{kind="event"\} 1\b/);

  await say(t, env, 'What kind of ale do you brew here?');
  t.equal((await store.load(session))?.intent, 0.5, 'a later ordinary turn keeps the weight');
  t.ok(store.expiresIn(session)! > baseTtlMs, 'and the longer expiry');

  // A trigger that fires (a scripted reply, a state change) weighs 1.
  const scripted = await say(t, env, 'Are you a smuggler?');
  t.equal(scripted, undefined, 'the trigger answered, not the model');
  t.equal((await store.load(session))?.intent, 1, 'a fired trigger weighs 1');
  const triggered = store.expiresIn(session)!;
  const longest = baseTtlMs + INTENT_WEIGHT_S * 1000;
  t.ok(triggered <= longest && triggered > longest - 60_000, `expires in ${triggered} ms: an hour longer`);
});

t.test('an index whose session the store lost (expired, evicted, deleted) is rebuilt from what the store holds now', async (t) => {
  const { store, recall } = setup(t, { native: false }, { minScore: -1 });
  await rememberAll(recall, 's1', [DRAGON, PRINCESS]);
  t.equal((await recall.recall('s1', 'mara', ASK_DRAGON, NONE))[0]?.text, DRAGON, 'the index holds the first memories');
  await store.delete('s1');
  await rememberAll(recall, 's1', [SNOW], 'mara', 'u');
  t.same((await store.memories('s1', 0)).map((m) => [m.id, m.text]), [[1, SNOW]], 'the store numbers from 1 again');
  t.same(texts(await recall.recall('s1', 'mara', ASK_DRAGON, NONE)), [SNOW], 'recall finds only what the store holds');
});

t.test('a large session is read from the store in pages', async (t) => {
  const { store, recall } = setup(t, { native: false }, { minScore: -1, k: 1 });
  const n = 5000;
  const vectors = await glove.embed([DRAGON, SNOW]);
  const items = Array.from({ length: n }, (_, i) => ({ kind: 'turn' as const, character: 'mara', text: i === n - 1 ? DRAGON : `${SNOW} ${i}`, weight: 0, at: Date.now(), vector: i === n - 1 ? vectors[0]! : vectors[1]! }));
  await store.addMemories('s1', items, n, TTL_S);
  t.equal((await recall.recall('s1', 'mara', ASK_DRAGON, NONE))[0]?.text, DRAGON, 'the newest memory, on the last page, is found');
  t.same(store.reads.map((r) => r.afterId), [0, 2048, 4096], 'three pages of at most 2048');
});
