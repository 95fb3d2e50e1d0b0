/**
 * The in-process MemoryStore (the embedded default): sessions live in this
 * process only, within a memory budget.
 *
 * Budget. Every session's records are counted in estimated bytes (see
 * `sizeOf`): strings at 2 bytes a character (V8 may store them in 1, so the
 * estimate errs high), numbers 8, vectors and encoded frames at their byte
 * length, plus fixed overheads for each object, property, typed array and session.
 * When a write takes the total over `budgetBytes`, whole sessions are
 * evicted, least recently used first (reads count as use); the session
 * being written is never evicted by its own write, so a budget smaller than
 * one session holds just that session.
 *
 * Expiry. Each session's records expire `ttlS` after its latest write, never
 * earlier than an earlier write set (ttl.ts). Expired sessions are dropped
 * when next touched and by a periodic sweep (an unref'd timer, so it never
 * keeps the process alive). The generation lease expires on its own.
 *
 * Copies. The store keeps its own copies, so callers that mutate what they
 * passed in or got back do not change what is stored: headers are cloned,
 * vectors copied, frames kept MessagePack-encoded (compact, and exactly
 * counted). Turns are immutable and shared by reference.
 */
import { pack, unpack } from 'msgpackr';
import { NpcdError } from '../errors.js';
import type { StreamFrame } from '../protocol/types.js';
import type { SessionData, Turn } from '../session/types.js';
import type { GenerationLease, Memory, MemoryStore, NewMemory, StoredFrames, StoreStatus } from './store.js';
import { laterExpiry } from './ttl.js';
import { checkAfter, checkCount, checkDuration, checkLease, checkSeq, checkSession, checkVector } from './validate.js';

// Byte estimates (64-bit V8, pointer compression off: the larger case).
/** A session's entry: its Map slot, the entry and records objects, their arrays and counters. */
const SESSION_BYTES = 512;
/** A plain object or array: header, hidden-class and elements pointers, and the slot that refers to it. */
const OBJECT_BYTES = 64;
/** A property or element slot, or a number. */
const SLOT_BYTES = 8;
/** A string's header; its characters count 2 bytes each. */
const STRING_BYTES = 16;
/** A typed array or Buffer object and its ArrayBuffer; the data counts at its byte length. */
const VIEW_BYTES = 128;

/** Estimated bytes held by `value` (plain data: strings, numbers, objects, arrays, typed arrays). */
export function sizeOf(value: unknown): number {
  switch (typeof value) {
    case 'string':
      return STRING_BYTES + value.length * 2;
    case 'object': {
      if (value === null) return SLOT_BYTES;
      if (ArrayBuffer.isView(value)) return VIEW_BYTES + value.byteLength;
      let bytes = OBJECT_BYTES;
      for (const [key, item] of Object.entries(value)) bytes += SLOT_BYTES + (Array.isArray(value) ? 0 : key.length * 2) + sizeOf(item);
      return bytes;
    }
    default:
      return SLOT_BYTES;
  }
}

export interface InProcessMemoryStoreOptions {
  /** Estimated bytes the store may hold; beyond it the least recently used sessions are evicted. */
  readonly budgetBytes: number;
  /** Clock in ms since the epoch (default Date.now); tests inject a fake one. */
  readonly now?: () => number;
  /** How often expired sessions are swept, ms (default 60 000; 0: only when touched). */
  readonly sweepIntervalMs?: number;
  /** Called for each session evicted to stay within the budget (metrics, logs). */
  readonly onEvict?: (session: string) => void;
}

export interface InProcessMemoryStats {
  /** Sessions held (with records or a lease). */
  readonly sessions: number;
  /** Estimated bytes held. */
  readonly bytes: number;
  /** Sessions evicted to stay within the budget, since start. */
  readonly evictions: number;
  /** Sessions whose records expired, since start. */
  readonly expirations: number;
}

type Header = Omit<SessionData, 'turns'>;

interface StoredFrame {
  readonly seq: number;
  /** The frame, MessagePack-encoded, in its own ArrayBuffer. */
  readonly bytes: Uint8Array;
}

