import type { FinishReason } from '../protocol/types.js';

/** One message of a session's history. */
export interface Turn {
  /** The client's message id; the reply to it carries the same id. */
  readonly id: string;
  readonly role: 'user' | 'assistant';
  /** Character id. */
  readonly character: string;
  readonly text: string;
  /** Milliseconds since the epoch. */
  readonly at: number;
  /** Approximate size in tokens, counted once when the turn is stored. */
  readonly tokens: number;
  /** For replies: seq of the done frame and how the reply ended. */
  readonly seq?: number;
  readonly finish?: FinishReason;
}

/** What a session keeps beyond its live stream: the durable part. */
export interface SessionData {
  readonly id: string;
  readonly createdAt: number;
  lastActive: number;
  /** Character id → current state-machine state. */
  states: Record<string, string>;
  /**
   * Character id → numeric persona traits changed in this session by
   * scripts (`adjust`), within the traits' bounds; absent when unchanged.
   */
  traits?: Record<string, Record<string, number>>;
  /** History, oldest first, bounded by --max-history-turns. */
  turns: Turn[];
  /** User turns ever taken (not bounded; numbers the turns). */
  userTurns: number;
  /**
   * The highest intent weight of the session's turns (0 ordinary .. 1 a key
   * event); it lengthens the session's TTL (src/memory/ttl.ts).
   */
  intent?: number;
}
