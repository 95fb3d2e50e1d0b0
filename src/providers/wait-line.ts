/**
 * A first-come, first-served line of turns waiting for something scarce (a
 * pooled connection, a model's sequence). A waiter leaves the line when its
 * signal aborts (it rejects with the signal's reason) or, when asked, after
 * a time limit; the holder of the resource hands it to the first waiter.
 */
interface Waiter<T, D> {
  readonly data: D;
  resolve(value: T): void;
  reject(err: unknown): void;
}

export class WaitLine<T, D = void> {
  private readonly waiters: Waiter<T, D>[] = [];

  get length(): number {
    return this.waiters.length;
  }

  /**
   * Joins the line with `data` (what the server needs to pick for this
   * waiter). With `timeout`, the wait ends after `ms` with the error it makes.
   */
  wait(signal: AbortSignal, data: D, timeout?: { readonly ms: number; readonly error: () => unknown }): Promise<T> {
    signal.throwIfAborted();
    return new Promise<T>((resolve, reject) => {
      const leave = () => {
        if (timer) clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) this.waiters.splice(i, 1);
      };
      const waiter: Waiter<T, D> = {
        data,
        resolve: (value) => {
          leave();
          resolve(value);
        },
        reject: (err) => {
          leave();
          reject(err);
        },
      };
      const onAbort = () => waiter.reject(signal.reason);
      const timer = timeout ? setTimeout(() => waiter.reject(timeout.error()), timeout.ms) : undefined;
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiters.push(waiter);
    });
  }

  /** Serves the first waiter with what `pick` makes from its data; false when nobody waits. */
  serve(pick: (data: D) => T): boolean {
    const next = this.waiters[0];
    if (!next) return false;
    next.resolve(pick(next.data));
    return true;
  }

  /** Ends every wait with `err` (the resource is closing). */
  rejectAll(err: unknown): void {
    for (const w of [...this.waiters]) w.reject(err);
  }
}
