/**
 * What the model API adapters (openai, ollama, dashscope) share: their
 * options, the request headers, and the small helpers for reading JSON
 * bodies and turning upstream text into a short, single-line message.
 */
import { isRecord } from '../protocol/validate.js';
import { type StreamDecoder, type StreamEvent, UpstreamError } from './api.js';
import { decodeChunks, empty } from './chunks.js';
import { NdjsonDecoder } from './ndjson.js';
import { SseDecoder, type SseEvent } from './sse.js';
import type { GenerateRequest } from './types.js';

export interface AdapterOptions {
  readonly model: string;
  /** Sent as `Authorization: Bearer`; when unset or empty, no authorization header is sent. */
  readonly apiKey?: string;
}

export interface HeaderOptions {
  /** The turn's W3C trace context, passed on as is (tracestate only with a traceparent). */
  readonly trace?: Pick<GenerateRequest, 'traceparent' | 'tracestate'>;
  /** The request has a JSON body. */
  readonly json?: boolean;
}

/**
 * The model and API key every adapter holds. The key is a private field,
 * so it never shows in JSON.stringify or util.inspect of an adapter.
 */
export abstract class KeyedAdapter {
  readonly model: string;
  readonly #apiKey: string | undefined;

  constructor(options: AdapterOptions) {
    this.model = options.model;
    this.#apiKey = options.apiKey || undefined;
  }

  /** The API key, kept out of quoted upstream text. */
  protected apiKey(): string | undefined {
    return this.#apiKey;
  }

  /** A decoder for one streamed body. */
  abstract decoder(): StreamDecoder;

  /** The events of a streamed body (decodeStream over a new decoder). */
  parseStream(body: AsyncIterable<Uint8Array>): AsyncGenerator<StreamEvent, void, void> {
    return decodeStream(this.decoder(), body);
  }

  protected headers(accept: string, options: HeaderOptions = {}): Record<string, string> {
    const { trace: { traceparent, tracestate } = {}, json = false } = options;
    return {
      ...(json && { 'content-type': 'application/json' }),
      accept,
      ...(this.#apiKey !== undefined && { authorization: `Bearer ${this.#apiKey}` }),
      ...(traceparent !== undefined && { traceparent }),
      ...(traceparent !== undefined && tracestate !== undefined && { tracestate }),
    };
  }
}

/** How much of a bad chunk an error message quotes. */
export const QUOTED_CHARS = 100;
/** How much of an error body without a JSON message a failure quotes. */
export const QUOTED_BODY_CHARS = 200;
/** Bound on an upstream's own error message. */
export const MESSAGE_CHARS = 500;

/**
 * Events read (and ignored) after an API's end marker before the body is
 * given up: reading a body to its end lets its connection go back to the
 * pool, but a peer that keeps talking after its end is not waited for.
 */
export const EVENTS_AFTER_END = 16;

export { isRecord };

/**
 * Parses one JSON chunk of a stream that must be an object; `what` names it
 * in the error, which quotes the chunk with `secret` (the API key) masked.
 * The parser's own error is not kept as the cause: its message quotes the
 * text again, unmasked.
 */
export function parseJsonObject(text: string, what: string, secret: string | undefined): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new UpstreamError('bad_response', `${what} is not JSON: ${quote(text, QUOTED_CHARS, secret)}`);
  }
  if (!isRecord(value)) throw new UpstreamError('bad_response', `${what} is not a JSON object: ${quote(text, QUOTED_CHARS, secret)}`);
  return value;
}

/** The body parsed as JSON, or undefined when it is not JSON (an HTML error page, plain text). */
export function tryParseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Upstream text fit for an error message and a log line: whitespace runs
 * (newlines included) become one space, at most `max` characters, "…" when
 * cut, and neither `secret` (the API key) nor a bearer token appears.
 */
