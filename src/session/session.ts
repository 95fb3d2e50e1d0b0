/**
 * A live session: its durable data, the seq counter and bounded replay log of
 * its stream, the listeners that receive frames (a WebSocket, an SSE response,
 * an HTTP request waiting for its reply) and the generation in progress.
 * Generation belongs to the session, not to a socket: listeners come and go.
 */
import type { StreamFrame } from '../protocol/types.js';
import { ReplayLog } from './replay-log.js';
import type { SessionData } from './types.js';

export type StreamListener = (frame: StreamFrame) => void;

export interface Generation {
  /** The client's message id. */
  readonly id: string;
  readonly character: string;
  readonly controller: AbortController;
  /** Settles when the turn has ended (done or error frame emitted). */
  readonly finished: Promise<void>;
}

/** How many accepted message ids a session remembers to refuse duplicates. */
const RECENT_IDS = 256;

export class Session {
  seq = 0;
  readonly log: ReplayLog;
  generation: Generation | undefined;
  /** The WebSocket connection attached to this session, if any (one at a time). */
  owner: object | undefined;
  private readonly listeners = new Set<StreamListener>();
  private readonly recentIds = new Set<string>();
  private onListenerError: (err: unknown) => void;

  constructor(
    readonly data: SessionData,
    replayFrames: number,
    onListenerError: (err: unknown) => void = () => {},
  ) {
    this.log = new ReplayLog(replayFrames);
    this.onListenerError = onListenerError;
    for (const t of data.turns) if (t.role === 'user') this.rememberId(t.id);
  }

  get id(): string {
    return this.data.id;
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /**
   * The character's state in this session; its initial state when it has
   * none yet, or when a reloaded version of the character no longer has it.
   */
  stateOf(character: { readonly id: string; readonly initialState: string; readonly states: readonly string[] }): string {
    const state = this.data.states[character.id];
    return state !== undefined && character.states.includes(state) ? state : character.initialState;
  }

  /**
   * Numbers a frame (its `seq` is overwritten; callers pass 0 so that `seq`
   * keeps its place after `t`), keeps it in the replay log and hands it to
   * every listener.
   */
  emit(frame: StreamFrame): StreamFrame {
    frame.seq = ++this.seq;
    this.log.push(frame);
    for (const listener of this.listeners) {
      try {
        listener(frame);
      } catch (err) {
        // One broken listener must not stop the stream for the others.
        this.onListenerError(err);
      }
    }
    return frame;
  }

  subscribe(listener: StreamListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  hasId(id: string): boolean {
    return this.recentIds.has(id);
  }

  rememberId(id: string): void {
    this.recentIds.add(id);
    if (this.recentIds.size > RECENT_IDS) {
      const oldest = this.recentIds.values().next().value as string;
      this.recentIds.delete(oldest);
    }
  }

  /** True when nothing holds the session: no connection, listener or generation. */
  get idle(): boolean {
    return this.owner === undefined && this.listeners.size === 0 && this.generation === undefined;
  }
}
