/**
 * One upstream (an origin such as http://127.0.0.1:11434): an undici Pool
 * with bounded connections, keep-alive with an idle timeout, a connect
 * timeout and TCP keep-alive; a bounded wait for a free connection; and
 * health checks that take the upstream out of rotation and bring it back.
 *
 * Why a slot gate in front of undici: undici queues requests without bound
 * when every connection is busy, so a slow upstream would turn into an
 * ever-growing queue of turns. Here a turn waits at most `acquireTimeoutMs`
 * for one of `connections` slots, and the wait is visible (`waiting`).
 */
import type { IncomingHttpHeaders } from 'node:http';
import { type Dispatcher, Pool } from 'undici';
import type { ApiAdapter, UpstreamRequest } from './api.js';
import { UpstreamError } from './api.js';
import type { ProviderHealth } from './types.js';
import { WaitLine } from './wait-line.js';

export interface UpstreamOptions {
  /** Most connections open to this origin (and most requests in flight). */
  readonly connections: number;
  /** A connection idle this long is closed (a server's own Keep-Alive hint may be shorter). */
  readonly idleTimeoutMs: number;
  readonly connectTimeoutMs: number;
  /** Longest wait for a free connection before a turn fails with ERR_UPSTREAM_UNAVAILABLE. */
  readonly acquireTimeoutMs: number;
  /** TCP keep-alive probes start after this much idle time on a socket. */
  readonly tcpKeepAliveMs: number;
  /**
   * Health checks run this often; 0 turns them off, and with them taking the
   * upstream out of rotation (nothing would bring it back): every turn tries it.
   */
  readonly healthIntervalMs: number;
  /** Consecutive failures (checks or connection failures) that take the upstream out of rotation. */
  readonly unhealthyAfter: number;
}

/** Bytes of a health check's answer read (a model list); a longer one closes its connection. */
const MAX_HEALTH_BODY = 1024 * 1024;

export interface UpstreamStats {
  /** Connections carrying a request. */
  readonly inUse: number;
  /** Open connections without a request (kept alive for reuse). */
  readonly idle: number;
  /** Turns waiting for a free connection. */
  readonly waiting: number;
  /** Connections opened since start (a reused connection is not counted again). */
  readonly opened: number;
}

/** A slot is held while a request is in flight, from send until its body is consumed or dropped. */
export interface Slot {
  release(): void;
}

export class Upstream {
  readonly pool: Pool;
  readonly origin: string;
  /** The base URL's path (e.g. "/v1"), prefixed to every request path. */
  readonly basePath: string;
  private inUse = 0;
  private readonly waiters = new WaitLine<Slot>();
  private opened = 0;
  private healthy = true;
  private failures = 0;
  private lastReason: string | undefined;
  /** When a real request last got an answer (a health check's own answer does not count). */
  private lastSuccess = 0;
  private healthTimer: NodeJS.Timeout | undefined;
  private checking = false;
  private closed = false;
  private readonly listeners = new Set<(healthy: boolean, reason: string | undefined) => void>();

  constructor(
    /** Label-safe name, e.g. "openai:gpt-4o-mini". */
    readonly name: string,
    baseUrl: string,
    private readonly adapter: ApiAdapter,
    readonly options: UpstreamOptions,
  ) {
    const url = new URL(baseUrl);
    this.origin = url.origin;
    this.basePath = url.pathname.replace(/\/+$/, '');
    this.pool = new Pool(this.origin, {
      connections: options.connections,
      // One request per connection at a time: a streamed reply holds its connection.
      pipelining: 1,
      keepAliveTimeout: options.idleTimeoutMs,
      keepAliveMaxTimeout: options.idleTimeoutMs,
      // Time limits per turn are ours (AbortSignal); undici's own would cut long replies.
      headersTimeout: 0,
      bodyTimeout: 0,
      connect: { timeout: options.connectTimeoutMs, keepAlive: true, keepAliveInitialDelay: options.tcpKeepAliveMs },
    });
    this.pool.on('connect', () => this.opened++);
    if (options.healthIntervalMs > 0) this.scheduleHealthCheck(options.healthIntervalMs);
  }

