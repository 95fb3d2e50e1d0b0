/**
 * The sidecar's TCP metric families, accumulated from what its bpftrace
 * programs print each interval (the growth of their totals, see sidecar.ts)
 * and rendered in the Prometheus text format.
 * prom-client cannot take ready-made bucket counts, so these families render
 * themselves; the sidecar's own process metrics still come from prom-client.
 */
import { LOG2_BUCKETS_SECONDS, log2BucketIndex } from './buckets.js';
import type { HistBucket } from './bpftrace-json.js';

type Labels<L extends string> = Readonly<Record<L, string>>;

abstract class Family<L extends string, S> {
  protected readonly series = new Map<string, { labels: Labels<L>; state: S }>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelNames: readonly L[],
  ) {}

  private key(labels: Labels<L>): string {
    return this.labelNames.map((n) => labels[n]).join('\u0000');
  }

  /** The series' state, if it has one yet. */
  protected find(labels: Labels<L>): S | undefined {
    return this.series.get(this.key(labels))?.state;
  }

  protected cell(labels: Labels<L>, init: () => S): S {
    const key = this.key(labels);
    let s = this.series.get(key);
    if (!s) {
      s = { labels: { ...labels }, state: init() };
      this.series.set(key, s);
    }
    return s.state;
  }

  protected labelText(labels: Labels<L>, extra?: string): string {
    const parts = this.labelNames.map((n) => `${n}="${escapeLabel(labels[n])}"`);
    if (extra) parts.push(extra);
    return parts.length === 0 ? '' : `{${parts.join(',')}}`;
  }

  abstract render(): string;
}

interface HistState {
  /** Per-bucket counts (not cumulative); the last one is +Inf. */
  readonly counts: number[];
  sum: number;
}

/** A histogram over the fixed log2 bucket set (buckets.ts). */
export class Log2Histogram<L extends string> extends Family<L, HistState> {
  /** Adds a bpftrace hist() of microseconds. */
  addHist(labels: Labels<L>, buckets: readonly HistBucket[]): void {
    const s = this.state(labels);
    for (const b of buckets) {
      if (b.count <= 0) continue;
      s.counts[histBucketIndex(b)]! += b.count;
    }
  }

  /** Adds to the sum, in microseconds (stats() totals: hist() carries none). */
  addSumMicros(labels: Labels<L>, totalUs: number): void {
    this.state(labels).sum += totalUs / 1e6;
  }

  /** Adds one value in seconds (used by tests and by sources other than bpftrace). */
  observe(labels: Labels<L>, seconds: number): void {
    const s = this.state(labels);
    s.counts[log2BucketIndex(seconds * 1e6)]! += 1;
    s.sum += seconds;
  }

  /** Count, sum and cumulative bucket counts (the last one +Inf) of one series. */
  snapshot(labels: Labels<L>): { count: number; sum: number; cumulative: number[] } | undefined {
    const s = this.find(labels);
    return s && cumulativeOf(s);
  }

  /** Every series with its snapshot, for the advisor. */
  *snapshots(): Generator<{ labels: Labels<L>; count: number; sum: number; cumulative: number[] }> {
    for (const { labels, state } of this.series.values()) yield { labels, ...cumulativeOf(state) };
  }

  private state(labels: Labels<L>): HistState {
    return this.cell(labels, () => ({ counts: new Array<number>(LOG2_BUCKETS_SECONDS.length + 1).fill(0), sum: 0 }));
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const { labels, state } of this.series.values()) {
      let acc = 0;
      for (let i = 0; i < LOG2_BUCKETS_SECONDS.length; i++) {
        acc += state.counts[i]!;
        lines.push(`${this.name}_bucket${this.labelText(labels, `le="${formatLe(LOG2_BUCKETS_SECONDS[i]!)}"`)} ${acc}`);
      }
      acc += state.counts[LOG2_BUCKETS_SECONDS.length]!;
      lines.push(`${this.name}_bucket${this.labelText(labels, 'le="+Inf"')} ${acc}`);
      lines.push(`${this.name}_sum${this.labelText(labels)} ${formatNumber(state.sum)}`);
      lines.push(`${this.name}_count${this.labelText(labels)} ${acc}`);
    }
    return `${lines.join('\n')}\n`;
  }
}

/** A counter fed with deltas. */
export class DeltaCounter<L extends string> extends Family<L, { value: number }> {
  add(labels: Labels<L>, delta: number): void {
    if (delta > 0) this.cell(labels, () => ({ value: 0 })).value += delta;
  }

  value(labels: Labels<L>): number {
    return this.find(labels)?.value ?? 0;
  }

  *values(): Generator<{ labels: Labels<L>; value: number }> {
    for (const { labels, state } of this.series.values()) yield { labels, value: state.value };
  }

  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const { labels, state } of this.series.values()) lines.push(`${this.name}${this.labelText(labels)} ${state.value}`);
    return `${lines.join('\n')}\n`;
  }
}

function cumulativeOf(s: HistState): { count: number; sum: number; cumulative: number[] } {
  const cumulative: number[] = [];
  let acc = 0;
  for (const c of s.counts) cumulative.push((acc += c));
  return { count: acc, sum: s.sum, cumulative };
}

/**
 * Where a hist() bucket's samples count. Its values are at most `max`, so
 * they fall under the first edge ≥ max. Negative values (`max` only) count in
 * the first bucket; bpftrace 0.17 prints values from 2^31 on in a bucket from
 * -2^31 to 0, and lhist's overflow bucket has no `max`: both are +Inf.
 */
export function histBucketIndex(b: HistBucket): number {
  if (b.max === undefined || (b.min !== undefined && b.min < 0)) return LOG2_BUCKETS_SECONDS.length;
  return log2BucketIndex(Math.max(b.max, 0));
}

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

/** Bucket edges as Prometheus clients write them: shortest exact decimal. */
function formatLe(v: number): string {
  return String(v);
}

function formatNumber(v: number): string {
  return Number.isFinite(v) ? String(v) : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN';
}
