/**
 * MemoryStore: what npcd keeps of a session beyond one process, behind one
 * interface with two backends (in-process, the embedded default; Redis,
 * standalone or Cluster, through ioredis). Both pass the same test suite.
 *
 * Per session it keeps:
 * - the header (SessionData without turns): states, persona values
 *   (traits), counters, timestamps;
 * - the turns, appended (never rewritten whole), the newest `maxTurns` kept;
 * - memories: turns and key events worth recalling, each with its
 *   embedding, numbered per session (the number is the vector index id);
 * - the stream: every frame with its seq, the newest `maxFrames` kept (the
 *   replay log a client resumes from, on any node);
 * - the generation lease: which node is generating which reply, renewed
 *   while it runs, so another node can tell a live reply from a dead one.
 *
 * Every write takes the session's TTL (seconds, from `sessionTtlSeconds`)
 * and refreshes the expiry of all the session's records, never shortening
 * it: a session expires as a whole. Writes create the records they need;
 * `load` sees a session once its header is saved. Writing an empty list
 * is a no-op. Reading an unknown session gives undefined or empty results.
 * Failures of the backend reject with NpcdError ERR_STORE_UNAVAILABLE; the
 * backend reconnects by itself. Invalid arguments (an empty session id, a
 * count below 1, a TTL <= 0, a frame seq that is not an integer >= 1)
 * reject with RangeError before anything is written.
 */
import type { StreamFrame } from '../protocol/types.js';
import type { SessionData, Turn } from '../session/types.js';

/** Why a memory was kept: a turn of the conversation, or a key event (marked by a script trigger or detected). */
export type MemoryKind = 'turn' | 'event';

export interface NewMemory {
  readonly kind: MemoryKind;
  /** Character id the memory belongs to. */
  readonly character: string;
  readonly text: string;
  /** Milliseconds since the epoch. */
  readonly at: number;
  /** Intent weight (0 ordinary .. 1 important); see ttl.ts. */
  readonly weight: number;
  /** The turn it came from, if any. */
  readonly turnId?: string;
  /** Its embedding (dimension fixed per store by the embedder in use). */
  readonly vector: Float32Array;
}

export interface Memory extends NewMemory {
  /** Per-session number from 1, assigned by the store in insertion order; the vector index id. */
  readonly id: number;
}

/** The stream frames of a session from some seq on, as the store holds them. */
export interface StoredFrames {
  /** Frames with seq > `after`, oldest first, consecutive seqs. */
  readonly frames: StreamFrame[];
  /** Seq of the oldest frame still held; undefined when none is held. */
  readonly oldestSeq: number | undefined;
  /** Seq of the newest frame held (0 when none was ever written). */
  readonly lastSeq: number;
}

/** Which node generates which reply of a session; held while the reply runs. */
export interface GenerationLease {
  /** The message id being answered. */
  readonly id: string;
  readonly character: string;
  /** The node generating it (NodeId: unique per process). */
  readonly node: string;
  /** Seq of the reply's start frame. */
  readonly startSeq: number;
}

/** The store's connection: `connecting` until the first connection, `down` while it is lost (or after close). */
export type StoreStatus = 'ready' | 'connecting' | 'down';

export interface MemoryStore {
  /** 'memory' | 'redis' | 'redis-cluster' */
  readonly kind: string;
  /** True when several processes share it (Redis): sessions can move between nodes. */
  readonly shared: boolean;
  /** Whether calls can succeed now (the in-process store is `ready` until closed). */
  readonly status: StoreStatus;
  /** Calls `listener` on every status change; returns a function that stops it. Absent when the status never changes by itself. */
  onStatus?(listener: (status: StoreStatus) => void): () => void;

  // ---- sessions ----------------------------------------------------------
  /** The header and the newest turns (at most the `maxTurns` given when they were appended); undefined when there is no such session. */
  load(id: string): Promise<SessionData | undefined>;
  /** Creates or replaces the header (everything in SessionData but `turns`). */
  save(data: SessionData, ttlS: number): Promise<void>;
  /** Appends turns, keeping the newest `maxTurns`. */
  appendTurns(id: string, turns: readonly Turn[], maxTurns: number, ttlS: number): Promise<void>;
  /** Deletes every record of the session. */
  delete(id: string): Promise<void>;

  // ---- memories ----------------------------------------------------------
  /**
   * Stores memories and returns them all with their ids (consecutive, in
   * order, increasing per session); at most `maxMemories` per session are
   * kept, the lowest ids dropped.
   */
  addMemories(session: string, items: readonly NewMemory[], maxMemories: number, ttlS: number): Promise<Memory[]>;
  /**
   * Memories with id > `afterId`, oldest first (0: all), at most `limit`
   * of them (default: no limit); read a large session in pages.
   */
  memories(session: string, afterId: number, limit?: number): Promise<Memory[]>;

  // ---- stream ------------------------------------------------------------
  /**
   * Appends frames (each with its seq set, increasing), keeping the newest
   * `maxFrames`. Frames whose seq is not above the newest one held are
   * skipped, so a retried write does not duplicate them.
   */
  appendFrames(session: string, frames: readonly StreamFrame[], maxFrames: number, ttlS: number): Promise<void>;
  /** Frames with seq > `after` (a negative `after` reads from the start). */
  framesSince(session: string, after: number): Promise<StoredFrames>;

  // ---- generation lease ----------------------------------------------------
  /**
   * Takes the lease for `leaseMs` unless another node holds it; false when
   * another does. The node holding it may claim it again, for the same
   * reply or a newer one (a node runs one reply per session at a time, and
   * its last reply's lease may outlive the reply by the time its frames
   * take to store); a claim resets the lease time. The lease expires on its own, apart from the
   * session's TTL.
   */
  claimGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean>;
  /** Extends the lease while its holder still holds it; false when it was lost (expired or taken). */
  renewGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean>;
  /** Releases the lease when `lease.node` holds it for `lease.id`. */
  releaseGeneration(session: string, lease: GenerationLease): Promise<void>;
  /** The lease held now, if any. */
  generation(session: string): Promise<GenerationLease | undefined>;

  /** Closes connections; pending writes are flushed first where possible. */
  close(): Promise<void>;
}
