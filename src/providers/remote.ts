/**
 * A provider that streams from an HTTP model API through a pooled upstream.
 * The API's shape comes from its adapter; everything else is here and the
 * same for every API:
 *
 * - time limits through one AbortSignal per attempt: time to first token and
 *   total time, both counted from the start of the turn (retries do not
 *   extend them);
 * - retries with exponential backoff and full jitter, only while nothing has
 *   been sent to the client yet; a 429 waits what its Retry-After asks, when
 *   that still fits before the first-token deadline;
 * - cancellation: when the caller's signal aborts (cancel frame, nobody
 *   waiting any more) the upstream request is aborted and its connection
 *   slot freed at once;
 * - every failure becomes an UpstreamError with its reason and code.
 */
import { type ApiAdapter, reasonOfStatus, type StreamEvent, UpstreamError, type UpstreamReason } from './api.js';
import { empty } from './chunks.js';
import { pause } from './pace.js';
import { pullReply, STOPPED } from './relay.js';
import type { GenerateRequest, GenerateResult, ModelProvider, ProviderHealth, TextSink } from './types.js';
import type { Slot, StreamedResponse, Upstream } from './upstream.js';

export interface RemoteLimits {
  /** No first token within this time (from the start of the turn) → ERR_UPSTREAM_TIMEOUT. */
  readonly ttftTimeoutMs: number;
  /** The reply must end within this time → ERR_UPSTREAM_TIMEOUT. */
  readonly totalTimeoutMs: number;
  /** Further attempts after a retryable failure before the first token. */
  readonly retries: number;
  /** First backoff; doubles per attempt, up to backoffMaxMs, with full jitter. */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
}

export type AttemptOutcome = 'ok' | 'cancelled' | UpstreamReason;

/** Hooks for metrics and logs; providers know nothing of prom-client. */
export interface UpstreamObserver {
  /** One HTTP attempt ended (a turn with retries has several). */
  attempt(upstream: string, outcome: AttemptOutcome, seconds: number): void;
  /** A retry is about to wait `delayMs` after a failure for `reason`. */
  retry(upstream: string, reason: UpstreamReason, delayMs: number): void;
}


/** Bytes of an error answer read to explain it. */
const MAX_ERROR_BODY = 16 * 1024;

export class RemoteProvider implements ModelProvider {
  readonly name: string;
  readonly description: string;
  readonly modelName: string;

  constructor(
    private readonly adapter: ApiAdapter,
    readonly upstream: Upstream,
    readonly limits: RemoteLimits,
    private readonly observer?: UpstreamObserver,
    private readonly random: () => number = Math.random,
  ) {
    this.name = adapter.kind;
    this.modelName = adapter.model;
    this.description = `${adapter.kind}: model ${adapter.model} at ${upstream.origin}${upstream.basePath} (${upstream.options.connections} connections, first token within ${limits.ttftTimeoutMs} ms, ${limits.retries} retries)`;
  }

  health(): readonly ProviderHealth[] {
    return [this.upstream.health()];
  }

  inRotation(): boolean {
    return this.upstream.isHealthy;
  }

  close(): Promise<void> {
    return this.upstream.close();
  }

  /** The wait before retry number `attempt` (0-based): full jitter over an exponential cap. */
  backoff(attempt: number): number {
    const cap = Math.min(this.limits.backoffMaxMs, this.limits.backoffBaseMs * 2 ** attempt);
    return Math.floor(this.random() * cap);
  }

  generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    return pullReply(signal, (s, onText) => this.relay(request, s, onText));
  }

  async relay(request: GenerateRequest, signal: AbortSignal, onText: TextSink): Promise<GenerateResult> {
    const started = Date.now();
    const ttftDeadline = started + this.limits.ttftTimeoutMs;
    const deadline = started + this.limits.totalTimeoutMs;
    const name = this.upstream.name;
    for (let attempt = 0; ; attempt++) {
      // A turn skips an upstream out of rotation, but one that started on it
      // makes its retries there: they are what rides out a short outage.
      if (attempt === 0 && !this.upstream.isHealthy) {
        throw new UpstreamError('unavailable', `${name} is out of rotation (${this.upstream.health().reason ?? 'failed health checks'})`);
      }
      const attemptStarted = performance.now();
      const controller = new AbortController();
      const onAbort = () => controller.abort(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      let firstTimer: NodeJS.Timeout | undefined = setTimeout(
        () => controller.abort(new UpstreamError('timeout', `${name} sent no first token within ${this.limits.ttftTimeoutMs} ms`)),
        Math.max(0, ttftDeadline - Date.now()),
      );
      const totalTimer = setTimeout(
        () => controller.abort(new UpstreamError('timeout', `${name} did not finish the reply within ${this.limits.totalTimeoutMs} ms`)),
        Math.max(0, deadline - Date.now()),
      );
      let slot: Slot | undefined;
      let res: StreamedResponse | undefined;
      let yielded = false;
      let outcome: AttemptOutcome = 'ok';
      try {
        signal.throwIfAborted();
        slot = await this.upstream.acquire(controller.signal);
        res = await this.upstream.stream(this.adapter.chatRequest(request), controller.signal);
        this.upstream.recordSuccess();
        if (res.statusCode < 200 || res.statusCode >= 300) {
          const text = await res.text(MAX_ERROR_BODY);
          const failure = this.adapter.failure(res.statusCode, text);
          throw new UpstreamError(failure.reason ?? reasonOfStatus(res.statusCode), `${name} answered ${res.statusCode}: ${failure.message}`, {
            status: res.statusCode,
            retryAfterMs: parseRetryAfter(res.headers['retry-after'], Date.now()),
          });
        }
        const type = String(res.headers['content-type'] ?? '');
        if (/^text\/html\b/i.test(type)) {
          throw new UpstreamError('bad_response', `${name} answered with an HTML page (${type}), not its API's stream: check the base URL`, { status: res.statusCode });
        }
        // Each chunk goes from the socket's callback through the decoder to
        // the client in one go: no promise, no queue per chunk.
        const decoder = this.adapter.decoder();
        const events: StreamEvent[] = [];
        let result: GenerateResult | undefined;
        let stopped = false;
        await res.consume((chunk) => {
          let failure: unknown;
          try {
            if (chunk === null) decoder.end(events);
            else decoder.push(chunk, events);
          } catch (err) {
            failure = err;
          }
          let text = '';
          for (const event of events) {
            if (event.type === 'text') text += event.text;
            else result = { finish: event.finish, usage: event.usage };
          }
          empty(events);
          let next: ReturnType<TextSink> = undefined;
          if (text !== '') {
            if (firstTimer) {
              clearTimeout(firstTimer);
              firstTimer = undefined;
            }
            yielded = true;
            next = onText(text);
            if (next === false) stopped = true;
          }
          if (failure !== undefined) throw failure;
          // The body is otherwise read to its end (usually nothing follows
          // the end marker) so the connection goes back to the pool.
          return decoder.overrun ? false : next;
        });
        if (stopped) return STOPPED;
        if (!result) throw new UpstreamError('bad_response', `${name}: the stream ended without its end marker`);
        // undici marks the connection free a tick after the body ended; the
        // turn ends after that, so the session's next turn reuses this
        // connection instead of opening another.
        await new Promise((resolve) => setImmediate(resolve));
        return result;
      } catch (err) {
        if (signal.aborted) {
          outcome = 'cancelled';
          throw signal.reason ?? err;
        }
        const failure = asUpstreamError(name, err, controller.signal);
        outcome = failure.reason;
        if (yielded || !failure.retryable || attempt >= this.limits.retries) throw failure;
        const wait = failure.reason === 'rate_limited' && failure.retryAfterMs !== undefined ? failure.retryAfterMs : this.backoff(attempt);
        // A retry that cannot get a first token in time only delays the error.
        if (Date.now() + wait >= ttftDeadline) throw failure;
        this.observer?.retry(name, failure.reason, wait);
        await pause(wait, signal);
      } finally {
        clearTimeout(firstTimer);
        clearTimeout(totalTimer);
        signal.removeEventListener('abort', onAbort);
        // A body not read to its end (abort, failure, consumer gone) closes its connection: the upstream stops generating.
        res?.close();
        slot?.release();
        this.observer?.attempt(name, outcome, (performance.now() - attemptStarted) / 1000);
      }
    }
  }
}

/**
 * The failure behind `err`: our own timeout when the attempt's signal fired,
 * an UpstreamError as it is, and anything else (socket closed mid-body,
 * undici errors) as the upstream becoming unreachable.
 */
function asUpstreamError(name: string, err: unknown, attempt: AbortSignal): UpstreamError {
  if (attempt.aborted && attempt.reason instanceof UpstreamError) return attempt.reason;
  if (err instanceof UpstreamError) return err;
  const e = err as { code?: string; message?: string };
  if (e.code === 'UND_ERR_SOCKET' || e.code === 'ECONNRESET' || e.code === 'UND_ERR_ABORTED') {
    return new UpstreamError('unavailable', `${name}: the connection closed in the middle of the reply`, { cause: err });
  }
  return new UpstreamError('bad_response', `${name}: ${e.message ?? String(err)}`, { cause: err });
}

/** Retry-After as milliseconds from `now`: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | string[] | undefined, now: number): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  const text = v.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}
