/**
 * Stop sequences over a streamed reply. Pieces go in as they arrive; text
 * comes out as soon as it can no longer be the start of a stop sequence. Only
 * the held-back tail (shorter than the longest sequence) and the new piece are
 * searched, so each piece costs its own length plus that tail, never a rescan
 * of the reply so far. The stop sequence itself is not part of the reply
 * (as with OpenAI's `stop`).
 */

export interface StopStep {
  /** Text that is now safe to show (may be empty). */
  readonly text: string;
  /** A stop sequence was found: `text` ends just before it and the reply is over. */
  readonly stopped: boolean;
}

export class StopScanner {
  private held = '';
  private readonly longest: number;
  private done = false;

  /** `stops` must be non-empty strings. */
  constructor(private readonly stops: readonly string[]) {
    this.longest = stops.reduce((n, s) => Math.max(n, s.length), 0);
  }

  get stopped(): boolean {
    return this.done;
  }

  push(piece: string): StopStep {
    if (this.done) return { text: '', stopped: true };
    const window = this.held + piece;
    let cut = -1;
    for (const s of this.stops) {
      const i = window.indexOf(s);
      if (i !== -1 && (cut === -1 || i < cut)) cut = i;
    }
    if (cut !== -1) {
      this.held = '';
      this.done = true;
      return { text: window.slice(0, cut), stopped: true };
    }
    const keep = this.pendingPrefix(window);
    this.held = keep === 0 ? '' : window.slice(window.length - keep);
    return { text: keep === 0 ? window : window.slice(0, window.length - keep), stopped: false };
  }

  /** The held-back tail, at the end of the reply (it turned out not to be a stop sequence). */
  flush(): string {
    const rest = this.held;
    this.held = '';
    return rest;
  }

  /** Length of the longest tail of `window` that some stop sequence starts with. */
  private pendingPrefix(window: string): number {
    for (let k = Math.min(this.longest - 1, window.length); k > 0; k--) {
      const tail = window.slice(window.length - k);
      for (const s of this.stops) if (s.startsWith(tail)) return k;
    }
    return 0;
  }
}
