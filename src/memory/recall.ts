/**
 * Recall: what a character remembers of a session, put into the prompt.
 *
 * Each turn's user message and reply are embedded and stored as memories
 * (with key events marked by triggers or detected in the message). Recall
 * embeds the new message and searches the session's memories by cosine
 * similarity in a vector index that is built lazily, the first time a
 * session recalls, from the store, kept up to date with the memories added
 * since (by this node or another), and dropped when the session goes idle
 * or when more sessions than `maxIndexes` hold one (least recently used
 * first).
 *
 * The index is exact (flat): every memory is compared, so recall never
 * misses the best match, and a session's index costs no build time. Large
 * indexes search on the libuv pool (searchOffLoop).
 */
import type { Logger } from '../log.js';
import type { Embedder } from './embed/types.js';
import type { Memory, MemoryKind, MemoryStore, NewMemory } from './store.js';
import { createVectorIndex, searchOffLoop, type VectorBackendChoice, type VectorIndex } from './vector/index.js';

export interface RecallOptions {
  /** Memories put into a prompt at most; 0 turns recall off (memories are still kept). */
  readonly k: number;
  /** Cosine similarity a memory needs to be recalled. */
  readonly minScore: number;
  /** Memories kept per session (the oldest go first). */
  readonly maxMemories: number;
  /** Sessions holding a vector index at once. */
  readonly maxIndexes: number;
}

export const DEFAULT_RECALL: RecallOptions = { k: 4, minScore: 0.3, maxMemories: 100_000, maxIndexes: 1000 };

export interface Recalled {
  readonly id: number;
  readonly kind: MemoryKind;
  readonly text: string;
  readonly score: number;
  readonly turnId?: string;
}

/** What a turn leaves to remember. */
export interface Remembered {
  readonly kind: MemoryKind;
  readonly character: string;
  readonly text: string;
  readonly weight: number;
  readonly turnId?: string;
}

/** Memories read from the store per call while an index catches up: bounds each reply (a 100,000-memory session is tens of MB). */
const PAGE = 2048;

/** What the index keeps of a memory beside its vector (the vector lives in the index only). */
type Held = Omit<Memory, 'vector'>;

interface SessionIndex {
  readonly index: VectorIndex;
  readonly memories: Map<number, Held>;
  lastId: number;
  /** Catching up with the store (one at a time per session). */
  loading: Promise<void> | undefined;
  /**
   * The last message recalled for and its vector: remember() takes the
   * vector for that text instead of embedding it again (the turn's message
   * is recalled for first, then remembered).
   */
  query: { readonly text: string; readonly vector: Float32Array } | undefined;
}

export class MemoryRecall {
  private readonly indexes = new Map<string, SessionIndex>();

  constructor(
    private readonly store: MemoryStore,
    readonly embedder: Embedder,
    private readonly vectors: VectorBackendChoice,
    readonly options: RecallOptions,
    private readonly log: Logger,
  ) {}

  /** Sessions holding an index now. */
  get indexedSessions(): number {
    return this.indexes.size;
  }

  /**
   * The memories of `session` closest to `text` (best first), at most k,
   * skipping those of the turns in `exclude` (already in the prompt).
   */
  async recall(session: string, character: string, text: string, exclude: ReadonlySet<string>, signal?: AbortSignal): Promise<Recalled[]> {
    if (this.options.k <= 0 || text.trim() === '') return [];
    const [[query], entry] = await Promise.all([this.embedder.embed([text], signal), this.caughtUp(session)]);
    if (!query) return [];
    entry.query = { text, vector: query };
    if (entry.index.size === 0) return [];
    // Asks for more than k: some hits belong to other characters or to turns already in the prompt.
    // When those fill every hit asked for, asks again for more: the best match is never missed.
    let want = Math.min(entry.index.size, this.options.k * 4 + exclude.size);
    for (;;) {
      const { ids, distances } = await searchOffLoop(entry.index, query, want);
      const out: Recalled[] = [];
      let below = false;
      for (let i = 0; i < ids.length && out.length < this.options.k; i++) {
        // Cosine distance is 1 - similarity; hits come best first, so the rest score lower still.
        const score = 1 - distances[i]!;
        if (score < this.options.minScore) {
          below = true;
          break;
        }
        const m = entry.memories.get(ids[i]!);
        if (!m || m.character !== character) continue;
        if (m.turnId !== undefined && exclude.has(m.turnId)) continue;
        out.push({ id: m.id, kind: m.kind, text: m.text, score, ...(m.turnId === undefined ? {} : { turnId: m.turnId }) });
      }
      if (out.length >= this.options.k || below || ids.length < want || want >= entry.index.size) return out;
      want = Math.min(entry.index.size, want * 4);
    }
  }