interface Records {
  header: Header | undefined;
  headerBytes: number;
  readonly turns: Window<Turn>;
  readonly memories: Window<Memory>;
  lastMemoryId: number;
  readonly frames: Window<StoredFrame>;
  lastSeq: number;
  expiresAt: number;
  /** Estimated bytes of everything above. */
  bytes: number;
}

interface HeldLease {
  readonly value: GenerationLease;
  expiresAt: number;
  readonly bytes: number;
}

interface Entry {
  records: Records | undefined;
  lease: HeldLease | undefined;
}

/**
 * An array that drops items from the front in amortized O(1) (the replay
 * log may hold a million frames; splicing the front each time would not do).
 */
class Window<T> {
  private items: (T | undefined)[] = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  first(): T | undefined {
    return this.items[this.head];
  }

  push(item: T): void {
    this.items.push(item);
  }

  shift(): T | undefined {
    if (this.head >= this.items.length) return undefined;
    const item = this.items[this.head];
    this.items[this.head++] = undefined;
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return item;
  }

  toArray(): T[] {
    return this.items.slice(this.head) as T[];
  }

  /** The items whose key is > `after`, oldest first; keys increase along the window. */
  after(after: number, key: (item: T) => number, limit = Infinity): T[] {
    let lo = this.head;
    let hi = this.items.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (key(this.items[mid]!) > after) hi = mid;
      else lo = mid + 1;
    }
    return this.items.slice(lo, lo + limit) as T[];
  }
}

const frameSize = (f: StoredFrame) => OBJECT_BYTES + SLOT_BYTES + VIEW_BYTES + f.bytes.byteLength;

function copyMemory(m: Memory): Memory {
  return { ...m, vector: m.vector.slice() };
}

export class InProcessMemoryStore implements MemoryStore {
  readonly kind = 'memory';
  readonly shared = false;

  private readonly budgetBytes: number;
  private readonly now: () => number;
  private readonly sweepTimer: NodeJS.Timeout | undefined;
  /** In least-recently-used-first order: every use moves a session to the end. */
  private readonly sessions = new Map<string, Entry>();
  private bytes = 0;
  private evictions = 0;
  private readonly onEvict: ((session: string) => void) | undefined;
  private expirations = 0;
  private closed = false;

  constructor(options: InProcessMemoryStoreOptions) {
    const { budgetBytes, now = Date.now, sweepIntervalMs = 60_000 } = options;
    if (!Number.isSafeInteger(budgetBytes) || budgetBytes < 1) {
      throw new NpcdError('ERR_CONFIG_INVALID', `options.budgetBytes must be an integer >= 1 (got ${budgetBytes})`);
    }
    if (!Number.isSafeInteger(sweepIntervalMs) || sweepIntervalMs < 0) {
      throw new NpcdError('ERR_CONFIG_INVALID', `options.sweepIntervalMs must be an integer >= 0 (got ${sweepIntervalMs})`);
    }
    this.budgetBytes = budgetBytes;
    this.now = now;
    this.onEvict = options.onEvict;
    if (sweepIntervalMs > 0) this.sweepTimer = setInterval(() => this.sweep(), sweepIntervalMs).unref();
  }

  get status(): StoreStatus {
    return this.closed ? 'down' : 'ready';
  }

  stats(): InProcessMemoryStats {
    return { sessions: this.sessions.size, bytes: this.bytes, evictions: this.evictions, expirations: this.expirations };
  }

  /** Ms until the session's records expire, like Redis PTTL; undefined when it holds none. Does not count as use. */
  expiresIn(session: string): number | undefined {
    const entry = this.sessions.get(session);
    const now = this.now();
    if (!entry || !this.expire(session, entry, now)) return undefined;
    return entry.records && entry.records.expiresAt - now;
  }

  /** Drops every expired session now (the periodic sweep calls this). */
  sweep(): void {
    const now = this.now();
    for (const [id, entry] of this.sessions) this.expire(id, entry, now);
  }

  // ---- sessions ----------------------------------------------------------

  async load(id: string): Promise<SessionData | undefined> {
    const records = this.use(checkSession(id))?.records;
    if (!records?.header) return undefined;
    return { ...structuredClone(records.header), turns: records.turns.toArray() };
  }

