/**
 * What the model API adapters (openai, ollama, dashscope) share: their
 * options, the request headers, and the small helpers for reading JSON
 * bodies and turning upstream text into a short, single-line message.
 */
import { UpstreamError } from './api.js';

export interface AdapterOptions {
  readonly model: string;
  /** Sent as `Authorization: Bearer`; when unset or empty, no authorization header is sent. */
  readonly apiKey?: string;
}

export interface HeaderOptions {
  /** The W3C trace context of the turn, passed on as is. */
  readonly traceparent?: string | undefined;
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

  protected headers(accept: string, options: HeaderOptions = {}): Record<string, string> {
    const { traceparent, json = false } = options;
    return {
      ...(json && { 'content-type': 'application/json' }),
      accept,
      ...(this.#apiKey !== undefined && { authorization: `Bearer ${this.#apiKey}` }),
      ...(traceparent !== undefined && { traceparent }),
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

/** A plain object (not null, not an array). */
export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Parses one JSON chunk of a stream that must be an object; `what` names it in the error. */
export function parseJsonObject(text: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UpstreamError('bad_response', `${what} is not JSON: ${quote(text, QUOTED_CHARS)}`, { cause: err });
  }
  if (!isRecord(value)) throw new UpstreamError('bad_response', `${what} is not a JSON object: ${quote(text, QUOTED_CHARS)}`);
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
