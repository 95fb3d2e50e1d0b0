/**
 * Incremental newline-delimited JSON parsing over a streamed HTTP body (the
 * Ollama adapter's stream).
 */
import { UpstreamError } from './api.js';
import { decodeChunks } from './chunks.js';
import { quote, QUOTED_CHARS } from './http-api.js';

/** Default bound on one line, in UTF-8 bytes. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export interface NdjsonOptions {
  /** Bound on one line, in UTF-8 bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
  /** Masked where a bad line is quoted in an error (an API key the upstream might echo). */
  readonly secret?: string;
}

/**
 * Decodes NDJSON chunk by chunk, synchronously: `push` appends the JSON value
 * of each line a chunk completes, `end` that of a last line without LF.
 * Lines end with LF (a CR before it is JSON whitespace); blank lines are
 * skipped. Throws UpstreamError('bad_response') on a line that is not JSON
 * or is longer than the bound; the values before it are in `out` by then.
 */
export class NdjsonDecoder {
  readonly #limit: number;
  readonly #secret: string | undefined;
  readonly #decoder = new TextDecoder('utf-8');
  #partial = '';
  #lineNo = 0;

  constructor(options: NdjsonOptions = {}) {
    this.#limit = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.#secret = options.secret;
  }

  push(chunk: Uint8Array, out: unknown[]): void {
    const text = this.#decoder.decode(chunk, { stream: true });
    let pos = 0;
    for (let end = text.indexOf('\n'); end >= 0; end = text.indexOf('\n', pos)) {
      const line = this.#partial === '' ? text.slice(pos, end) : this.#partial + text.slice(pos, end);
      this.#partial = '';
      pos = end + 1;
      if (isBlank(line)) {
        this.#lineNo++;
        continue;
      }
      out.push(this.#parse(line, true));
    }
    if (pos < text.length) {
      this.#partial += text.slice(pos);
      // Code units never outnumber UTF-8 bytes: an unended line over the
      // bound here is over it in bytes too.
      if (this.#partial.length > this.#limit) throw new UpstreamError('bad_response', `NDJSON line ${this.#lineNo + 1} longer than ${this.#limit} bytes`);
    }
  }

  /** The body ended: parses a last line that had no LF. */
  end(out: unknown[]): void {
    const last = this.#partial + this.#decoder.decode();
    this.#partial = '';
    if (!isBlank(last)) out.push(this.#parse(last, false));
  }

  #parse(line: string, terminated: boolean): unknown {
    const lineNo = ++this.#lineNo;
    if (Buffer.byteLength(line, 'utf8') > this.#limit) throw new UpstreamError('bad_response', `NDJSON line ${lineNo} longer than ${this.#limit} bytes`);
    try {
      return JSON.parse(line);
    } catch {
      // Not the parser's error as the cause: its message quotes the line unmasked.
      const what = terminated ? `malformed NDJSON line at line ${lineNo}` : `stream ended inside NDJSON line ${lineNo}`;
      throw new UpstreamError('bad_response', `${what}: ${quote(line, QUOTED_CHARS, this.#secret)}`);
    }
  }
}

/** Yields the JSON value of each line as the chunks arrive (see NdjsonDecoder). */
export function parseNdjson(body: AsyncIterable<Uint8Array>, options: NdjsonOptions = {}): AsyncGenerator<unknown, void, void> {
  const decoder = new NdjsonDecoder(options);
  return decodeChunks<unknown>(
    body,
    (chunk, out) => decoder.push(chunk, out),
    (out) => decoder.end(out),
  );
}

function isBlank(line: string): boolean {
  return /^\s*$/.test(line);
}
