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
import { asBuffer, decodeChunks, empty } from './chunks.js';

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
 * Decodes an event stream chunk by chunk, synchronously: `push` appends the
 * events each chunk completes. Throws UpstreamError('bad_response') when a
 * line or an event is longer than the bound; the events completed before
 * the bad line are in `out` by then. An event not closed by a blank line
 * when the body ends is dropped, as the spec says: callers detect a cut
 * stream by their API's end marker.
 */
export class SseDecoder {
  readonly #limit: number;
  readonly #block: EventBlock;
  /** Bytes of the line not ended yet. Line ends are ASCII, so splitting bytes never cuts a character. */
  #rest: Buffer | undefined;
  /** The previous chunk ended with CR: a LF starting the next one is part of the same line end. */
  #afterCr = false;
  /** Still at the start of the stream, where a byte order mark is dropped. */
  #first = true;

  constructor(options: SseOptions = {}) {
    this.#limit = options.maxEventBytes ?? DEFAULT_MAX_EVENT_BYTES;
    this.#block = new EventBlock(this.#limit);
  }

  /** Bound on one line and on one event, in UTF-8 bytes. */
  get maxEventBytes(): number {
    return this.#limit;
  }

  /**
   * True between two events, past the start of the stream: no line or event
   * begun, no line end half read. A chunk that is then `data: DATA\n\n`,
   * once or several times (each DATA without CR or LF, the chunk within the
   * bound), is that many "message" events whose data are the DATAs, and
   * leaves the decoder as it was, so a reader may take such a chunk without
   * push.
   */
  get atEventStart(): boolean {
    return !this.#first && this.#rest === undefined && !this.#afterCr && this.#block.empty;
  }

  push(chunk: Uint8Array, out: SseEvent[]): void {
    let buf = asBuffer(chunk);
    if (buf.length === 0) return;
    if (this.#rest) {
      buf = Buffer.concat([this.#rest, buf]);
      this.#rest = undefined;
    }
    let pos = 0;
    if (this.#afterCr) {
      this.#afterCr = false;
      if (buf[0] === LF) pos = 1;
    }
    // Most streams end lines with LF only: search for it natively, and scan
    // byte by byte only in a chunk that holds a CR.
    const hasCr = buf.indexOf(CR, pos) !== -1;
    for (;;) {
      const end = hasCr ? lineEnd(buf, pos) : buf.indexOf(LF, pos);
      if (end === -1) break;
      // Invalid UTF-8 becomes U+FFFD, as the spec's decoding does.
      const line = this.#text(buf, pos, end);
      pos = end + 1;
      if (buf[end] === CR) {
        if (pos === buf.length) this.#afterCr = true;
        else if (buf[pos] === LF) pos++;
      }
      const event = this.#block.line(line);
      if (event) out.push(event);
    }
    if (pos < buf.length) {
      if (buf.length - pos > this.#limit) throw new UpstreamError('bad_response', `event stream line longer than ${this.#limit} bytes`);
      // A copy: the chunk's memory may be reused by the reader.
      this.#rest = Buffer.from(buf.subarray(pos));
    }
  }

  #text(buf: Buffer, start: number, end: number): string {
    let text = buf.toString('utf8', start, end);
    if (this.#first) {
      this.#first = false;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    }
    return text;
  }
}

/** Index of the next CR or LF at or after `from`; -1 when there is none. */
function lineEnd(buf: Buffer, from: number): number {
  for (let i = from; i < buf.length; i++) {
    const b = buf[i];
    if (b === LF || b === CR) return i;
  }
  return -1;
}

/** Yields the events of an event stream as its chunks arrive (see SseDecoder). */
export function parseSse(body: AsyncIterable<Uint8Array>, options: SseOptions = {}): AsyncGenerator<SseEvent, void, void> {
  const decoder = new SseDecoder(options);
  return decodeChunks<SseEvent>(body, (chunk, out) => decoder.push(chunk, out));
}

/** The fields of the event being read, between two blank lines. */
class EventBlock {
  #type = '';
  readonly #data: string[] = [];
  #comments: string[] = [];
  #retry: number | undefined;
  #bytes = 0;
  /** The spec's "last event ID buffer": kept across events. */
  #lastId: string | undefined;

  constructor(private readonly limit: number) {}

  /** No line of an event read since the last one was dispatched (the last event ID aside, which carries over). */
  get empty(): boolean {
    return this.#bytes === 0 && this.#data.length === 0 && this.#type === '' && this.#comments.length === 0 && this.#retry === undefined;
  }

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
    let event: SseEvent | undefined;
    // No data: nothing is dispatched, the block is dropped.
    if (data.length > 0) {
      const e: { -readonly [K in keyof SseEvent]: SseEvent[K] } = { event: this.#type === '' ? 'message' : this.#type, data: data.length === 1 ? data[0]! : data.join('\n') };
      if (this.#lastId !== undefined) e.id = this.#lastId;
      if (this.#retry !== undefined) e.retry = this.#retry;
      if (this.#comments.length > 0) e.comments = this.#comments;
      event = e;
    }
    this.#type = '';
    // The event holds the joined text, not the array: reuse it. Comments are handed over: start a new list.
    empty(data);
    if (this.#comments.length > 0) this.#comments = [];
    this.#retry = undefined;
    this.#bytes = 0;
    return event;
  }
}
