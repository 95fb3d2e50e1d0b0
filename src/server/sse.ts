/**
 * A Server-Sent Events writer over a uWS response with backpressure: when
 * uWS reports a full send buffer, further events wait in a bounded queue and
 * are flushed from onWritable. A client that stops reading and lets the queue
 * pass its limit has its response closed.
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
  private queue: string[] = [];
  private queued = 0;
  private ending = false;
  private waiting = false;

  constructor(
    private readonly x: HttpExchange,
    private readonly maxQueuedBytes: number,
  ) {}

  get open(): boolean {
    return !this.x.finished && !this.ending;
  }

  write(chunk: string): void {
    if (!this.open) return;
    if (this.waiting) {
      this.queue.push(chunk);
      this.queued += chunk.length;
      if (this.queued > this.maxQueuedBytes) this.abandon();
      return;
    }
    let ok = true;
    this.x.res.cork(() => {
      ok = this.x.res.write(chunk);
    });
    if (!ok) this.waitWritable();
  }

  /** Ends the stream once everything queued has been written. */
  end(): void {
    if (!this.open) return;
    this.ending = true;
    if (!this.waiting) this.finish();
  }

  private finish(): void {
    if (this.x.finished) return;
    this.x.res.cork(() => this.x.res.end());
    this.x.ended();
  }

  private waitWritable(): void {
    this.waiting = true;
    this.x.res.onWritable(() => {
      while (this.queue.length > 0) {
        const chunk = this.queue.shift()!;
        this.queued -= chunk.length;
        // onWritable runs corked.
        if (!this.x.res.write(chunk)) return false;
      }
      this.waiting = false;
      if (this.ending) this.finish();
      return true;
    });
  }

  private abandon(): void {
    this.queue = [];
    this.queued = 0;
    this.ending = true;
    // Closing the socket fires onAborted, which records the request.
    if (!this.x.finished) this.x.res.close();
  }
}