  get stats(): UpstreamStats {
    const s = this.pool.stats;
    return { inUse: this.inUse, idle: Math.max(0, s.free), waiting: this.waiters.length, opened: this.opened };
  }

  health(): ProviderHealth {
    return this.healthy ? { name: this.name, healthy: true } : { name: this.name, healthy: false, reason: this.lastReason };
  }

  get isHealthy(): boolean {
    return this.healthy;
  }

  /** Called when the upstream leaves or rejoins rotation. */
  onHealthChange(listener: (healthy: boolean, reason: string | undefined) => void): void {
    this.listeners.add(listener);
  }

  /**
   * Waits for a free connection slot, at most acquireTimeoutMs; rejects with
   * ERR_UPSTREAM_UNAVAILABLE when none frees up, or with the signal's reason.
   */
  acquire(signal: AbortSignal): Promise<Slot> {
    if (this.closed) return Promise.reject(new UpstreamError('unavailable', `upstream ${this.name} is closed`));
    signal.throwIfAborted();
    if (this.inUse < this.options.connections) {
      this.inUse++;
      return Promise.resolve(this.slot());
    }
    return this.waiters.wait(signal, undefined, {
      ms: this.options.acquireTimeoutMs,
      error: () => new UpstreamError('unavailable', `no free connection to ${this.name} within ${this.options.acquireTimeoutMs} ms (${this.options.connections} in use)`),
    });
  }

  private slot(): Slot {
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        // Hand the slot straight to the next waiter (FIFO), or give it back.
        if (!this.waiters.serve(() => this.slot())) this.inUse--;
      },
    };
  }

  /**
   * Sends a streamed request holding a slot; resolves once the response
   * headers arrived, its body handed over chunk by chunk (see
   * StreamedResponse). Network failures become UpstreamError('unavailable');
   * an abort rejects with the signal's reason.
   */
  async stream(req: UpstreamRequest, signal: AbortSignal): Promise<StreamedResponse> {
    const response = new StreamedResponse(signal);
    this.pool.dispatch({ method: req.method, path: this.basePath + req.path, headers: req.headers, body: req.body }, response);
    try {
      await response.started;
      return response;
    } catch (err) {
      if (signal.aborted) throw signal.reason;
      const e = networkError(this.name, err);
      this.recordFailure(e.message);
      throw e;
    }
  }

  /** A request that reached the upstream and got an answer (any status); `check` for a passing health check. */
  recordSuccess(check = false): void {
    if (!check) this.lastSuccess = Date.now();
    if (!this.healthy) this.setHealthy(true, undefined);
    this.failures = 0;
  }

  /** A connection-level failure (refused, reset, connect timeout) or a failed check. */
  recordFailure(reason: string): void {
    this.failures++;
    this.lastReason = reason;
    if (this.healthy && this.options.healthIntervalMs > 0 && this.failures >= this.options.unhealthyAfter) this.setHealthy(false, reason);
  }

  private setHealthy(healthy: boolean, reason: string | undefined): void {
    this.healthy = healthy;
    this.lastReason = reason;
    for (const l of this.listeners) l(healthy, reason);
    // An upstream out of rotation is checked more often, so it comes back soon.
    if (this.options.healthIntervalMs > 0) this.scheduleHealthCheck(healthy ? this.options.healthIntervalMs : Math.max(250, Math.floor(this.options.healthIntervalMs / 2)));
  }

  private scheduleHealthCheck(every: number): void {
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.healthTimer = setInterval(() => void this.checkHealth(), every);
    this.healthTimer.unref();
  }

  /**
   * One health check: the adapter's cheap request, answered 2xx within the
   * connect timeout. Skipped while real requests succeed (one answered
   * within the interval proves more) and while every slot is busy (a check
   * must not queue behind turns).
   */
  async checkHealth(): Promise<boolean> {
    if (this.checking || this.closed) return this.healthy;
    if (this.healthy && Date.now() - this.lastSuccess < this.options.healthIntervalMs) return true;
    if (this.inUse >= this.options.connections) return this.healthy;
    this.checking = true;
    this.inUse++;
    const slot = this.slot();
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new UpstreamError('timeout', 'health check timed out')), Math.max(this.options.connectTimeoutMs, 1000));
    try {
      const res = await this.stream(this.adapter.healthRequest(), controller.signal);
      // Read to its end (bounded), so the connection stays in the pool for turns.
      await res.text(MAX_HEALTH_BODY);
      if (res.statusCode >= 200 && res.statusCode < 300) {
        this.recordSuccess(true);
        return true;
      }
      this.recordFailure(`health check answered ${res.statusCode}`);
      return false;
    } catch (err) {
      // stream() already counted network failures.
      if (controller.signal.aborted) this.recordFailure(`health check timed out`);
      else if (!(err instanceof UpstreamError)) this.recordFailure((err as Error).message);
      return false;
    } finally {
      clearTimeout(timer);
      slot.release();
      this.checking = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.healthTimer) clearInterval(this.healthTimer);
    this.waiters.rejectAll(new UpstreamError('unavailable', `upstream ${this.name} is closed`));
    await this.pool.destroy();
  }
}