  /**
   * Embeds and stores what a turn leaves to remember; the session's index,
   * when held, takes them at once. The text last recalled for in the session
   * (the turn's message) is not embedded again.
   */
  async remember(session: string, items: readonly Remembered[], ttlS: number, signal?: AbortSignal): Promise<Memory[]> {
    if (items.length === 0) return [];
    const vectors = await this.vectorsOf(this.indexes.get(session), items.map((i) => i.text), signal);
    const at = Date.now();
    const fresh: NewMemory[] = items.map((item, i) => ({ ...item, at, vector: vectors[i]! }));
    const stored = await this.store.addMemories(session, fresh, this.options.maxMemories, ttlS);
    const entry = this.indexes.get(session);
    if (entry && stored[0] !== undefined && stored[0].id <= entry.lastId) {
      // The store numbers from 1 again: it lost the session (expired, evicted, deleted). So does the index.
      this.indexes.delete(session);
      return stored;
    }
    // Taken at once only when they follow what the index holds: memories stored in between (by another
    // node, or while the index was catching up) would be skipped for good; the next recall reads them all.
    if (entry && !entry.loading && stored[0]?.id === entry.lastId + 1) this.take(entry, stored);
    return stored;
  }

  /** The vectors of `texts`: the session's last query's where the text is the same, embedded otherwise. */
  private async vectorsOf(entry: SessionIndex | undefined, texts: string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const query = entry?.query;
    if (entry) entry.query = undefined;
    if (!query || !texts.includes(query.text)) return this.embedder.embed(texts, signal);
    const rest = texts.filter((t) => t !== query.text);
    const embedded = rest.length > 0 ? await this.embedder.embed(rest, signal) : [];
    let next = 0;
    return texts.map((t) => (t === query.text ? query.vector : embedded[next++]!));
  }

  /** Drops the session's index (it is idle); the next recall rebuilds it from the store. */
  drop(session: string): void {
    this.indexes.delete(session);
  }

  /** The session's index with every memory the store holds (built on first use, topped up after). */
  private async caughtUp(session: string): Promise<SessionIndex> {
    let entry = this.indexes.get(session);
    if (entry) {
      // Most recently used last: the first entry is the one to evict.
      this.indexes.delete(session);
      this.indexes.set(session, entry);
    } else {
      entry = { index: createVectorIndex({ kind: 'flat', metric: 'cosine', dim: this.embedder.dim }, this.vectors), memories: new Map(), lastId: 0, loading: undefined, query: undefined };
      this.indexes.set(session, entry);
      while (this.indexes.size > this.options.maxIndexes) this.indexes.delete(this.indexes.keys().next().value!);
    }
    const current = entry;
    // Memories added by other nodes (or by this one before the index existed).
    current.loading ??= this.catchUp(session, current).finally(() => (current.loading = undefined));
    await current.loading;
    return current;
  }

  private async catchUp(session: string, entry: SessionIndex): Promise<void> {
    for (;;) {
      const page = await this.store.memories(session, entry.lastId, PAGE);
      this.take(entry, page);
      if (page.length < PAGE) return;
    }
  }

  private take(entry: SessionIndex, memories: readonly Memory[]): void {
    for (const m of memories) {
      if (m.id <= entry.lastId) continue;
      if (m.vector.length !== entry.index.dim) {
        // Stored by another embedder (the configuration changed): not comparable.
        this.log.debug({ id: m.id, dim: m.vector.length }, 'memory with another dimension skipped');
        entry.lastId = m.id;
        continue;
      }
      entry.index.add(m.id, m.vector);
      const { vector: _vector, ...held } = m;
      entry.memories.set(m.id, held);
      entry.lastId = m.id;
    }
    // The store keeps at most maxMemories: forget what it dropped.
    while (entry.memories.size > this.options.maxMemories) {
      const oldest = entry.memories.keys().next().value!;
      entry.memories.delete(oldest);
      entry.index.remove(oldest);
    }
  }
}

/**
 * Key events found in a user message without a script: the user telling
 * their name, a promise, a request to remember. Such turns get intent
 * weight 0.5 (a trigger that fires gives 1); see ttl.ts.
 */
const KEY_EVENT = /\b(my name is|call me|i am called|i promise|i swear|remember (?:that|this|me)|don't forget|never forget|i will return|my (?:birthday|home|family))\b|我叫|我的名字|记住|别忘|我发誓|我答应|一言为定/iu;

export function detectKeyEvent(text: string): boolean {
  return KEY_EVENT.test(text);
}
