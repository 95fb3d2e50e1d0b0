import { setTimeout as sleep } from 'node:timers/promises';

/** Waits `ms` (nothing at all for 0), rejecting with AbortError when `signal` aborts. */
export async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms > 0) await sleep(ms, undefined, { signal });
  else signal.throwIfAborted();
}
