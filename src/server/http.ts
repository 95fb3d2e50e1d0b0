/**
 * One HTTP exchange on uWebSockets.js: registers onAborted before anything
 * else, reads the body within a limit, corks every write that follows an
 * async gap, and records the HTTP metrics once when the response ends.
 */
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import { NpcdError, toNpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import { type TraceHeaders, traceHeaders } from '../tracing/trace-context.js';

const STATUS_TEXT: Record<number, string> = {
  200: 'OK', 201: 'Created', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  408: 'Request Timeout', 409: 'Conflict', 410: 'Gone', 413: 'Payload Too Large', 426: 'Upgrade Required', 429: 'Too Many Requests',
  500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

export function statusLine(status: number): string {
  return `${status} ${STATUS_TEXT[status] ?? 'Unknown'}`;
}

/** Status recorded for requests the client abandoned before the response ended (as nginx does). */
export const CLIENT_CLOSED = 499;

export interface ExchangeDeps {
  readonly metrics: Metrics;
  readonly logger: Logger;
}

/** Turns an error into the JSON body of its response (npcd's shape unless a route speaks another API's). */
export type ErrorBody = (e: NpcdError) => unknown;

export const npcdErrorBody: ErrorBody = (e) => ({ error: { code: e.code, message: e.message, ...(e.detail ?? {}) } });

/** Request headers copied for handlers. */
const COPIED_HEADERS = ['authorization', 'content-length', 'accept', 'x-session-id', 'traceparent', 'tracestate'] as const;

export class HttpExchange {
  aborted = false;
  /** True once the response has ended (or was aborted). */
  finished = false;
  private readonly started = performance.now();
  private abortHandlers: (() => void)[] = [];
  /** Headers copied out of the request, which is only valid during the route callback. */
  readonly headers: Readonly<Record<string, string>>;
  readonly query: string;
  /** How errors on this exchange are written. */
  errorBody: ErrorBody = npcdErrorBody;

  constructor(
    readonly res: HttpResponse,
    req: HttpRequest,
    readonly route: string,
    readonly method: string,
    private readonly deps: ExchangeDeps,
  ) {
    res.onAborted(() => {
      this.aborted = true;
      if (!this.finished) this.record(CLIENT_CLOSED, 'client_closed');
      this.finished = true;
      for (const h of this.abortHandlers) h();
    });
    const headers: Record<string, string> = {};
    for (const name of COPIED_HEADERS) headers[name] = req.getHeader(name);
    this.headers = headers;
    this.query = req.getQuery() ?? '';
  }

  /** The client's W3C trace context (traceparent and tracestate headers); undefined when absent or invalid. */
  get trace(): TraceHeaders | undefined {
    return traceHeaders(this.headers.traceparent || undefined, this.headers.tracestate || undefined);
  }

  onAbort(handler: () => void): void {
    this.abortHandlers.push(handler);
  }

  private record(status: number, reason?: string): void {
    const m = this.deps.metrics;
    m.httpRequests.inc({ route: this.route, method: this.method, status_code: String(status) });
    m.httpDuration.observe({ route: this.route }, (performance.now() - this.started) / 1000);
    if (reason) m.httpFailed.inc({ route: this.route, reason });
  }

  /** Marks the response ended for metrics; call once, right after the final end(). */
  ended(status = 200, reason?: string): void {
    if (this.finished) return;
    this.finished = true;
    this.record(status, reason);
  }

  /** Sends a complete response. `close` asks uWS to close the connection after it. */
  send(status: number, contentType: string, body: string | Uint8Array, extraHeaders: Record<string, string> = {}, close = false, reason?: string): void {
    if (this.finished) return;
    this.res.cork(() => {
      this.res.writeStatus(statusLine(status)).writeHeader('Content-Type', contentType);
      for (const [k, v] of Object.entries(extraHeaders)) this.res.writeHeader(k, v);
      this.res.end(body, close);
    });
    this.ended(status, reason);
  }

  json(status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
    this.send(status, 'application/json; charset=utf-8', JSON.stringify(body), extraHeaders);
  }

  error(err: unknown, extraHeaders: Record<string, string> = {}): void {
    if (this.finished) return;
    const e = toNpcdError(err);
    if (e.code === 'ERR_INTERNAL') this.deps.logger.error({ err, route: this.route }, 'request failed');
    const body = JSON.stringify(this.errorBody(e));
    // A body we refuse to read must not be parsed as the next request.
    const close = e.code === 'ERR_HTTP_BODY_TOO_LARGE';
    this.send(e.status, 'application/json; charset=utf-8', body, extraHeaders, close, e.code);
  }

  /** Starts a streamed 200 response (headers now, body later). */
  beginStream(headers: Record<string, string>): void {
    this.res.cork(() => this.writeHead(headers));
  }

  /** Writes the status line of a 200 response and `headers`; call corked, before any body. */
  writeHead(headers: Record<string, string>): void {
    this.res.writeStatus(statusLine(200));
    for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
  }

  /**
   * Reads the whole request body, refusing more than `limit` bytes (checked
   * against Content-Length first, then while the body arrives).
   */
  readBody(limit: number): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const declared = this.headers['content-length'];
      if (declared && Number(declared) > limit) {
        reject(new NpcdError('ERR_HTTP_BODY_TOO_LARGE', `body of ${declared} bytes exceeds the limit of ${limit} bytes`));
        return;
      }
      const chunks: Buffer[] = [];
      let size = 0;
      let failed = false;
      this.onAbort(() => reject(new NpcdError('ERR_INTERNAL', 'client aborted the request')));
      this.res.onData((chunk, isLast) => {
        if (failed) return;
        size += chunk.byteLength;
        if (size > limit) {
          failed = true;
          reject(new NpcdError('ERR_HTTP_BODY_TOO_LARGE', `body exceeds the limit of ${limit} bytes`));
          return;
        }
        // The chunk's memory is reused by uWS after this callback: copy it.
        chunks.push(Buffer.from(chunk.slice(0)));
        if (isLast) resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, size));
      });
    });
  }
}
