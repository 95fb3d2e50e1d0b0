/**
 * The bounded replay log of one session's stream: the last `capacity` frames,
 * each with its encodings cached, so a frame is encoded at most once per wire
 * format however many times it is sent (live, then again on resume).
 */
import { encodeFrame, type WireFormat } from '../protocol/codec.js';
import type { StreamFrame } from '../protocol/types.js';

export class LogEntry {
  private msgpack: Uint8Array | undefined;
  private json: string | undefined;

  constructor(readonly frame: StreamFrame) {}

  encoded(format: WireFormat): Uint8Array | string {
    if (format === 'msgpack') return (this.msgpack ??= encodeFrame(this.frame, 'msgpack') as Uint8Array);
    return (this.json ??= encodeFrame(this.frame, 'json') as string);
  }
}

export class ReplayLog {
  // Grows up to `capacity`, then wraps: an idle session costs an empty array.
  private readonly ring: LogEntry[] = [];
  private start = 0; // index of the oldest entry
  private count = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** Seq of the oldest frame kept, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.count === 0 ? undefined : this.ring[this.start]!.frame.seq;
  }

  push(entry: LogEntry): void {
    if (this.count < this.capacity) {
      this.ring.push(entry);
      this.count++;
      return;
    }
    this.ring[this.start] = entry;
    this.start = (this.start + 1) % this.capacity;
  }

  /**
   * Frames with seq > `after`, oldest first; undefined when some of them have
   * already left the log (the caller reports ERR_RESUME_GAP).
   */
  since(after: number, lastSeq: number): LogEntry[] | undefined {
    if (after >= lastSeq) return [];
    const oldest = this.oldestSeq;
    if (oldest === undefined || oldest > after + 1) return undefined;
    const out: LogEntry[] = [];
    // Seqs in the log are consecutive, so the first wanted entry is at a known offset.
    for (let i = after + 1 - oldest; i < this.count; i++) out.push(this.ring[(this.start + i) % this.capacity]!);
    return out;
  }
}