export function quote(text: string, max: number, secret?: string): string {
  let s = text;
  if (secret) s = s.split(secret).join('***');
  s = s.replace(/\b(Bearer\s+)\S+/gi, '$1***');
  s = s.replace(/\s+/g, ' ').trim();
  if (s.length <= max) return s;
  // Do not cut between the two halves of a surrogate pair.
  const cut = /[\uD800-\uDBFF]/.test(s.charAt(max - 1)) ? max - 1 : max;
  return s.slice(0, cut) + '…';
}

/**
 * A StreamDecoder over records (SSE events, NDJSON values): subclasses split
 * chunks into records and turn each record into stream events.
 */
export abstract class RecordDecoder<R> implements StreamDecoder {
  /** Records seen after the end event; -1 before it. */
  #afterEnd = -1;
  readonly #records: R[] = [];

  get ended(): boolean {
    return this.#afterEnd >= 0;
  }

  get overrun(): boolean {
    return this.#afterEnd > EVENTS_AFTER_END;
  }

  /** Appends the records `chunk` completes. */
  protected abstract split(chunk: Uint8Array, into: R[]): void;
  /** Appends a last record the body ended inside of. */
  protected flush(_into: R[]): void {}
  /** Appends the events of one record; true when it was the end. */
  protected abstract record(record: R, out: StreamEvent[]): boolean;
  /** The error for a body that ended before its end marker. */
  protected abstract missingEnd(): UpstreamError;

  push(chunk: Uint8Array, out: StreamEvent[]): void {
    this.#take((into) => this.split(chunk, into), out);
  }

  end(out: StreamEvent[]): void {
    this.#take((into) => this.flush(into), out);
    if (!this.ended) throw this.missingEnd();
  }

  #take(fill: (into: R[]) => void, out: StreamEvent[]): void {
    const records = this.#records;
    let failure: unknown;
    try {
      fill(records);
    } catch (err) {
      failure = err;
    }
    try {
      for (const r of records) {
        if (this.#afterEnd >= 0) this.#afterEnd++;
        else if (this.record(r, out)) this.#afterEnd = 0;
      }
    } finally {
      empty(records);
    }
    // Garbage after the end marker does not fail a finished reply.
    if (failure !== undefined && this.#afterEnd < 0) throw failure;
  }
}

/** Records are Server-Sent Events. */
export abstract class SseRecordDecoder extends RecordDecoder<SseEvent> {
  readonly #sse = new SseDecoder();

  protected split(chunk: Uint8Array, into: SseEvent[]): void {
    this.#sse.push(chunk, into);
  }

  /**
   * True when a chunk of whole `data: …\n\n` events, within the size bound,
   * may be read without splitting (see SseDecoder.atEventStart): between
   * events, and before the end marker.
   */
  protected canTakeWhole(chunk: Uint8Array): boolean {
    return !this.ended && chunk.byteLength <= this.#sse.maxEventBytes && this.#sse.atEventStart;
  }
}

/** Records are NDJSON values. */
export abstract class NdjsonRecordDecoder extends RecordDecoder<unknown> {
  readonly #ndjson: NdjsonDecoder;

  /** `secret`: the API key, masked where a bad line is quoted. */
  constructor(secret: string | undefined) {
    super();
    this.#ndjson = new NdjsonDecoder({ secret });
  }

  protected split(chunk: Uint8Array, into: unknown[]): void {
    this.#ndjson.push(chunk, into);
  }

  protected override flush(into: unknown[]): void {
    this.#ndjson.end(into);
  }
}

/**
 * Yields the events of a streamed body through a decoder; returns after the
 * body (or gives it up once the decoder is overrun).
 */
export function decodeStream(decoder: StreamDecoder, body: AsyncIterable<Uint8Array>): AsyncGenerator<StreamEvent, void, void> {
  return decodeChunks<StreamEvent>(
    body,
    (chunk, out) => decoder.push(chunk, out),
    (out) => decoder.end(out),
    () => decoder.overrun,
  );
}
