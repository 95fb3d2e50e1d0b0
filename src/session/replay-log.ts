/**
 * The bounded replay log of one session's stream: the last `capacity` frames,
 * in seq order. Frames are kept as objects and encoded when sent, so an idle
 * session's log costs only its frames.
 */
import type { StreamFrame } from '../protocol/types.js';

export class ReplayLog {
  // Grows up to `capacity`, then wraps: a new session costs an empty array.
  private ring: StreamFrame[] = [];
  private start = 0; // index of the oldest frame
  private count = 0;

  constructor(readonly capacity: number) {}

  get size(): number {
    return this.count;
  }

  /** Seq of the oldest frame kept, or undefined when empty. */
  get oldestSeq(): number | undefined {
    return this.count === 0 ? undefined : this.ring[this.start]!.seq;
  }

  push(frame: StreamFrame): void {
    if (this.count < this.capacity) {
      this.ring.push(frame);
      this.count++;
      return;
    }
    this.ring[this.start] = frame;
    this.start = (this.start + 1) % this.capacity;
  }

  /** Drops every frame (a later resume reports a gap). */
  clear(): void {
    this.ring = [];
    this.start = 0;
    this.count = 0;
  }

  /** True when every frame with seq in (after, lastSeq] is still kept. */
  covers(after: number, lastSeq: number): boolean {
    if (after >= lastSeq) return true;
    const oldest = this.oldestSeq;
    return oldest !== undefined && oldest <= after + 1;
  }

  /**
   * Frames with seq > `after`, oldest first; undefined when some of them have
   * already left the log (the caller reports ERR_RESUME_GAP).
   */
  since(after: number, lastSeq: number): StreamFrame[] | undefined {
    if (after >= lastSeq) return [];
    if (!this.covers(after, lastSeq)) return undefined;
    const oldest = this.oldestSeq!;
    const out: StreamFrame[] = [];
    // Seqs in the log are consecutive, so the first wanted frame is at a known offset.
    for (let i = after + 1 - oldest; i < this.count; i++) out.push(this.ring[(this.start + i) % this.capacity]!);
    return out;
  }
}
