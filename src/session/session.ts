/**
 * A live session: its durable data, the seq counter and bounded replay log of
 * its stream, the listeners that receive frames (a WebSocket, an SSE response,
 * an HTTP request waiting for its reply) and the generation in progress.
 * Generation belongs to the session, not to a socket: listeners come and go,
 * and each change is reported to the engine, which cancels a generation that
 * nobody receives for the orphan grace.
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
  /**
   * Resolves when the turn starts generating; rejects (with an NpcdError)
   * when it is refused before its first frame: with a shared store, when
   * another node generates in the session. Such a refusal is not a frame of
   * the session's stream: the caller answers the sender.
   */
  readonly accepted: Promise<void>;
  /** True once the reply's last frame is being emitted: nothing is left to cancel. */
  ending: boolean;
  /** Runs while nobody listens to the session (see SessionEngine); cleared when someone does. */
  orphanTimer: NodeJS.Timeout | undefined;
}

/**
 * Where frames go before clients see them, when the session's stream is
 * shared with other nodes (Redis): the sink stores them and then calls
 * `session.publish(seq)`, so a client never sees a frame that another node
 * could not replay.
 */
export interface FrameSink {
  write(session: Session, frame: StreamFrame): void;
}

export interface SessionHooks {
  /** A listener threw; the stream goes on for the others. */
  readonly onListenerError?: (err: unknown) => void;
  /** The owner or the set of listeners changed (the engine watches for generations nobody waits for). */
  readonly onAttachmentChange?: (session: Session) => void;
  /** Frames are stored here first and reach the log and the listeners when published. */
  readonly sink?: FrameSink;
}

/** How many accepted message ids a session remembers to refuse duplicates. */
const RECENT_IDS = 256;

export class Session {
  /** Seq of the newest frame in the log, the newest any client can see. */
  seq = 0;
  /** Seq of the newest frame emitted (ahead of `seq` while frames wait in the sink). */
  private assigned = 0;
  /** Frames emitted but not yet published (only with a sink), oldest first. */
  private unpublished: StreamFrame[] = [];
  private readonly sink: FrameSink | undefined;
  /** A reply another node is generating, which this node follows (see SessionEngine). */
  remote: { readonly id: string; readonly node: string } | undefined;
  readonly log: ReplayLog;
  generation: Generation | undefined;
  private currentOwner: object | undefined;
  private readonly listeners = new Set<StreamListener>();
  private readonly recentIds = new Set<string>();
  private readonly onListenerError: (err: unknown) => void;
  private readonly onAttachmentChange: ((session: Session) => void) | undefined;

  constructor(
    readonly data: SessionData,
    replayFrames: number,
    hooks: SessionHooks = {},
  ) {
    this.log = new ReplayLog(replayFrames);
    this.onListenerError = hooks.onListenerError ?? (() => {});
    this.onAttachmentChange = hooks.onAttachmentChange;
    this.sink = hooks.sink;
    for (const t of data.turns) if (t.role === 'user') this.rememberId(t.id);
  }

  /** The WebSocket connection attached to this session, if any (one at a time). */
  get owner(): object | undefined {
    return this.currentOwner;
  }

  set owner(owner: object | undefined) {
    if (owner === this.currentOwner) return;
    this.currentOwner = owner;
    this.onAttachmentChange?.(this);
  }

  /** True while a connection or a listener receives the session's frames. */
  get listening(): boolean {
    return this.currentOwner !== undefined || this.listeners.size > 0;
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
    frame.seq = ++this.assigned;
    if (this.sink) {
      this.unpublished.push(frame);
      this.sink.write(this, frame);
    } else {
      this.show(frame);
    }
    return frame;
  }

  /** Seq the next emitted frame gets. */
  get nextSeq(): number {
    return this.assigned + 1;
  }

  /** Frames emitted up to `seq` become visible: into the log and to the listeners (see FrameSink). */
  publish(seq: number): void {
    let n = 0;
    while (n < this.unpublished.length && this.unpublished[n]!.seq <= seq) this.show(this.unpublished[n++]!);
    if (n > 0) this.unpublished = this.unpublished.slice(n);
  }

  /**
   * Frames another node emitted and stored, oldest first. Frames this
   * session already has are skipped; when they do not follow on from the log
   * (the store dropped some), the log restarts from them.
   */
  adopt(frames: readonly StreamFrame[]): number {
    let added = 0;
    for (const frame of frames) {
      if (frame.seq <= this.seq) continue;
      if (frame.seq !== this.seq + 1) this.log.clear();
      this.assigned = Math.max(this.assigned, frame.seq);
      this.show(frame);
      added++;
    }
    return added;
  }

  private show(frame: StreamFrame): void {
    this.seq = frame.seq;
    this.log.push(frame);
    for (const listener of this.listeners) {
      try {
        listener(frame);
      } catch (err) {
        // One broken listener must not stop the stream for the others.
        this.onListenerError(err);
      }
    }
  }

  /** Adds a listener; the returned function removes it (calling it again does nothing). */
  subscribe(listener: StreamListener): () => void {
    this.listeners.add(listener);
    this.onAttachmentChange?.(this);
    return () => {
      if (this.listeners.delete(listener)) this.onAttachmentChange?.(this);
    };
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
    return this.currentOwner === undefined && this.listeners.size === 0 && this.generation === undefined && this.unpublished.length === 0;
  }
}