  async save(data: SessionData, ttlS: number): Promise<void> {
    checkSession(data?.id);
    checkDuration(ttlS, 'ttlS');
    const { turns: _turns, ...header } = data;
    const copy = structuredClone(header);
    const records = this.recordsForWrite(data.id, ttlS);
    const bytes = sizeOf(copy);
    this.grow(records, bytes - records.headerBytes);
    records.header = copy;
    records.headerBytes = bytes;
    this.enforceBudget(data.id);
  }

  async appendTurns(id: string, turns: readonly Turn[], maxTurns: number, ttlS: number): Promise<void> {
    checkSession(id);
    checkCount(maxTurns, 'maxTurns');
    checkDuration(ttlS, 'ttlS');
    if (turns.length === 0) return;
    const records = this.recordsForWrite(id, ttlS);
    for (const turn of turns) {
      records.turns.push(turn);
      this.grow(records, sizeOf(turn));
    }
    this.trim(records, records.turns, maxTurns, sizeOf);
    this.enforceBudget(id);
  }

  async delete(id: string): Promise<void> {
    const entry = this.use(checkSession(id));
    if (entry) this.remove(id, entry);
  }

  // ---- memories ----------------------------------------------------------

  async addMemories(session: string, items: readonly NewMemory[], maxMemories: number, ttlS: number): Promise<Memory[]> {
    checkSession(session);
    checkCount(maxMemories, 'maxMemories');
    checkDuration(ttlS, 'ttlS');
    for (const item of items) checkVector(item.vector);
    if (items.length === 0) return [];
    const records = this.recordsForWrite(session, ttlS);
    const added: Memory[] = [];
    for (const item of items) {
      const memory: Memory = { ...item, id: ++records.lastMemoryId, vector: item.vector.slice() };
      records.memories.push(memory);
      this.grow(records, sizeOf(memory));
      added.push(copyMemory(memory));
    }
    this.trim(records, records.memories, maxMemories, sizeOf);
    this.enforceBudget(session);
    return added;
  }

  async memories(session: string, afterId: number, limit?: number): Promise<Memory[]> {
    checkSession(session);
    const after = checkAfter(afterId, 'afterId');
    const most = limit === undefined ? Infinity : checkCount(limit, 'limit');
    const records = this.use(session)?.records;
    return records ? records.memories.after(after, (m) => m.id, most).map(copyMemory) : [];
  }

  // ---- stream ------------------------------------------------------------

  async appendFrames(session: string, frames: readonly StreamFrame[], maxFrames: number, ttlS: number): Promise<void> {
    checkSession(session);
    checkCount(maxFrames, 'maxFrames');
    checkDuration(ttlS, 'ttlS');
    for (const frame of frames) checkSeq(frame.seq);
    if (frames.length === 0) return;
    const records = this.recordsForWrite(session, ttlS);
    for (const frame of frames) {
      // A seq at or below the newest one is already held (a retried write): skipped, like the Redis backend does.
      if (frame.seq <= records.lastSeq) continue;
      // pack() returns a view into a shared buffer; the copy owns exactly its bytes.
      const stored: StoredFrame = { seq: frame.seq, bytes: new Uint8Array(pack(frame)) };
      records.frames.push(stored);
      records.lastSeq = frame.seq;
      this.grow(records, frameSize(stored));
    }
    this.trim(records, records.frames, maxFrames, frameSize);
    this.enforceBudget(session);
  }

  async framesSince(session: string, after: number): Promise<StoredFrames> {
    checkSession(session);
    const from = checkAfter(after, 'after');
    const records = this.use(session)?.records;
    if (!records) return { frames: [], oldestSeq: undefined, lastSeq: 0 };
    return {
      frames: records.frames.after(from, (f) => f.seq).map((f) => unpack(f.bytes) as StreamFrame),
      oldestSeq: records.frames.first()?.seq,
      lastSeq: records.lastSeq,
    };
  }

  // ---- generation lease ----------------------------------------------------

  async claimGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean> {
    checkSession(session);
    checkLease(lease);
    checkDuration(leaseMs, 'leaseMs');
    const entry = this.entryForWrite(session);
    if (entry.lease && entry.lease.value.node !== lease.node) return false;
    const value = { ...lease };
    if (entry.lease) this.bytes -= entry.lease.bytes;
    entry.lease = { value, expiresAt: this.now() + leaseMs, bytes: sizeOf(value) };
    this.bytes += entry.lease.bytes;
    this.enforceBudget(session);
    return true;
  }

