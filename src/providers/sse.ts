/**
 * Incremental Server-Sent Events parsing over a streamed HTTP body, as the
 * WHATWG HTML standard defines it ("Parsing an event stream"): UTF-8 decoded
 * across chunk boundaries, lines ended by LF, CRLF or a lone CR, `data:`
 * lines joined with "\n", an event dispatched at each blank line. The OpenAI
 * and DashScope adapters read their streams through it.
 *
 * Unlike a browser EventSource it also hands out comment lines, because
 * DashScope reports each event's HTTP status in one (`:HTTP_STATUS/429`), and
 * it is bounded: a peer that never ends a line or an event cannot make it
 * buffer without limit.
 */
import { UpstreamError } from './api.js';

/** Default bound on one line and on one event (its lines, without line ends), in UTF-8 bytes. */
export const DEFAULT_MAX_EVENT_BYTES = 1024 * 1024;

/** One dispatched event. */
export interface SseEvent {
  /** The `event:` field; "message" when the event had none (or an empty one). */
  readonly event: string;
  /** The `data:` lines, joined with "\n". */
  readonly data: string;
  /** The last event ID as of this event: an `id:` carries over to later events, as the spec says. */
  readonly id?: string;
  /** A `retry:` given in this event's lines, in milliseconds. */
  readonly retry?: number;
  /** Comment lines of this event, without the leading ":", in order. */
  readonly comments?: readonly string[];
}

export interface SseOptions {
  /** Bound on one line and on one event, in UTF-8 bytes (default 1 MiB). */
  readonly maxEventBytes?: number;
}

const LF = 0x0a;
const CR = 0x0d;

/**
 * Yields the events of an event stream as its chunks arrive. Throws
 * UpstreamError('bad_response') when a line or an event is longer than the
 * bound. An event not closed by a blank line when the body ends is dropped,
 * as the spec says: callers detect a cut stream by their API's end marker.
 */
export async function* parseSse(body: AsyncIterable<Uint8Array>, options: SseOptions = {}): AsyncGenerator<SseEvent, void, void> {
  const limit = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
  // Non-fatal decoding: invalid bytes become U+FFFD, as the spec's UTF-8
  // decode does; a leading BOM is dropped. Stream mode keeps a character
  // whose bytes straddle two chunks whole.
  const decoder = new TextDecoder('utf-8');
  const block = new EventBlock(limit);
  /** Text of the line not ended yet. */
  let partial = '';
  /** The previous text ended with CR: a LF starting the next one is part of the same line end. */
  let afterCr = false;
  // One per call: a shared global regex's lastIndex would be clobbered by
  // other streams parsed while this generator waits at a yield.
  const lineEnd = /[\r\n]/g;

  for await (const chunk of body) {
    const text = decoder.decode(chunk, { stream: true });
    if (text.length === 0) continue;
    let pos = 0;
    if (afterCr) {
      afterCr = false;
      if (text.charCodeAt(0) === LF) pos = 1;
    }
    lineEnd.lastIndex = pos;
    for (let m = lineEnd.exec(text); m !== null; m = lineEnd.exec(text)) {
      const end = m.index;
      const line = partial + text.slice(pos, end);
      partial = '';
      const event = block.line(line);
      pos = end + 1;
      if (text.charCodeAt(end) === CR) {
        if (pos === text.length) afterCr = true;
        else if (text.charCodeAt(pos) === LF) pos++;
      }
      lineEnd.lastIndex = pos;
      if (event) yield event;
    }
    if (pos < text.length) {
      partial += text.slice(pos);
      // Code units never outnumber UTF-8 bytes, so this only fires on a line
      // that is over the bound in bytes too; it keeps an unended line from
      // growing without limit (the exact byte check runs when it ends).
      if (partial.length > limit) throw new UpstreamError('bad_response', `event stream line longer than ${limit} bytes`);
    }
  }
}

/** The fields of the event being read, between two blank lines. */
class EventBlock {
  #type = '';
  #data: string[] = [];
  #comments: string[] = [];
  #retry: number | undefined;
  #bytes = 0;
  /** The spec's "last event ID buffer": kept across events. */
  #lastId: string | undefined;

  constructor(private readonly limit: number) {}

  /** Takes one line; returns the event a blank line dispatches. */
  line(line: string): SseEvent | undefined {
    if (line === '') return this.#dispatch();
    const bytes = Buffer.byteLength(line, 'utf8');
    if (bytes > this.limit) throw new UpstreamError('bad_response', `event stream line longer than ${this.limit} bytes`);
    this.#bytes += bytes;
    if (this.#bytes > this.limit) throw new UpstreamError('bad_response', `event stream event longer than ${this.limit} bytes`);

    if (line.charCodeAt(0) === 0x3a /* ":" */) {
      this.#comments.push(line.slice(1));
      return undefined;
    }
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    switch (field) {
      case 'event':
        this.#type = value;
        break;
      case 'data':
        this.#data.push(value);
        break;
      case 'id':
        // The spec ignores an id holding NULL (it could not be sent back in Last-Event-ID).
        if (!value.includes('\0')) this.#lastId = value;
        break;
      case 'retry':
        if (/^[0-9]+$/.test(value)) this.#retry = Number(value);
        break;
      default:
        // Unknown fields are ignored.
        break;
    }
    return undefined;
  }

  #dispatch(): SseEvent | undefined {
    const data = this.#data;
    const event: SseEvent | undefined =
      data.length === 0
        ? undefined // no data: nothing is dispatched, the block is dropped
        : {
            event: this.#type === '' ? 'message' : this.#type,
            data: data.join('\n'),
            ...(this.#lastId !== undefined && { id: this.#lastId }),
            ...(this.#retry !== undefined && { retry: this.#retry }),
            ...(this.#comments.length > 0 && { comments: this.#comments }),
          };
    this.#type = '';
    this.#data = [];
    this.#comments = [];
    this.#retry = undefined;
    this.#bytes = 0;
    return event;
  }
}
