/**
 * Incremental newline-delimited JSON parsing over a streamed HTTP body (the
 * Ollama adapter's stream).
 */
import { UpstreamError } from './api.js';
import { quote, QUOTED_CHARS } from './http-api.js';

/** Default bound on one line, in UTF-8 bytes. */
export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024;

export interface NdjsonOptions {
  /** Bound on one line, in UTF-8 bytes (default 1 MiB). */
  readonly maxLineBytes?: number;
}

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