  async renewGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean> {
    checkSession(session);
    checkLease(lease);
    checkDuration(leaseMs, 'leaseMs');
    const held = this.use(session)?.lease;
    if (!held || !holds(held.value, lease)) return false;
    held.expiresAt = this.now() + leaseMs;
    return true;
  }

  async releaseGeneration(session: string, lease: GenerationLease): Promise<void> {
    checkSession(session);
    checkLease(lease);
    const entry = this.use(session);
    if (!entry?.lease || !holds(entry.lease.value, lease)) return;
    this.bytes -= entry.lease.bytes;
    entry.lease = undefined;
    if (!entry.records) this.remove(session, entry);
  }

  async generation(session: string): Promise<GenerationLease | undefined> {
    const held = this.use(checkSession(session))?.lease;
    return held && { ...held.value };
  }

  async close(): Promise<void> {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.closed = true;
    this.sessions.clear();
    this.bytes = 0;
  }

  // ---- bookkeeping -----------------------------------------------------------

  /** The live entry of `id`, moved to the most recently used end; undefined when it is absent or expired. */
  private use(id: string): Entry | undefined {
    if (this.closed) throw new NpcdError('ERR_STORE_UNAVAILABLE', 'memory store: closed');
    const entry = this.sessions.get(id);
    if (!entry || !this.expire(id, entry, this.now())) return undefined;
    this.sessions.delete(id);
    this.sessions.set(id, entry);
    return entry;
  }

  private entryForWrite(id: string): Entry {
    let entry = this.use(id);
    if (!entry) {
      entry = { records: undefined, lease: undefined };
      this.sessions.set(id, entry);
      this.bytes += SESSION_BYTES;
    }
    return entry;
  }

  /** The session's records, created when absent, with the expiry of a write with `ttlS`. */
  private recordsForWrite(id: string, ttlS: number): Records {
    const entry = this.entryForWrite(id);
    entry.records ??= {
      header: undefined,
      headerBytes: 0,
      turns: new Window(),
      memories: new Window(),
      lastMemoryId: 0,
      frames: new Window(),
      lastSeq: 0,
      expiresAt: 0,
      bytes: 0,
    };
    entry.records.expiresAt = laterExpiry(entry.records.expiresAt, this.now(), ttlS);
    return entry.records;
  }

  private grow(records: Records, delta: number): void {
    records.bytes += delta;
    this.bytes += delta;
  }

  private trim<T>(records: Records, window: Window<T>, max: number, size: (item: T) => number): void {
    while (window.length > max) this.grow(records, -size(window.shift()!));
  }

  /** Drops what of the entry has expired at `now`, and the entry once nothing is left; false when it is gone. */
  private expire(id: string, entry: Entry, now: number): boolean {
    if (entry.records && entry.records.expiresAt <= now) {
      this.bytes -= entry.records.bytes;
      entry.records = undefined;
      this.expirations++;
    }
    if (entry.lease && entry.lease.expiresAt <= now) {
      this.bytes -= entry.lease.bytes;
      entry.lease = undefined;
    }
    if (entry.records || entry.lease) return true;
    this.remove(id, entry);
    return false;
  }

  private remove(id: string, entry: Entry): void {
    this.bytes -= SESSION_BYTES + (entry.records?.bytes ?? 0) + (entry.lease?.bytes ?? 0);
    this.sessions.delete(id);
  }

  /** Evicts least recently used sessions (expired ones go first, as expirations) until within the budget; `keep` stays. */
  private enforceBudget(keep: string): void {
    if (this.bytes <= this.budgetBytes) return;
    const now = this.now();
    for (const [id, entry] of this.sessions) {
      if (this.bytes <= this.budgetBytes) return;
      if (id === keep || !this.expire(id, entry, now)) continue;
      this.remove(id, entry);
      this.evictions++;
      this.onEvict?.(id);
    }
  }
}

/** True when `held` is the lease `lease` names: same node, same reply. */
function holds(held: GenerationLease, lease: GenerationLease): boolean {
  return held.node === lease.node && held.id === lease.id;
}
