/**
 * What an HTTP model API (OpenAI chat completions, Ollama /api/chat,
 * DashScope text generation) must describe for npcd to stream from it: how a
 * chat request looks, how its streamed body parses, how its errors read. The
 * transport around it (pooled connections, time limits, retries, health
 * checks, fallback) is the same for every API and lives in remote.ts; an
 * adapter does no I/O of its own.
 */
import { type ErrorCode, NpcdError } from '../errors.js';
import type { GenerateRequest } from './types.js';

/** One HTTP request to an upstream, relative to its base URL. */
export interface UpstreamRequest {
  readonly method: 'GET' | 'POST';
  /** Path (and query) appended to the base URL's path. */
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string;
}

/** What a streamed body carries, in order: text pieces, then one end. */
export type StreamEvent =
  | { readonly type: 'text'; readonly text: string }
  | {
      readonly type: 'end';
      readonly finish: 'stop' | 'length';
      readonly usage?: { readonly promptTokens: number; readonly completionTokens: number };
    };

/**
 * Decodes one streamed body, chunk by chunk and synchronously, so that a
 * chunk costs no promise hops: `push` appends the events a chunk completes.
 * It throws UpstreamError ('bad_response') on a malformed chunk, or with the
 * reason an error event inside the stream names; the events before the bad
 * one are in `out` by then. After the end event, further records are
 * ignored (they are read so the connection can be reused) until more than a
 * few arrive (`overrun`: stop reading).
 */
export interface StreamDecoder {
  push(chunk: Uint8Array, out: StreamEvent[]): void;
  /** The body ended: appends what a last unterminated record holds; throws bad_response when the end marker never came. */
  end(out: StreamEvent[]): void;
  /** True once the end event was appended. */
  readonly ended: boolean;
  /** The peer kept talking after its end marker: give the body up. */
  readonly overrun: boolean;
}

/** A non-2xx answer, as the API's error body explains it. */
export interface UpstreamFailure {
  /** The upstream's own message (never a credential). */
  readonly message: string;
  /**
   * How to classify it when the status alone does not say: some APIs report
   * throttling or overload in the body (DashScope "Throttling.*").
   */
  readonly reason?: UpstreamReason;
}

export interface ApiAdapter {
  /** API kind, a bounded metric label: "openai", "ollama", "dashscope". */
  readonly kind: string;
  /** The model name sent upstream. */
  readonly model: string;
  /** The streamed chat request for a turn. */
  chatRequest(request: GenerateRequest): UpstreamRequest;
  /** A cheap request whose 2xx answer means the upstream is up (e.g. GET /api/tags). */
  healthRequest(): UpstreamRequest;
  /** A decoder for one 2xx streamed body (see StreamDecoder). */
  decoder(): StreamDecoder;
  /** Explains a non-2xx answer from its status and (bounded) body text. */
  failure(status: number, body: string): UpstreamFailure;
}

/** Why an upstream call failed; each has its own client-facing code. */
export type UpstreamReason = 'unavailable' | 'timeout' | 'rate_limited' | 'bad_response' | 'rejected';

export const REASON_CODES: Readonly<Record<UpstreamReason, ErrorCode>> = {
  unavailable: 'ERR_UPSTREAM_UNAVAILABLE',
  timeout: 'ERR_UPSTREAM_TIMEOUT',
  rate_limited: 'ERR_UPSTREAM_RATE_LIMITED',
  bad_response: 'ERR_UPSTREAM_BAD_RESPONSE',
  rejected: 'ERR_UPSTREAM_REJECTED',
};

/** A failed upstream call, with its reason (a bounded metric label) and what a retry should wait for. */
export class UpstreamError extends NpcdError {
  constructor(
    readonly reason: UpstreamReason,
    message: string,
    options: { cause?: unknown; retryAfterMs?: number; status?: number } = {},
  ) {
    super(REASON_CODES[reason], message, { cause: options.cause });
    this.retryAfterMs = options.retryAfterMs;
    this.upstreamStatus = options.status;
  }

  /** From a 429's Retry-After (or the API's own hint). */
  readonly retryAfterMs: number | undefined;
  /** The upstream's HTTP status when it answered. */
  readonly upstreamStatus: number | undefined;

  /** Worth another try (before the first token): everything but a refusal or a bad response. */
  get retryable(): boolean {
    return this.reason === 'unavailable' || this.reason === 'rate_limited' || this.reason === 'timeout';
  }
}

/** The reason a status means on its own (adapters may refine it from the body). */
export function reasonOfStatus(status: number): UpstreamReason {
  if (status === 429) return 'rate_limited';
  if (status === 408 || status === 504) return 'timeout';
  if (status >= 500) return 'unavailable';
  if (status >= 400) return 'rejected';
  return 'bad_response';
}