/** undici and socket errors by code; all are "the upstream cannot be reached". */
function networkError(name: string, err: unknown): UpstreamError {
  const e = err as { code?: string; message?: string };
  const code = e.code ?? '';
  const what =
    code === 'ECONNREFUSED' ? 'connection refused'
    : code === 'UND_ERR_CONNECT_TIMEOUT' ? 'connect timed out'
    : code === 'ECONNRESET' || code === 'UND_ERR_SOCKET' ? 'connection reset'
    : code === 'ENOTFOUND' || code === 'EAI_AGAIN' ? 'host not found'
    : (e.message ?? String(err));
  return new UpstreamError('unavailable', `${name}: ${what}`, { cause: err });
}

/**
 * Takes one chunk of a body (null at its end): nothing to go on, a promise to
 * pause reading until it settles, or false to stop the body.
 */
export type ChunkConsumer = (chunk: Buffer | null) => void | false | Promise<void>;

interface Consumer {
  readonly onChunk: ChunkConsumer;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** Bytes a response may hold for a slow reader before the upstream socket is paused. */
const RESPONSE_HIGH_WATER = 256 * 1024;

/**
 * A response whose body goes to its reader chunk by chunk on the socket's own
 * callback (consume()), with no stream object in between: a token's way from
 * the socket to the client stays a few calls (an undici Readable and its
 * async iterator cost several promises per chunk). Chunks that arrive before
 * the reader is attached wait in a bounded queue.
 */
export class StreamedResponse implements Dispatcher.DispatchHandler {
  statusCode = 0;
  headers: IncomingHttpHeaders = {};
  /** Settles when the headers arrived (or the request failed before). */
  readonly started: Promise<void>;
  #start!: { resolve: () => void; reject: (err: unknown) => void };
  #controller: Dispatcher.DispatchController | undefined;
  #chunks: Buffer[] = [];
  #queued = 0;
  #ended = false;
  #failure: unknown;
  /** Promises of the consumer that hold the reading paused. */
  #held = 0;
  #consumer: Consumer | undefined;
  readonly #onAbort: () => void;

