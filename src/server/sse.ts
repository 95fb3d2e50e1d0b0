/**
 * A Server-Sent Events writer over a uWS response. Events written in one
 * event-loop turn leave together in one corked write, the response's status
 * and headers (begin) with the first of them. When uWS reports a full
 * send buffer, further events wait in a bounded queue until onWritable; a
 * client that stops reading and lets the queue pass its limit is cut off.
 */
import type { HttpExchange } from './http.js';

export const SSE_HEADERS = {
  'Content-Type': 'text/event-stream; charset=utf-8',
  'Cache-Control': 'no-cache, no-transform',
  'X-Accel-Buffering': 'no',
} as const;

export function sseEvent(event: string, data: string, id?: number): string {
  return `${id === undefined ? '' : `id: ${id}\n`}event: ${event}\ndata: ${data}\n\n`;
}

export class SseWriter {
  /** Headers of the response, written with the first flush. */
  private head: Record<string, string> | undefined;
  private begun = false;
  private pending = '';
  private scheduled = false;
  private ending = false;
  /** True while uWS holds unsent data and we wait for onWritable. */
  private blocked = false;

  constructor(
    private readonly x: HttpExchange,
    private readonly maxQueuedBytes: number,
  ) {}

  private get open(): boolean {
    return !this.x.finished;
  }

  /**
   * Starts the 200 response with `headers`. They leave with the first
   * events, in the same write (one packet, not one for the headers and one
   * for the events).
   */
  begin(headers: Record<string, string>): void {
    if (!this.open || this.ending || this.begun) return;
    this.begun = true;
    this.head = headers;
    this.schedule();
  }

  write(chunk: string): void {
    if (!this.open || this.ending) return;
    this.pending += chunk;
    if (this.pending.length > this.maxQueuedBytes) return this.abandon();
    this.schedule();
  }

  /** Ends the stream once everything written has been sent. */
  end(): void {
    if (!this.open || this.ending) return;
    this.ending = true;
    this.schedule();
  }

  private schedule(): void {
    if (this.scheduled || this.blocked) return;
    this.scheduled = true;
    setImmediate(this.flushScheduled);
  }

  // Bound once: a reply schedules a flush per token.
  private readonly flushCorked = (): void => {
    this.flush();
  };

  private readonly flushScheduled = (): void => {
    this.scheduled = false;
    if (this.open) this.x.res.cork(this.flushCorked);
  };

  /** Writes what is pending (call corked); ends the response when asked to and drained. */
  private flush(): boolean {
    if (this.head) {
      this.x.writeHead(this.head);
      this.head = undefined;
    }
    if (this.pending !== '') {
      const chunk = this.pending;
      this.pending = '';
      if (!this.x.res.write(chunk)) {
        this.blocked = true;
        this.x.res.onWritable(() => {
          this.blocked = false;
          return this.flush();
        });
        return false;
      }
    }
    if (this.ending) {
      this.x.res.end();
      this.x.ended();
    }
    return true;
  }

  private abandon(): void {
    this.pending = '';
    this.ending = true;
    // Closing the socket fires onAborted, which records the request.
    this.x.res.close();
  }
}
