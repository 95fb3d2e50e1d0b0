/**
 * How long the memory store keeps a session after its last write.
 *
 *   ttl = clamp(MIN_TTL_S, MAX_TTL_S, session_ttl * 2 + intent_weight * INTENT_WEIGHT_S)
 *
 * `session_ttl` is the server's --session-ttl in seconds: how long a live
 * session may sit idle before the server drops it. The store keeps the
 * records twice that long so that a client reconnecting to another node,
 * or after a restart, still finds its history. `intent_weight` (0 ordinary
 * .. 1 important, the weight of the memory being written) adds up to an
 * hour: a session where something important happened is kept longer. The
 * clamp keeps a tiny --session-ttl from dropping records before a client can
 * come back (5 minutes), and a huge one from keeping them past a day.
 *
 * Expiry never shortens: a write whose TTL is smaller than what the session
 * still has left keeps the longer one (`laterExpiry`; the Redis backend does
 * the same in Lua), so an ordinary turn after an important one does not cut
 * the important one's extra time.
 */

/** Lower bound of the TTL, seconds. */
export const MIN_TTL_S = 300;
/** Upper bound of the TTL, seconds. */
export const MAX_TTL_S = 86_400;
/** Seconds added by an intent weight of 1. */
export const INTENT_WEIGHT_S = 3_600;

/**
 * The TTL in whole seconds (rounded up) for a write with `intentWeight`.
 * `intentWeight` is clamped to [0, 1] (NaN counts as 0); a `sessionTtlS`
 * that is NaN or negative counts as 0 (the result is then at least
 * MIN_TTL_S), Infinity gives MAX_TTL_S.
 */
export function sessionTtlSeconds(sessionTtlS: number, intentWeight: number): number {
  const weight = Number.isNaN(intentWeight) ? 0 : Math.min(1, Math.max(0, intentWeight));
  const base = Number.isNaN(sessionTtlS) ? 0 : Math.max(0, sessionTtlS);
  return Math.ceil(Math.min(MAX_TTL_S, Math.max(MIN_TTL_S, base * 2 + weight * INTENT_WEIGHT_S)));
}

/**
 * The expiry (ms since the epoch) after a write with `ttlS` at `now`: the
 * later of the current expiry and `now + ttlS`, so expiry never shortens.
 */
export function laterExpiry(current: number | undefined, now: number, ttlS: number): number {
  const next = now + ttlS * 1000;
  return current === undefined || current < next ? next : current;
}