  constructor(private readonly signal: AbortSignal) {
    this.started = new Promise<void>((resolve, reject) => (this.#start = { resolve, reject }));
    // A rejection nobody awaits yet (the request failed before headers) is handled where `started` is awaited.
    this.started.catch(() => undefined);
    this.#onAbort = () => this.#controller?.abort(signal.reason as Error);
    signal.addEventListener('abort', this.#onAbort, { once: true });
  }

  onRequestStart(controller: Dispatcher.DispatchController): void {
    this.#controller = controller;
    if (this.signal.aborted) controller.abort(this.signal.reason as Error);
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.statusCode = statusCode;
    this.headers = headers;
    this.#start.resolve();
  }

  onResponseData(controller: Dispatcher.DispatchController, chunk: Buffer): void {
    // A consumer that is not holding the reading gets the chunk at once.
    if (this.#consumer && this.#held === 0 && this.#chunks.length === 0) return this.#deliver(this.#consumer, chunk);
    this.#chunks.push(chunk);
    this.#queued += chunk.length;
    // undici hands over the chunk it is parsing even when paused from outside its callback.
    if (this.#consumer || this.#queued > RESPONSE_HIGH_WATER) controller.pause();
  }

  onResponseEnd(): void {
    this.#ended = true;
    this.#finish();
  }

  onResponseError(_controller: Dispatcher.DispatchController, err: Error): void {
    this.#failure = err;
    this.#start.reject(err);
    this.#finish();
  }

  #finish(): void {
    this.signal.removeEventListener('abort', this.#onAbort);
    this.#drain();
  }

  /**
   * Hands the body to `onChunk` as it arrives, chunk by chunk, on the socket's
   * own callback: no promise and no queue per chunk. `onChunk(null)` marks the
   * end. A returned promise holds the reading (the socket is paused) until it
   * settles; `false` stops the body (as close() does) and resolves. Resolves
   * when the body ended; rejects with the failure that ended it, or with what
   * `onChunk` threw. Only one consumer.
   */
  consume(onChunk: ChunkConsumer): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#consumer = { onChunk, resolve, reject };
      this.#drain();
    });
  }

  /** Gives the consumer what is queued, then the end, while it does not hold the reading. */
  #drain(): void {
    let consumer = this.#consumer;
    while (consumer && this.#held === 0 && this.#chunks.length > 0) {
      const chunk = this.#chunks.shift()!;
      this.#queued -= chunk.length;
      this.#deliver(consumer, chunk);
      consumer = this.#consumer;
    }
    if (!consumer || this.#held > 0) return;
    if (this.#failure !== undefined) {
      this.#consumer = undefined;
      return consumer.reject(this.#failure);
    }
    if (this.#ended) {
      this.#consumer = undefined;
      try {
        consumer.onChunk(null);
        consumer.resolve();
      } catch (err) {
        consumer.reject(err);
      }
      return;
    }
    if (this.#controller?.paused) this.#controller.resume();
  }

  #deliver(consumer: Consumer, chunk: Buffer): void {
    let next: ReturnType<ChunkConsumer>;
    try {
      next = consumer.onChunk(chunk);
    } catch (err) {
      this.#consumer = undefined;
      this.close();
      return consumer.reject(err);
    }
    if (next === false) {
      this.#consumer = undefined;
      this.close();
      // Stopped by its reader: not a failure.
      return consumer.resolve();
    }
    if (!next) return;
    this.#held++;
    this.#controller?.pause();
    next.then(
      () => {
        this.#held--;
        if (this.#consumer === consumer) this.#drain();
      },
      (err: unknown) => {
        this.#held--;
        if (this.#consumer !== consumer) return;
        this.#consumer = undefined;
        this.close();
        consumer.reject(err);
      },
    );
  }

  /** Reads at most `limit` bytes of the body as text (an error answer), then stops it. */
  async text(limit: number): Promise<string> {
    const parts: Buffer[] = [];
    let size = 0;
    try {
      await this.consume((chunk) => {
        if (chunk === null) return;
        parts.push(chunk);
        size += chunk.length;
        if (size >= limit) return false;
      });
    } catch {
      // A cut error body still explains something with what arrived.
    }
    return Buffer.concat(parts).subarray(0, limit).toString('utf8');
  }

  /** Stops the body: a request not ended yet is aborted (its connection closes, the upstream stops generating). */
  close(): void {
    if (this.#ended || this.#failure !== undefined) return;
    const reason = new Error('response closed by npcd');
    this.#failure = reason;
    this.#controller?.abort(reason);
    this.#finish();
  }
}
