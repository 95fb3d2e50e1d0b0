/**
 * Incremental newline-delimited JSON parsing over a streamed HTTP body (the
 * Ollama adapter's stream), and the small helpers all adapters share:
 * parsing a chunk into an object, turning upstream text into a short,
 * single-line message, and how far to read past an end marker.
 */
import { UpstreamError } from './api.js';

/** Default bound on one line, in UTF-8 bytes. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export interface NdjsonOptions {
  /** Bound on one line, in UTF-8 bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
}

/** How much of a bad chunk an error message quotes. */
const QUOTED_CHARS = 100;

/**
 * Yields the JSON value of each line as the chunks arrive. Lines end with LF
 * (a CR before it is JSON whitespace); blank lines are skipped. A last line
 * without LF is parsed when the body ends. Throws
 * UpstreamError('bad_response') on a line that is not JSON or is longer than
 * the bound.
 */
export async function* parseNdjson(body: AsyncIterable<Uint8Array>, options: NdjsonOptions = {}): AsyncGenerator<unknown, void, void> {
  const limit = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const decoder = new TextDecoder('utf-8');
  let partial = '';
  let lineNo = 0;

  function parse(line: string, terminated: boolean): unknown {
    lineNo++;
    if (Buffer.byteLength(line, 'utf8') > limit) throw new UpstreamError('bad_response', `NDJSON line ${lineNo} longer than ${limit} bytes`);
    try {
      return JSON.parse(line);
    } catch (err) {
      const what = terminated ? `malformed NDJSON line at line ${lineNo}` : `stream ended inside NDJSON line ${lineNo}`;
      throw new UpstreamError('bad_response', `${what}: ${quote(line, QUOTED_CHARS)}`, { cause: err });
    }
  }

  for await (const chunk of body) {
    const text = decoder.decode(chunk, { stream: true });
    let pos = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', pos)) {
      const line = partial + text.slice(pos, end);
      partial = '';
      pos = end + 1;
      if (isBlank(line)) {
        lineNo++;
        continue;
      }
      yield parse(line, true);
    }
    if (pos < text.length) {
      partial += text.slice(pos);
      // Code units never outnumber UTF-8 bytes: an unended line over the
      // bound here is over it in bytes too.
      if (partial.length > limit) throw new UpstreamError('bad_response', `NDJSON line ${lineNo + 1} longer than ${limit} bytes`);
    }
  }
  partial += decoder.decode();
  if (!isBlank(partial)) yield parse(partial, false);
}

function isBlank(line: string): boolean {
  return /^\s*$/.test(line);
}

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
