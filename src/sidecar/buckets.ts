/**
 * The one bucket set of every sidecar histogram. bpftrace's hist() counts in
 * power-of-two buckets of microseconds ([1], [2, 4), [4, 8), ...); the
 * exporter keeps exactly those edges, converted to seconds, so no sample
 * ever moves between buckets on its way to Prometheus.
 */

/** Smallest and largest finite bucket edges, as powers of two of microseconds. */
export const LOG2_MIN_EXP = 0; // 1 µs
export const LOG2_MAX_EXP = 25; // 2^25 µs ≈ 33.6 s

/** Upper bounds (le) in seconds: 1 µs, 2 µs, 4 µs, ... 2^25 µs. */
export const LOG2_BUCKETS_SECONDS: readonly number[] = Object.freeze(
  Array.from({ length: LOG2_MAX_EXP - LOG2_MIN_EXP + 1 }, (_, i) => 2 ** (LOG2_MIN_EXP + i) / 1e6),
);

/**
 * The index in LOG2_BUCKETS_SECONDS of the bucket that holds values in
 * [minUs, maxUs) — a bpftrace hist() bucket — or LOG2_BUCKETS_SECONDS.length
 * for the +Inf bucket. A value below 1 µs belongs to the first bucket.
 */
export function log2BucketIndex(maxUs: number): number {
  if (maxUs <= 1) return 0;
  // Every sample of hist() bucket [2^k, 2^(k+1)) is below 2^(k+1) µs, so it counts under le = 2^(k+1) µs.
  const exp = Math.ceil(Math.log2(maxUs));
  return exp > LOG2_MAX_EXP ? LOG2_BUCKETS_SECONDS.length : Math.max(0, exp - LOG2_MIN_EXP);
}
