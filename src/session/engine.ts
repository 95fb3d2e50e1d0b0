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
import type { ModelProvider } from '../providers/types.js';
import type { FinishReason } from '../protocol/types.js';
import { type Generation, Session } from './session.js';
import type { SessionData, SessionStore, Turn } from './types.js';
import { countTokens } from '../text/tokens.js';

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

export interface EngineOptions {
  readonly store: SessionStore;
  readonly registry: CharacterRegistry;
  readonly provider: ModelProvider;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly limits: EngineLimits;
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
}

/** Tokens between forced event-loop turns during one reply. */
const YIELD_EVERY = 256;

export function newSessionId(): string {
  return 'sess_' + randomBytes(12).toString('base64url');
}

export function newMessageId(): string {
  return 'msg_' + randomBytes(9).toString('base64url');
}

export class SessionEngine {
  private readonly live = new Map<string, Session>();
  private readonly opening = new Map<string, Promise<{ session: Session; created: boolean }>>();
  private readonly generations = new Set<Generation>();
  private sweepTimer: NodeJS.Timeout | undefined;
  private draining = false;
  private readonly log: Logger;

  constructor(private readonly options: EngineOptions) {
    this.log = options.logger.child({ subsystem: 'session' });
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

  /** A session held in memory, without touching the store. */
  peek(id: string): Session | undefined {
    return this.live.get(id);
  }

  /** A session by id, from memory or the store; undefined when there is none. */
  async find(id: string): Promise<Session | undefined> {
    const live = this.live.get(id);
    if (live) return live;
    const data = await this.options.store.load(id);
    return data ? this.adopt(data) : undefined;
  }

  /** Opens a session: the existing one with this id, or a new one (with this id or a fresh one). */
  async open(id?: string): Promise<{ session: Session; created: boolean }> {
    if (this.draining) throw new NpcdError('ERR_SHUTTING_DOWN');
    const sid = id ?? newSessionId();
    const live = this.live.get(sid);
    if (live) {
      live.data.lastActive = Date.now();
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
    if (stored) return { session: this.adopt(stored), created: false };
    if (this.live.size >= this.options.limits.maxSessions) {
      throw new NpcdError('ERR_SESSION_LIMIT', `the server holds its maximum of ${this.options.limits.maxSessions} sessions`);
    }
    const now = Date.now();
    const data: SessionData = { id, createdAt: now, lastActive: now, states: {}, turns: [], userTurns: 0 };
    await this.options.store.save(data);
    return { session: this.adopt(data), created: true };
  }

  private adopt(data: SessionData): Session {
    const existing = this.live.get(data.id);
    if (existing) return existing;
    const session = new Session(data, this.options.limits.replayFrames, {
      onListenerError: (err) => this.log.error({ err, session: data.id }, 'stream listener failed'),
      onAttachmentChange: (s) => this.watchListeners(s),
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
      const generation: Generation = { id: req.id, character: character.id, controller, finished, ending: false, orphanTimer: undefined };
      session.generation = generation;
      session.data.lastActive = Date.now();
      this.generations.add(generation);
      this.watchListeners(session);
      void this.run(session, generation, character, req)
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
        });
      return generation;
    } catch (err) {
      m.turns.inc({ provider, outcome: 'rejected' });
      throw err;
    }
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

  private async run(session: Session, generation: Generation, character: Character, req: ChatRequest): Promise<void> {
    const { metrics: m, provider, store, limits } = this.options;
    const labels = { provider: provider.name };
    const tokenCount = m.tokens.cell(labels);
    const started = performance.now();
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
    };
    try {
      result = await runTurn(input, {
        start: async (next, traits) => {
          state = next;
          data.states[character.id] = state;
          if (Object.keys(traits).length > 0) (data.traits ??= {})[character.id] = { ...traits };
          else if (data.traits) delete data.traits[character.id];
          this.pushTurn(data, userTurn);
          await store.appendTurns(data.id, [userTurn], limits.maxHistoryTurns);
          await store.save(data);
          session.emit({ t: 'start', seq: 0, id: generation.id, character: character.id, state });
        },
        token: (piece) => {
          if (pieces.length === 0) m.ttft.observe(labels, (performance.now() - started) / 1000);
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
      if (!signal.aborted) {
        generation.ending = true;
        this.stopOrphanTimer(generation);
        const e = toNpcdError(err);
        m.turns.inc({ ...labels, outcome: 'failed' });
        this.log.warn({ err, session: session.id, character: character.id, code: e.code }, 'turn failed');
        session.emit({ t: 'error', seq: 0, id: generation.id, code: e.code, message: e.message });
        return;
      }
      finish = 'cancelled';
    }
    // A cancelled reply keeps what was streamed; usage counts it approximately.
    const replyText = pieces.join('');
    const usage = result?.usage ?? { prompt_tokens: userTurn.tokens, completion_tokens: countTokens(replyText) };
    generation.ending = true;
    this.stopOrphanTimer(generation);
    const replyTurn: Turn = { id: generation.id, role: 'assistant', character: character.id, text: replyText, at: Date.now(), tokens: usage.completion_tokens, seq: session.seq + 1, finish };
    this.pushTurn(data, replyTurn);
    try {
      await store.appendTurns(data.id, [replyTurn], limits.maxHistoryTurns);
    } catch (err) {
      this.log.error({ err, session: session.id }, 'could not store the reply');
    }
    session.emit({ t: 'done', seq: 0, id: generation.id, text: replyText, state, usage, finish });
    m.turns.inc({ ...labels, outcome: finish === 'cancelled' ? 'cancelled' : 'completed' });
    m.turnDuration.observe(labels, (performance.now() - started) / 1000);
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
      if (idleFor > replayRetentionMs && s.log.size > 0) s.log.clear();
      if (idleFor <= ttl) continue;
      this.live.delete(id);
      expired++;
      this.options.store.delete(id).catch((err) => this.log.error({ err, session: id }, 'could not delete expired session'));
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
    const running = [...this.generations];
    if (running.length === 0) return { finished: 0, cancelled: 0 };
    await waitAtMost(Promise.all(running.map((g) => g.finished)), timeoutMs);
    const left = [...this.generations];
    for (const g of left) g.controller.abort();
    await Promise.all(left.map((g) => g.finished));
    return { finished: running.length - left.length, cancelled: left.length };
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    for (const g of this.generations) g.controller.abort();
  }
}

/** Waits for `promise` to settle, or `ms` at most. */
async function waitAtMost(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((r) => (timer = setTimeout(r, ms)));
  await Promise.race([promise, deadline]);
  clearTimeout(timer);
}
