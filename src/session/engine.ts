/**
 * The session engine: opens and expires sessions, accepts chat turns, runs
 * them through the dialogue layer and turns their events into numbered stream
 * frames. Transport code (WebSocket, HTTP) only subscribes to sessions and
 * calls `chat` / `cancel`.
 */
import { randomBytes } from 'node:crypto';
import { setImmediate } from 'node:timers/promises';
import type { CharacterRegistry } from '../characters/registry.js';
import type { Character } from '../characters/types.js';
import type { ClientMessages } from '../dialogue/prompt.js';
import { runTurn, type Sampling, type TurnInput, type TurnResult } from '../dialogue/turn.js';
import { NpcdError, toNpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { detectKeyEvent, type MemoryRecall, type Remembered } from '../memory/recall.js';
import type { GenerationLease, MemoryStore } from '../memory/store.js';
import { sessionTtlSeconds } from '../memory/ttl.js';
import type { ModelProvider } from '../providers/types.js';
import type { DoneFrame, FinishReason, StreamFrame } from '../protocol/types.js';
import { type Generation, Session } from './session.js';
import { endsReply, FramePersister, keepLease, openReply } from './shared.js';
import type { SessionData, Turn } from './types.js';
import { countTokens } from '../text/tokens.js';
import { ATTR, endWithError, SPAN, startTurnTrace, type TraceHeaders, type Tracing, type TurnTrace } from '../tracing/tracing.js';

export interface EngineLimits {
  readonly maxSessions: number;
  readonly maxReplyTokens: number;
  readonly maxHistoryTurns: number;
  readonly replayFrames: number;
  readonly replayRetentionMs: number;
  readonly sessionTtlMs: number;
  readonly scriptTokenDelayMs: number;
  /**
   * How long a generation may run with nobody listening (no connection owns
   * the session, no HTTP listener) before it is cancelled; 0 cancels as soon
   * as the last one goes. Default 15 s.
   */
  readonly orphanGraceMs?: number;
}

/** Default of EngineLimits.orphanGraceMs. */
export const DEFAULT_ORPHAN_GRACE_MS = 15_000;

/** How nodes share sessions through a shared store (Redis). */
export interface SharingOptions {
  /** This process's name in generation leases; unique per process. */
  readonly nodeId: string;
  /** A generation lease lasts this long unless renewed (every third of it); a dead node's reply is declared interrupted this long after it died. */
  readonly leaseMs: number;
  /** How often a node following another node's reply reads the stored stream. */
  readonly followIntervalMs: number;
}

export const DEFAULT_SHARING: Omit<SharingOptions, 'nodeId'> = { leaseMs: 3000, followIntervalMs: 50 };

export function newNodeId(): string {
  return 'node_' + randomBytes(6).toString('base64url');
}

export interface EngineOptions {
  readonly store: MemoryStore;
  /** Used when the store is shared; defaults: a random node id, DEFAULT_SHARING. */
  readonly sharing?: Partial<SharingOptions>;
  /** Memory recall; without it no memories are kept or recalled. */
  readonly recall?: MemoryRecall;
  readonly registry: CharacterRegistry;
  readonly provider: ModelProvider;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: EngineLimits;
  /** Spans of each turn (docs/tracing.md); without it, or when off, none are made. */
  readonly tracing?: Tracing;
}

export interface ChatRequest {
  readonly id: string;
  /** Character id or name. */
  readonly character: string;
  readonly text: string;
  /** Reply length the client asked for; capped by the server's maxReplyTokens. */
  readonly maxTokens?: number;
  readonly sampling?: Sampling;
  /**
   * The conversation as the client keeps it (OpenAI-compatible clients send
   * the whole chat each time): it replaces the session's history in the
   * prompt. The session still records the turn.
   */
  readonly clientMessages?: ClientMessages;
  /** The client's W3C trace context (validated): the turn's span becomes its child, or it is forwarded as is when tracing is off. */
  readonly trace?: TraceHeaders;
}

/** Tokens between forced event-loop turns during one reply. */
const YIELD_EVERY = 256;

/** Turns at the end of the history whose memories are not recalled: the prompt holds them already. */
const RECENT_TURNS_NOT_RECALLED = 8;

/** Turns whose memories are being stored at once, at most; past it a turn is not remembered (logged). */
const MAX_PENDING_MEMORIES = 1000;

export function newSessionId(): string {
  return 'sess_' + randomBytes(12).toString('base64url');
}

export function newMessageId(): string {
  return 'msg_' + randomBytes(9).toString('base64url');
}

export class SessionEngine {
  private readonly live = new Map<string, Session>();
  /** Sessions whose reply another node generates, followed through the store (shared stores only). */
  private readonly following = new Map<Session, NodeJS.Timeout>();
  private readonly persister: FramePersister | undefined;
  private readonly sharing: SharingOptions;
  /** Memories being embedded and stored, after their turns ended. */
  private readonly remembering = new Set<Promise<void>>();
  private readonly opening = new Map<string, Promise<{ session: Session; created: boolean }>>();
  private readonly generations = new Set<Generation>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private readonly log: Logger;

  constructor(private readonly options: EngineOptions) {
    this.log = options.logger.child({ subsystem: 'session' });
    this.sharing = { ...DEFAULT_SHARING, nodeId: newNodeId(), ...options.sharing };
    if (options.store.shared) {
      this.persister = new FramePersister(options.store, options.limits.replayFrames, (s) => this.ttlOf(s.data), this.log, () => options.metrics.storeErrors.inc({ operation: 'frames' }));
    }
    for (const outcome of ['completed', 'cancelled', 'failed', 'rejected']) {
      options.metrics.turns.inc({ provider: options.provider.name, outcome }, 0);
    }
    const shortest = Math.min(options.limits.sessionTtlMs, options.limits.replayRetentionMs);
    const every = Math.min(60_000, Math.max(1000, Math.floor(shortest / 10)));
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), every);
    this.sweepTimer.unref();
  }

  get sessionCount(): number {
    return this.live.size;
  }

  get activeGenerations(): number {
    return this.generations.size;
  }

  get isDraining(): boolean {
    return this.draining;
  }

  get nodeId(): string {
    return this.sharing.nodeId;
  }

  /** The TTL (seconds) of a session's records in the store: ttl.ts's policy. */
  ttlOf(data: SessionData): number {
    return sessionTtlSeconds(this.options.limits.sessionTtlMs / 1000, data.intent ?? 0);
  }

  /** A session held in memory, without touching the store. */
  peek(id: string): Session | undefined {
    return this.live.get(id);
  }

  /** A session by id, from memory or the store; undefined when there is none. */
  async find(id: string): Promise<Session | undefined> {
    const live = this.live.get(id);
    if (live) {
      await this.syncLive(live);
      return live;
    }
    const data = await this.options.store.load(id);
    if (!data) return undefined;
    const session = this.adopt(data);
    if (this.persister) await this.sync(session);
    return session;
  }

  /** Opens a session: the existing one with this id, or a new one (with this id or a fresh one). */
  async open(id?: string): Promise<{ session: Session; created: boolean }> {
    if (this.draining) throw new NpcdError('ERR_SHUTTING_DOWN');
    const sid = id ?? newSessionId();
    const live = this.live.get(sid);
    if (live) {
      live.data.lastActive = Date.now();
      await this.syncLive(live);
      return { session: live, created: false };
    }
    // Two hellos for the same new id at once must end up in one session.
    let pending = this.opening.get(sid);
    if (!pending) {
      pending = this.openSlow(sid).finally(() => this.opening.delete(sid));
      this.opening.set(sid, pending);
    }
    return pending;
  }

  private async openSlow(id: string): Promise<{ session: Session; created: boolean }> {
    const stored = await this.options.store.load(id);
    if (stored) {
      const session = this.adopt(stored);
      if (this.persister) await this.sync(session);
      return { session, created: false };
    }
    if (this.live.size >= this.options.limits.maxSessions) {
      throw new NpcdError('ERR_SESSION_LIMIT', `the server holds its maximum of ${this.options.limits.maxSessions} sessions`);
    }
    const now = Date.now();
    const data: SessionData = { id, createdAt: now, lastActive: now, states: {}, turns: [], userTurns: 0 };
    await this.options.store.save(data, this.ttlOf(data));
    return { session: this.adopt(data), created: true };
  }

  private adopt(data: SessionData): Session {
    const existing = this.live.get(data.id);
    if (existing) return existing;
    const session = new Session(data, this.options.limits.replayFrames, {
      onListenerError: (err) => this.log.error({ err, session: data.id }, 'stream listener failed'),
      onAttachmentChange: (s) => this.watchListeners(s),
      sink: this.persister,
    });
    this.live.set(data.id, session);
    this.options.metrics.sessions.set(this.live.size);
    return session;
  }

  /**
   * Accepts a chat turn and starts generating. Throws NpcdError (without
   * emitting anything) when the turn cannot start; the caller reports it.
   */
  chat(session: Session, req: ChatRequest): Generation {
    const m = this.options.metrics;
    const provider = this.options.provider.name;
    try {
      if (this.draining) throw new NpcdError('ERR_SHUTTING_DOWN');
      const character = this.options.registry.require(req.character);
      if (session.remote) {
        throw new NpcdError('ERR_SESSION_BUSY', `another node is generating the reply to ${JSON.stringify(session.remote.id)}; wait for it or cancel it there`);
      }
      if (session.generation) {
        throw new NpcdError('ERR_SESSION_BUSY', `session is generating the reply to ${JSON.stringify(session.generation.id)}; send one chat at a time or cancel it`);
      }
      if (session.hasId(req.id)) {
        throw new NpcdError('ERR_CHAT_DUPLICATE_ID', `message id ${JSON.stringify(req.id)} was already used in this session`);
      }
      session.rememberId(req.id);
      const controller = new AbortController();
      let resolve!: () => void;
      const finished = new Promise<void>((r) => (resolve = r));
      let refusedHere = false;
      const gate: TurnGate = { accept: () => {}, refuse: () => {} };
      const accepted = new Promise<void>((accept, reject) => {
        gate.accept = accept;
        gate.refuse = (err) => {
          refusedHere = true;
          reject(err);
        };
      });
      // A caller that does not wait for acceptance must not see an unhandled rejection.
      accepted.catch(() => {});
      const generation: Generation = { id: req.id, character: character.id, controller, finished, accepted, ending: false, orphanTimer: undefined };
      session.generation = generation;
      session.data.lastActive = Date.now();
      this.generations.add(generation);
      this.watchListeners(session);
      void this.run(session, generation, character, req, gate)
        .catch((err: unknown) => {
          // A bug, not a provider failure (run reports those): the client still gets an end.
          this.log.error({ err, session: session.id }, 'turn failed unexpectedly');
          session.emit({ t: 'error', seq: 0, id: req.id, code: 'ERR_INTERNAL', message: 'internal error' });
        })
        .finally(() => {
          this.stopOrphanTimer(generation);
          this.generations.delete(generation);
          if (session.generation === generation) session.generation = undefined;
          session.data.lastActive = Date.now();
          resolve();
          // Refused for another node's reply: follow it, so this node's clients see it.
          if (refusedHere) void this.syncLive(session);
        });
      return generation;
    } catch (err) {
      m.turns.inc({ provider, outcome: 'rejected' });
      throw err;
    }
  }

  /**
   * Whether a refused chat is a frame of the session's stream (numbered,
   * replayed on resume). With a shared store it is not: only the node that
   * holds a session's generation lease numbers its frames, so a refusal is
   * answered to its sender alone.
   */
  get refusalsInStream(): boolean {
    return this.persister === undefined;
  }

  /** Cancels the generation of message `id`; false when it is not generating. */
  cancel(session: Session, id: string): boolean {
    const g = session.generation;
    if (!g || g.id !== id) return false;
    g.controller.abort();
    return true;
  }

  /**
   * Waits (up to `timeoutMs`) for the session's generation to end when
   * nobody listens to it any more: a client that retries or regenerates
   * right after dropping its request finds the session free instead of
   * busy. Returns at once when there is no generation, or when someone
   * still listens to it.
   */
  async whenUnattendedDone(session: Session, timeoutMs: number): Promise<void> {
    const g = session.generation;
    if (!g || session.listening) return;
    await waitAtMost(g.finished, timeoutMs);
  }

  /**
   * Called when a session's owner or listeners change, and when a
   * generation starts. A generation that nobody receives is cancelled after
   * the orphan grace; one timer per such generation, cleared as soon as
   * someone listens again (a WebSocket client that resumes).
   */
  private watchListeners(session: Session): void {
    const g = session.generation;
    if (!g || g.ending) return;
    if (session.listening) {
      this.stopOrphanTimer(g);
      return;
    }
    if (g.orphanTimer || g.controller.signal.aborted) return;
    const grace = this.options.limits.orphanGraceMs ?? DEFAULT_ORPHAN_GRACE_MS;
    // Even with no grace the check waits for the timer: a connection that
    // takes over a session detaches the old one just before attaching.
    g.orphanTimer = setTimeout(() => {
      g.orphanTimer = undefined;
      if (session.generation !== g || g.ending || session.listening) return;
      this.log.debug({ session: session.id, id: g.id, graceMs: grace }, 'nobody listens to the reply: cancelling it');
      g.controller.abort();
    }, grace);
    g.orphanTimer.unref();
  }

  private stopOrphanTimer(g: Generation): void {
    if (g.orphanTimer) clearTimeout(g.orphanTimer);
    g.orphanTimer = undefined;
  }

  private async run(session: Session, generation: Generation, character: Character, req: ChatRequest, gate: TurnGate): Promise<void> {
    const { metrics: m, provider, store, limits } = this.options;
    const labels = { provider: provider.name };
    // Shared store: the reply is generated under a lease, so that other nodes
    // know it is alive, and can declare it interrupted when it is not. The
    // lease goes once the reply's last frame is stored; the session is free
    // on this node as soon as that frame is emitted (this node's next reply
    // takes the lease over). Only the node holding the lease numbers the
    // session's frames: a turn refused before it holds it emits nothing.
    let release: (() => Promise<void>) | undefined;
    let stopLease: (() => void) | undefined;
    if (this.persister) {
      let lease: GenerationLease = { id: generation.id, character: character.id, node: this.sharing.nodeId, startSeq: session.nextSeq };
      let claimed = false;
      try {
        claimed = await store.claimGeneration(session.id, lease, this.sharing.leaseMs);
        if (!claimed) throw new NpcdError('ERR_SESSION_BUSY', 'another node is generating a reply in this session; one turn at a time');
        // Under the lease no other node writes the stream. One may have
        // written it since this node last read it (a client of the session
        // there): take those frames and that history first, so this reply
        // follows them instead of reusing their seqs.
        if (await this.catchUpWithStore(session)) {
          lease = { ...lease, startSeq: session.nextSeq };
          await store.claimGeneration(session.id, lease, this.sharing.leaseMs);
        }
      } catch (err) {
        generation.ending = true;
        m.turns.inc({ ...labels, outcome: 'rejected' });
        gate.refuse(toNpcdError(err));
        if (claimed) await store.releaseGeneration(session.id, lease).catch((e: unknown) => this.log.warn({ err: e, session: session.id }, 'could not release the generation lease'));
        return;
      }
      stopLease = keepLease(store, session.id, lease, this.sharing.leaseMs, generation.controller, this.log);
      release = async () => {
        await store.releaseGeneration(session.id, lease).catch((err: unknown) => {
          m.storeErrors.inc({ operation: 'lease' });
          this.log.warn({ err, session: session.id }, 'could not release the generation lease');
        });
      };
    }
    gate.accept();
    // Tracing off: nothing is made for the turn (a client's traceparent is forwarded as it came).
    const trace = this.options.tracing?.enabled
      ? startTurnTrace(this.options.tracing, req.trace, {
          [ATTR.npcId]: character.id,
          [ATTR.conversationId]: session.id,
          [ATTR.messageId]: generation.id,
          [ATTR.model]: provider.modelName ?? provider.name,
        })
      : undefined;
    try {
      await this.generate(session, generation, character, req, trace);
    } catch (err) {
      trace?.fail(err);
      throw err;
    } finally {
      trace?.end();
      // Renewals stop with the reply; what is left of the lease covers storing its last frames.
      stopLease?.();
      if (release) void this.persister!.settled(session).then(release);
    }
  }

  private async generate(session: Session, generation: Generation, character: Character, req: ChatRequest, trace: TurnTrace | undefined): Promise<void> {
    const { metrics: m, provider, store, limits } = this.options;
    const labels = { provider: provider.name };
    const tokenCount = m.tokens.cell(labels);
    const gaps = m.interTokenGap.cell(labels);
    const started = performance.now();
    let lastTokenAt = 0;
    // From the first token to the end of the reply (tracing on only).
    let streamSpan: ReturnType<TurnTrace['child']> | undefined;
    const signal = generation.controller.signal;
    const data = session.data;
    const text = req.text;
    data.userTurns++;
    const userTurn: Turn = { id: generation.id, role: 'user', character: character.id, text, at: Date.now(), tokens: countTokens(text) };
    // Pieces joined once at the end: a string grown by += is a rope of every
    // piece, several times the size of the flat text kept in the history.
    const pieces: string[] = [];
    let state = session.stateOf(character);
    let result: TurnResult | undefined;
    let finish: FinishReason = 'stop';
    // The prompt's size, known once the reply starts (the message's until then).
    let promptTokens = userTurn.tokens;
    const memories = await this.recallFor(session, character, text, signal, trace);
    const input: TurnInput = {
      sessionId: session.id,
      character,
      state,
      traits: data.traits?.[character.id],
      text,
      textTokens: userTurn.tokens,
      // Read when the prompt is built, before start(); the user turn is
      // appended only then.
      history: data.turns,
      turnNumber: data.userTurns,
      provider,
      maxTokens: Math.min(req.maxTokens ?? limits.maxReplyTokens, limits.maxReplyTokens),
      client: req.clientMessages,
      sampling: req.sampling,
      scriptTokenDelayMs: limits.scriptTokenDelayMs,
      signal,
      memories,
      trace,
      forwardTrace: trace ? undefined : req.trace,
    };
    try {
      result = await runTurn(input, {
        start: async (next, traits, tokens) => {
          promptTokens = tokens;
          state = next;
          data.states[character.id] = state;
          if (Object.keys(traits).length > 0) (data.traits ??= {})[character.id] = { ...traits };
          else if (data.traits) delete data.traits[character.id];
          // Kept here only once the store has it: a turn that fails here left nothing behind.
          const ttl = this.ttlOf(data);
          await store.appendTurns(data.id, [userTurn], limits.maxHistoryTurns, ttl);
          this.pushTurn(data, userTurn);
          await store.save(data, ttl);
          session.emit({ t: 'start', seq: 0, id: generation.id, character: character.id, state });
        },
        token: (piece) => {
          const now = performance.now();
          if (pieces.length === 0) {
            m.ttft.observe(labels, (now - started) / 1000);
            streamSpan = trace?.child(SPAN.stream);
          } else gaps.observe((now - lastTokenAt) / 1000);
          lastTokenAt = now;
          pieces.push(piece);
          tokenCount.value++;
          session.emit({ t: 'token', seq: 0, id: generation.id, text: piece });
          // A provider that yields synchronously must not hold the event loop
          // for a whole reply: let I/O run every so often.
          return pieces.length % YIELD_EVERY === 0 ? setImmediate() : undefined;
        },
      });
      finish = result.finish;
    } catch (err) {
      const interrupted = signal.aborted && signal.reason instanceof NpcdError && signal.reason.code === 'ERR_GENERATION_INTERRUPTED';
      if (!signal.aborted || interrupted) {
        generation.ending = true;
        this.stopOrphanTimer(generation);
        const e = toNpcdError(interrupted ? signal.reason : err);
        if (streamSpan) endWithError(streamSpan, e);
        trace?.fail(e);
        m.turns.inc({ ...labels, outcome: 'failed' });
        this.log.warn({ err, session: session.id, character: character.id, code: e.code }, 'turn failed');
        session.emit({ t: 'error', seq: 0, id: generation.id, code: e.code, message: e.message });
        return;
      }
      finish = 'cancelled';
    }
    // A cancelled reply keeps what was streamed; usage counts it approximately.
    const replyText = pieces.join('');
    const usage = result?.usage ?? { prompt_tokens: promptTokens, completion_tokens: countTokens(replyText) };
    generation.ending = true;
    this.stopOrphanTimer(generation);
    const replyTurn: Turn = { id: generation.id, role: 'assistant', character: character.id, text: replyText, at: Date.now(), tokens: usage.completion_tokens, seq: session.nextSeq, finish };
    // `done` promises the reply is kept: a reply the store refused ends with
    // an error instead, and is not kept here either (the store is the truth
    // other nodes, and this one after a sync, read).
    try {
      await store.appendTurns(data.id, [replyTurn], limits.maxHistoryTurns, this.ttlOf(data));
    } catch (err) {
      const e = toNpcdError(err);
      if (streamSpan) endWithError(streamSpan, e);
      trace?.fail(e);
      m.storeErrors.inc({ operation: 'turns' });
      m.turns.inc({ ...labels, outcome: 'failed' });
      this.log.error({ err, session: session.id, code: e.code }, 'could not store the reply');
      session.emit({ t: 'error', seq: 0, id: generation.id, code: e.code, message: `the reply could not be stored (${e.message}); send the message again` });
      return;
    }
    this.pushTurn(data, replyTurn);
    session.emit({ t: 'done', seq: 0, id: generation.id, text: replyText, state, usage, finish });
    if (streamSpan) {
      streamSpan.setAttribute(ATTR.tokens, pieces.length);
      streamSpan.end();
    }
    trace?.end({ [ATTR.finish]: finish, [ATTR.state]: state, [ATTR.promptTokens]: usage.prompt_tokens, [ATTR.completionTokens]: usage.completion_tokens });
    m.turns.inc({ ...labels, outcome: finish === 'cancelled' ? 'cancelled' : 'completed' });
    m.turnDuration.observe(labels, (performance.now() - started) / 1000);
    this.remember(session, character, userTurn, replyText, result?.triggered === true);
  }

  /** The memories recalled for a message; none when recall is off or fails (the turn goes on without). */
  private async recallFor(session: Session, character: Character, text: string, signal: AbortSignal, trace: TurnTrace | undefined): Promise<string[]> {
    const recall = this.options.recall;
    if (!recall || recall.options.k <= 0) return [];
    const started = performance.now();
    const span = trace?.child(SPAN.recall);
    try {
      const turns = session.data.turns;
      const recent = new Set(turns.slice(-RECENT_TURNS_NOT_RECALLED).map((t) => t.id));
      const found = await recall.recall(session.id, character.id, text, recent, signal);
      this.options.metrics.recallDuration.observe((performance.now() - started) / 1000);
      span?.setAttribute(ATTR.memories, found.length);
      span?.end();
      return found.map((m) => m.text);
    } catch (err) {
      // The turn goes on without memories: the span says why.
      if (span) endWithError(span, err);
      if (!signal.aborted) {
        this.options.metrics.embeddingErrors.inc();
        this.log.warn({ err, session: session.id }, 'memory recall failed; the turn goes on without memories');
      }
      return [];
    }
  }

  /**
   * Stores what a finished turn leaves to remember, after its `done`: the
   * message and the reply, and a key event when a trigger fired (intent
   * weight 1) or the message looks like one (0.5; recall.ts). The session's
   * intent weight, which lengthens its TTL, follows.
   */
  private remember(session: Session, character: Character, userTurn: Turn, replyText: string, triggered: boolean): void {
    const recall = this.options.recall;
    if (!recall) return;
    if (this.remembering.size >= MAX_PENDING_MEMORIES) {
      this.log.warn({ session: session.id }, 'too many turns waiting to be remembered; this one is not');
      return;
    }
    const weight = triggered ? 1 : detectKeyEvent(userTurn.text) ? 0.5 : 0;
    const data = session.data;
    data.intent = Math.max(data.intent ?? 0, weight);
    const items: Remembered[] = [{ kind: 'turn', character: character.id, text: userTurn.text, weight, turnId: userTurn.id }];
    if (replyText.trim() !== '') items.push({ kind: 'turn', character: character.id, text: replyText, weight: 0, turnId: userTurn.id });
    if (weight > 0) items.push({ kind: 'event', character: character.id, text: replyText.trim() === '' ? userTurn.text : `${userTurn.text} → ${replyText}`, weight, turnId: userTurn.id });
    const { metrics: m, store } = this.options;
    const task = (async () => {
      const ttl = this.ttlOf(data);
      const stored = await recall.remember(session.id, items, ttl);
      for (const item of stored) m.memoriesStored.inc({ kind: item.kind });
      if (weight > 0) await store.save(data, ttl);
    })()
      .catch((err: unknown) => {
        m.storeErrors.inc({ operation: 'memories' });
        this.log.warn({ err, session: session.id }, 'could not store the turn\'s memories');
      })
      .finally(() => this.remembering.delete(task));
    this.remembering.add(task);
  }

  /** Settles when every finished turn's memories are stored (or failed). */
  async memoriesSettled(): Promise<void> {
    await Promise.all([...this.remembering]);
  }

  // ---- sessions shared with other nodes ------------------------------------

  /**
   * A live session about to be served again (hello, HTTP): with a shared
   * store another node may have moved it on. A store that is down leaves the
   * local copy in use.
   */
  private async syncLive(session: Session): Promise<void> {
    if (!this.persister || session.generation) return;
    try {
      await this.sync(session);
    } catch (err) {
      this.log.warn({ err, session: session.id }, 'could not sync the session with the store; serving the local copy');
    }
  }

  /**
   * Brings a session up to date with the store: header and history, the
   * stream frames this node has not seen, and the reply in progress, which is
   * followed when another node generates it and declared interrupted when
   * nobody does any more.
   */
  private async sync(session: Session): Promise<void> {
    const { store } = this.options;
    const [data, stored, lease] = await Promise.all([store.load(session.id), store.framesSince(session.id, session.seq), store.generation(session.id)]);
    // A local reply that started meanwhile is the newest state.
    if (session.generation) return;
    if (data) this.refresh(session, data);
    session.adopt(stored.frames);
    if (lease && lease.node !== this.sharing.nodeId) {
      this.startFollowing(session, lease);
      return;
    }
    const open = openReply(this.logged(session));
    if (open && !lease) await this.interrupted(session, open);
  }

  /**
   * Takes the frames and history another node stored after what this node
   * has (call under the generation lease); true when there were some. Not
   * while this node's own frames wait to be stored: then it wrote last.
   */
  private async catchUpWithStore(session: Session): Promise<boolean> {
    const { store } = this.options;
    const mine = session.nextSeq - 1;
    if (session.seq !== mine) return false;
    const stored = await store.framesSince(session.id, mine);
    if (stored.lastSeq <= mine) return false;
    const data = await store.load(session.id);
    session.adopt(stored.frames);
    if (data) this.refresh(session, data);
    this.log.debug({ session: session.id, from: mine, to: session.seq }, 'took frames another node stored before this reply');
    return true;
  }

  /** Takes the store's header and history into the live session (in place: the engine and connections hold `data`). */
  private refresh(session: Session, stored: SessionData): void {
    const data = session.data;
    data.states = stored.states;
    data.traits = stored.traits;
    data.turns = stored.turns;
    data.userTurns = Math.max(data.userTurns, stored.userTurns);
    data.lastActive = Math.max(data.lastActive, stored.lastActive);
    data.intent = Math.max(data.intent ?? 0, stored.intent ?? 0);
    for (const t of stored.turns) if (t.role === 'user') session.rememberId(t.id);
  }

  /** The frames the session's log holds, oldest first. */
  private logged(session: Session): StreamFrame[] {
    const oldest = session.log.oldestSeq;
    return oldest === undefined ? [] : (session.log.since(oldest - 1, session.seq) ?? []);
  }

  /**
   * Follows a reply another node generates: reads the stored stream every
   * followIntervalMs and hands new frames to this node's listeners, until the
   * reply ends, its lease goes without an end (the node died: interrupted),
   * or nobody here listens any more.
   */
  private startFollowing(session: Session, lease: GenerationLease): void {
    session.remote = { id: lease.id, node: lease.node };
    if (this.following.has(session)) return;
    let busy = false;
    const tick = async (): Promise<void> => {
      const { store } = this.options;
      const [stored, now] = await Promise.all([store.framesSince(session.id, session.seq), store.generation(session.id)]);
      session.adopt(stored.frames);
      if (stored.frames.some((f) => endsReply(f, lease.id))) {
        this.stopFollowing(session);
        const data = await store.load(session.id);
        if (data && !session.generation) this.refresh(session, data);
        return;
      }
      if (now && now.node !== this.sharing.nodeId && now.id === lease.id) {
        if (!session.listening) this.stopFollowing(session);
        return;
      }
      this.stopFollowing(session);
      const open = openReply(this.logged(session));
      if (open && !now) await this.interrupted(session, open);
    };
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      tick()
        .catch((err: unknown) => this.log.warn({ err, session: session.id }, 'could not follow the reply of another node'))
        .finally(() => (busy = false));
    }, this.sharing.followIntervalMs);
    timer.unref();
    this.following.set(session, timer);
  }

  private stopFollowing(session: Session): void {
    const timer = this.following.get(session);
    if (timer) clearInterval(timer);
    this.following.delete(session);
    session.remote = undefined;
  }

  /**
   * Ends a reply whose node died: under the lease (so one node does it), the
   * frames the node stored are taken first; if its reply turn was stored, the
   * `done` it could not send is sent from it; otherwise the reply ends with
   * ERR_GENERATION_INTERRUPTED and the client can send the message again.
   */
  private async interrupted(session: Session, open: { id: string; character: string; startSeq: number }): Promise<void> {
    const { store, metrics } = this.options;
    const lease: GenerationLease = { ...open, node: this.sharing.nodeId };
    if (!(await store.claimGeneration(session.id, lease, this.sharing.leaseMs))) return;
    try {
      const [stored, data] = await Promise.all([store.framesSince(session.id, session.seq), store.load(session.id)]);
      session.adopt(stored.frames);
      if (data) this.refresh(session, data);
      if (openReply(this.logged(session))?.id !== open.id || session.generation) return;
      const reply = session.data.turns.find((t) => t.role === 'assistant' && t.id === open.id);
      if (reply) {
        const done: DoneFrame = {
          t: 'done',
          seq: 0,
          id: open.id,
          text: reply.text,
          state: session.data.states[open.character] ?? '',
          usage: { prompt_tokens: 0, completion_tokens: reply.tokens },
          finish: reply.finish ?? 'stop',
        };
        session.emit(done);
      } else {
        metrics.generationsInterrupted.inc();
        this.log.warn({ session: session.id, id: open.id }, 'the node generating this reply stopped before it ended');
        session.emit({ t: 'error', seq: 0, id: open.id, code: 'ERR_GENERATION_INTERRUPTED', message: `the node generating the reply to ${JSON.stringify(open.id)} stopped before it finished; the frames it stored were replayed; send the message again` });
      }
      await this.persister!.settled(session);
    } finally {
      await store.releaseGeneration(session.id, lease).catch((err: unknown) => this.log.warn({ err, session: session.id }, 'could not release the generation lease'));
    }
  }

  private pushTurn(data: SessionData, turn: Turn): void {
    data.turns.push(turn);
    const excess = data.turns.length - this.options.limits.maxHistoryTurns;
    if (excess > 0) data.turns.splice(0, excess);
  }

  /**
   * Deletes sessions idle for longer than the TTL, and drops the replay logs
   * of sessions idle for longer than the replay retention. Returns how many
   * sessions expired.
   */
  sweep(now: number): number {
    const { sessionTtlMs: ttl, replayRetentionMs } = this.options.limits;
    let expired = 0;
    for (const [id, s] of this.live) {
      if (!s.idle) continue;
      const idleFor = now - s.data.lastActive;
      if (idleFor > replayRetentionMs) {
        if (s.log.size > 0) s.log.clear();
        // The memory index of a session nobody uses goes too; a later recall rebuilds it from the store.
        this.options.recall?.drop(id);
      }
      if (idleFor <= ttl) continue;
      this.live.delete(id);
      this.stopFollowing(s);
      this.options.recall?.drop(id);
      expired++;
      // A shared store keeps the session for other nodes; its records expire by their own TTL.
      if (!this.options.store.shared) this.options.store.delete(id).catch((err) => this.log.error({ err, session: id }, 'could not delete expired session'));
    }
    if (expired > 0) {
      this.options.metrics.sessionsExpired.inc(expired);
      this.options.metrics.sessions.set(this.live.size);
      this.log.debug({ expired, sessions: this.live.size }, 'expired idle sessions');
    }
    return expired;
  }

  /**
   * Stops accepting turns, lets running ones finish for up to `timeoutMs`, then
   * cancels the rest and waits for their final frames.
   */
  async drain(timeoutMs: number): Promise<{ finished: number; cancelled: number }> {
    this.draining = true;
    const deadline = Date.now() + timeoutMs;
    const running = [...this.generations];
    await waitAtMost(Promise.all(running.map((g) => g.finished)), timeoutMs);
    const left = [...this.generations];
    for (const g of left) g.controller.abort();
    await Promise.all(left.map((g) => g.finished));
    // Finished turns' memories, within what is left of the time.
    await waitAtMost(this.memoriesSettled(), Math.max(0, deadline - Date.now()));
    return { finished: running.length - left.length, cancelled: left.length };
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const s of [...this.following.keys()]) this.stopFollowing(s);
    for (const g of this.generations) g.controller.abort();
  }
}

/** How `run` tells `chat`'s caller that the turn started, or was refused before its first frame. */
interface TurnGate {
  accept(): void;
  refuse(err: NpcdError): void;
}

/** Waits for `promise` to settle, or `ms` at most. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  await Promise.race([promise, deadline]);
  clearTimeout(timer);
}
