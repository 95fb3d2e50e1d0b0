// Log-linear latency histogram (HDR-style) over integer microseconds.
// Values < 128 µs are exact; above that each power of two is split into 64
// buckets, so the relative bucket width is < 1.6%. Histograms from several
// processes are merged by adding bucket counts.

const SUB_BITS = 6;          // 64 sub-buckets per power of two above the linear range
const SUB = 1 << SUB_BITS;   // 64
const LINEAR = SUB * 2;      // 0..127 exact
const MAX_SHIFT = 32;
const NBUCKETS = (MAX_SHIFT + 1) * SUB + SUB; // covers up to ~2^38 µs

function indexOf(v) {
  if (v < LINEAR) return v;
  // v >= 128: msb >= 7; shift so that v >> shift is in [64, 128)
  const msb = v < 0x80000000 ? 31 - Math.clz32(v) : Math.floor(Math.log2(v));
  const shift = msb - SUB_BITS;
  const m = Math.floor(v / 2 ** shift); // in [64, 128)
  return shift * SUB + m;
}

function bucketLow(i) {
  if (i < LINEAR) return i;
  const shift = Math.floor(i / SUB) - 1;
  const m = i - shift * SUB;
  return m * 2 ** shift;
}

function bucketHigh(i) {
  if (i < LINEAR) return i;
  const shift = Math.floor(i / SUB) - 1;
  const m = i - shift * SUB;
  return (m + 1) * 2 ** shift - 1;
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(NBUCKETS);
    this.count = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** Record a value in microseconds (non-negative). */
  record(us) {
    let v = Math.round(us);
    if (v < 0) v = 0;
    let i = indexOf(v);
    if (i >= NBUCKETS) i = NBUCKETS - 1;
    this.counts[i]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  reset() {
    this.counts.fill(0);
    this.count = 0; this.sum = 0; this.min = Infinity; this.max = 0;
  }

  /** Value (µs) at percentile q in [0, 100]; midpoint of the bucket, clamped to [min, max]. */
  percentile(q) {
    if (this.count === 0) return NaN;
    if (q >= 100) return this.max;
    const rank = Math.max(1, Math.ceil((q / 100) * this.count));
    let seen = 0;
    const c = this.counts;
    for (let i = 0; i < c.length; i++) {
      seen += c[i];
      if (seen >= rank) {
        const mid = (bucketLow(i) + bucketHigh(i)) / 2;
        return Math.min(Math.max(mid, this.min), this.max);
      }
    }
    return this.max;
  }

  mean() { return this.count ? this.sum / this.count : NaN; }

  /** Sparse serialisable form for IPC. */
  toJSON() {
    const b = [];
    const c = this.counts;
    for (let i = 0; i < c.length; i++) if (c[i] !== 0) b.push(i, c[i]);
    return { b, count: this.count, sum: this.sum, min: this.count ? this.min : null, max: this.max };
  }

  static fromJSON(o) {
    const h = new Histogram();
    h.addJSON(o);
    return h;
  }

  addJSON(o) {
    for (let k = 0; k < o.b.length; k += 2) this.counts[o.b[k]] += o.b[k + 1];
    this.count += o.count;
    this.sum += o.sum;
    if (o.min !== null && o.min < this.min) this.min = o.min;
    if (o.max > this.max) this.max = o.max;
  }

  merge(other) {
    for (let i = 0; i < this.counts.length; i++) this.counts[i] += other.counts[i];
    this.count += other.count;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
  }

  /** Summary in milliseconds. */
  summaryMs(qs = [50, 90, 99, 99.9]) {
    const r = { count: this.count };
    if (this.count === 0) return r;
    for (const q of qs) r['p' + String(q).replace('.', '_')] = round3(this.percentile(q) / 1000);
    r.min = round3(this.min / 1000);
    r.mean = round3(this.mean() / 1000);
    r.max = round3(this.max / 1000);
    return r;
  }
}

function round3(x) { return Math.round(x * 1000) / 1000; }
