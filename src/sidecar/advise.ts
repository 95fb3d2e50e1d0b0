/**
 * `npcd tcp-advise`: what to tune in the host's TCP stack for npcd's
 * connections — long-lived WebSocket/SSE streams to clients and pooled
 * keep-alive connections to model upstreams and Redis.
 *
 * This module is pure: parsers for `ss -tinHOe` lines and for the sidecar's
 * Prometheus text, the per-port summaries built from them, and the rules
 * (`advise`) that turn host settings (host.ts) and those summaries into
 * advice. The command line (reading files, running ss, fetching metrics,
 * printing) is in advise-cli.ts.
 */
import { type Direction, SIDECAR_METRIC } from './names.js';
import type { BufferTriple, Feature, HostSettings, Setting } from './host.js';

export type { Direction };

// ---------------------------------------------------------------------------
// ss

export interface Endpoint {
  readonly address: string;
  readonly port: number;
}

/** One socket of `ss -tinHOe state established`. */
export interface SsSocket {
  readonly local: Endpoint;
  readonly peer: Endpoint;
  readonly recvQ: number;
  readonly sendQ: number;
  /** Socket cookie as ss prints it (`sk:` hex); bpftrace prints the same cookie in decimal. */
  readonly cookie: string | null;
  /** Congestion control of the socket (cubic, reno, bbr, ...). */
  readonly congestion: string | null;
  readonly rttMs: number | null;
  readonly rttVarMs: number | null;
  readonly minRttMs: number | null;
  readonly rtoMs: number | null;
  readonly cwnd: number | null;
  readonly ssthresh: number | null;
  readonly mss: number | null;
  readonly deliveryRateBps: number | null;
  readonly sendRateBps: number | null;
  readonly pacingRateBps: number | null;
  readonly bytesSent: number | null;
  readonly bytesAcked: number | null;
  readonly bytesReceived: number | null;
  readonly bytesRetrans: number | null;
  /** retrans:<cur>/<total>: segments being retransmitted now / ever. ss omits it while both are 0. */
  readonly retransCurrent: number;
  readonly retransTotal: number;
  readonly dataSegsOut: number | null;
  /** The receiver's estimate of bytes delivered per RTT (receive-buffer autotuning). */
  readonly rcvSpace: number | null;
  readonly rcvRttMs: number | null;
  /** Bytes written by the application and not sent yet (ss omits it when 0). */
  readonly notsent: number;
  /** Milliseconds since the socket last sent data. */
  readonly lastSendMs: number | null;
  readonly appLimited: boolean;
}

export interface SsParseResult {
  readonly sockets: SsSocket[];
  /** Non-blank lines that are not a socket (headers, unknown formats). */
  readonly skipped: number;
}

const RATE_UNITS: Record<string, number> = { '': 1, K: 1e3, M: 1e6, G: 1e9, T: 1e12 };
/** Option flags ss prints before the congestion control name (tcpi_options). */
const SS_OPTION_WORDS = new Set(['ts', 'sack', 'ecn', 'ecnseen', 'fastopen']);
const ENDPOINT_RE = /^(\[[^\]]+\]|[^[\]\s]+?)(?:%[^:\s]+)?:(\d+|\*)$/;

/**
 * "[::1]:8080", "10.0.0.1%eth0:443" (ss -n) → {address, port}; null for
 * anything else, names included (ss without -n).
 */
export function parseEndpoint(text: string): Endpoint | null {
  const m = ENDPOINT_RE.exec(text);
  if (!m || m[2] === '*') return null;
  const address = m[1]!.startsWith('[') ? m[1]!.slice(1, -1) : m[1]!;
  if (!/^\d+\.\d+\.\d+\.\d+$/.test(address) && !address.includes(':')) return null;
  return { address, port: Number(m[2]) };
}

/** "69747380282bps" (ss -n) or "69.7Gbps" (without -n) → bits per second. */
export function parseRate(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)([KMGT]?)bps$/.exec(text);
  return m ? Number(m[1]) * RATE_UNITS[m[2]!]! : null;
}

function num(v: string | undefined): number | null {
  if (v === undefined) return null;
  const n = Number(v);
  return Number.isFinite(n) ? n : null;
}

function isInt(s: string | undefined): boolean {
  return s !== undefined && /^\d+$/.test(s);
}

/**
 * Parses `ss -tinHOe state established` output (-n numeric, -H no header,
 * -O one line per socket, -e cookie). Also reads the State column that ss
 * prints without a state filter, and the two-line layout of ss without -O
 * (a tab-indented info line after each socket line).
 */
export function parseSs(text: string): SsParseResult {
  const sockets: SsSocket[] = [];
  let skipped = 0;
  let pending: { head: string[]; info: string[] } | null = null;
  const flush = () => {
    if (pending) sockets.push(buildSocket(pending.head, pending.info));
    pending = null;
  };
  for (const line of text.split('\n')) {
    if (line.trim() === '') continue;
    const tokens = line.trim().split(/\s+/);
    // Recv-Q Send-Q Local Peer, possibly after a State (and Netid) column.
    let at = -1;
    for (let i = 0; i + 3 < tokens.length && i <= 2; i++) {
      if (isInt(tokens[i]) && isInt(tokens[i + 1]) && parseEndpoint(tokens[i + 2]!) && parseEndpoint(tokens[i + 3]!)) {
        at = i;
        break;
      }
    }
    if (at >= 0) {
      flush();
      pending = { head: tokens.slice(at, at + 4), info: tokens.slice(at + 4) };
    } else if (pending && /^\s/.test(line)) {
      pending.info.push(...tokens); // the info line of ss without -O
    } else if (/^(State|Recv-Q|Netid)\s/.test(line)) {
      // the header of ss without -H
    } else {
      skipped++;
    }
  }
  flush();
  return { sockets, skipped };
}

function buildSocket(head: string[], info: string[]): SsSocket {
  const kv = new Map<string, string>();
  let congestion: string | null = null;
  let sawRto = false;
  let appLimited = false;
  const spaced = new Map<string, string>();
  for (let i = 0; i < info.length; i++) {
    const t = info[i]!;
    if (t === 'send' || t === 'pacing_rate' || t === 'delivery_rate') {
      const v = info[i + 1];
      if (v !== undefined) spaced.set(t, v.split('/')[0]!); // pacing_rate A/B: B is the socket's max
      i++;
      continue;
    }
    if (t === 'app_limited') {
      appLimited = true;
      continue;
    }
    const colon = t.indexOf(':');
    if (colon > 0 && /^[a-z_]+$/.test(t.slice(0, colon))) {
      const key = t.slice(0, colon);
      if (key === 'rto') sawRto = true;
      if (!kv.has(key)) kv.set(key, t.slice(colon + 1));
      continue;
    }
    if (!sawRto && congestion === null && /^[a-z][a-z0-9_]*$/.test(t) && !SS_OPTION_WORDS.has(t)) congestion = t;
  }
  const pair = (key: string): [number | null, number | null] => {
    const v = kv.get(key);
    if (v === undefined) return [null, null];
    const [a, b] = v.split('/');
    return [num(a), num(b)];
  };
  const [rttMs, rttVarMs] = pair('rtt');
  const [retransCurrent, retransTotal] = pair('retrans');
  return {
    local: parseEndpoint(head[2]!)!,
    peer: parseEndpoint(head[3]!)!,
    recvQ: Number(head[0]),
    sendQ: Number(head[1]),
    cookie: kv.get('sk') ?? null,
    congestion,
    rttMs,
    rttVarMs,
    minRttMs: num(kv.get('minrtt')),
    rtoMs: num(kv.get('rto')),
    cwnd: num(kv.get('cwnd')),
    ssthresh: num(kv.get('ssthresh')),
    mss: num(kv.get('mss')),
    deliveryRateBps: parseRate(spaced.get('delivery_rate') ?? ''),
    sendRateBps: parseRate(spaced.get('send') ?? ''),
    pacingRateBps: parseRate(spaced.get('pacing_rate') ?? ''),
    bytesSent: num(kv.get('bytes_sent')),
    bytesAcked: num(kv.get('bytes_acked')),
    bytesReceived: num(kv.get('bytes_received')),
    bytesRetrans: num(kv.get('bytes_retrans')),
    retransCurrent: retransCurrent ?? 0,
    retransTotal: retransTotal ?? 0,
    dataSegsOut: num(kv.get('data_segs_out')),
    rcvSpace: num(kv.get('rcv_space')),
    rcvRttMs: num(kv.get('rcv_rtt')),
    notsent: num(kv.get('notsent')) ?? 0,
    lastSendMs: num(kv.get('lastsnd')),
    appLimited,
  };
}

/** 127.0.0.0/8, ::1, and IPv4-mapped 127.x (::ffff:127.0.0.1). */
export function isLoopbackAddress(address: string): boolean {
  const a = address.toLowerCase();
  if (a === '::1' || a === '0:0:0:0:0:0:0:1') return true;
  const v4 = a.startsWith('::ffff:') ? a.slice(7) : a;
  return /^127\.\d+\.\d+\.\d+$/.test(v4);
}

export function isLoopbackSocket(s: SsSocket): boolean {
  return isLoopbackAddress(s.local.address) || isLoopbackAddress(s.peer.address);
}

/**
 * Bytes in flight the path could hold, from the sender's side: delivery
 * rate × min RTT (the RTT when min RTT is missing). Null without a rate.
 */
export function sendBdpBytes(s: SsSocket): number | null {
  const rtt = s.minRttMs ?? s.rttMs;
  if (s.deliveryRateBps === null || rtt === null) return null;
  return (s.deliveryRateBps / 8) * (rtt / 1000);
}


/**
 * Which watched port a socket counts for: inbound when its local port is
 * watched (npcd serves it), else outbound when its peer port is (npcd is
 * the client). Inbound wins when both are, as in the sidecar's probes.
 */
export function classifySocket(s: SsSocket, ports: ReadonlySet<number>): { direction: Direction; port: number } | null {
  if (ports.has(s.local.port)) return { direction: 'inbound', port: s.local.port };
  if (ports.has(s.peer.port)) return { direction: 'outbound', port: s.peer.port };
  return null;
}

// ---------------------------------------------------------------------------
// Prometheus text exposition

export interface PromSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

function parsePromValue(text: string): number {
  if (text === '+Inf' || text === 'Inf') return Infinity;
  if (text === '-Inf') return -Infinity;
  if (text === 'NaN') return NaN;
  return Number(text);
}

/**
 * Parses the Prometheus text format (version 0.0.4): one sample per line,
 * `name{label="value",...} value [timestamp]`; comments and blank lines are
 * skipped, as are lines that are not samples.
 */
export function parsePrometheusText(text: string): PromSample[] {
  const out: PromSample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[^"}]|"(?:[^"\\]|\\.)*")*)\})?\s+(\S+)(?:\s+-?\d+)?$/.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    }
    const value = parsePromValue(m[3]!);
    if (!Number.isNaN(value) || m[3] === 'NaN') out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** One cumulative bucket: `count` observations were ≤ `le` (seconds; Infinity for +Inf). */
export interface CumulativeBucket {
  readonly le: number;
  readonly count: number;
}

/**
 * The q-quantile of a cumulative histogram, as Prometheus's
 * histogram_quantile computes it: find the bucket that holds rank q×total
 * and interpolate linearly inside it (the first bucket starts at 0). A rank
 * in the +Inf bucket gives the largest finite bound. Null without
 * observations or without a +Inf bucket.
 */
export function histogramQuantile(q: number, buckets: readonly CumulativeBucket[]): number | null {
  if (!(q >= 0 && q <= 1)) return null;
  const sorted = [...buckets].sort((a, b) => a.le - b.le);
  if (sorted.length < 2 || sorted[sorted.length - 1]!.le !== Infinity) return null;
  // Counts must not decrease; Prometheus repairs small violations the same way.
  let running = 0;
  const fixed = sorted.map((b) => ({ le: b.le, count: (running = Math.max(running, b.count)) }));
  const total = fixed[fixed.length - 1]!.count;
  if (total === 0) return null;
  const rank = q * total;
  let i = fixed.findIndex((b) => b.count >= rank);
  if (i === -1) i = fixed.length - 1;
  if (i === fixed.length - 1) return fixed[fixed.length - 2]!.le;
  if (i === 0 && fixed[0]!.le <= 0) return fixed[0]!.le;
  const start = i === 0 ? 0 : fixed[i - 1]!.le;
  const end = fixed[i]!.le;
  const below = i === 0 ? 0 : fixed[i - 1]!.count;
  const inBucket = fixed[i]!.count - below;
  if (inBucket === 0) return end;
  return start + (end - start) * ((rank - below) / inBucket);
}

/** The sidecar's metric names the advisor reads. */
export const SRTT_METRIC = SIDECAR_METRIC.srtt;
export const RETRANSMITS_METRIC = SIDECAR_METRIC.retransmits;

export interface SrttHistogram {
  readonly direction: Direction;
  readonly port: number;
  readonly buckets: readonly CumulativeBucket[];
  readonly sum: number | null;
  readonly count: number;
}

export interface SidecarMetrics {
  readonly srtt: readonly SrttHistogram[];
  readonly retransmits: readonly { readonly direction: Direction; readonly port: number; readonly total: number }[];
}

function labelDirection(v: string | undefined): Direction | null {
  if (v === 'inbound' || v === 'in') return 'inbound';
  if (v === 'outbound' || v === 'out') return 'outbound';
  return null;
}

/** Reads the srtt histograms and retransmit counters out of a /metrics page. */
export function readSidecarMetrics(text: string): SidecarMetrics {
  const series = new Map<string, { direction: Direction; port: number; buckets: CumulativeBucket[]; sum: number | null; count: number | null }>();
  const retrans = new Map<string, { direction: Direction; port: number; total: number }>();
  for (const s of parsePrometheusText(text)) {
    const direction = labelDirection(s.labels.direction);
    const port = Number(s.labels.port);
    if (direction === null || !Number.isInteger(port)) continue;
    const key = `${direction}:${port}`;
    if (s.name === RETRANSMITS_METRIC) {
      const r = retrans.get(key) ?? { direction, port, total: 0 };
      r.total += s.value;
      retrans.set(key, r);
      continue;
    }
    if (!s.name.startsWith(SRTT_METRIC)) continue;
    const suffix = s.name.slice(SRTT_METRIC.length);
    let h = series.get(key);
    if (!h) series.set(key, (h = { direction, port, buckets: [], sum: null, count: null }));
    if (suffix === '_bucket' && s.labels.le !== undefined) h.buckets.push({ le: parsePromValue(s.labels.le), count: s.value });
    else if (suffix === '_sum') h.sum = s.value;
    else if (suffix === '_count') h.count = s.value;
  }
  const srtt = [...series.values()].map((h) => {
    const inf = h.buckets.find((b) => b.le === Infinity);
    return { direction: h.direction, port: h.port, buckets: h.buckets.sort((a, b) => a.le - b.le), sum: h.sum, count: h.count ?? inf?.count ?? 0 };
  });
  return { srtt, retransmits: [...retrans.values()] };
}

// ---------------------------------------------------------------------------
// Observations: per (direction, port)

/** p50, p90 and max over `n` values (nearest rank: p90 of 2 values is the larger). */
export interface Summary {
  readonly n: number;
  readonly p50: number;
  readonly p90: number;
  readonly max: number;
}

export function summarize(values: readonly number[]): Summary | null {
  const v = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return null;
  const rank = (q: number) => v[Math.max(0, Math.ceil(q * v.length) - 1)]!;
  return { n: v.length, p50: rank(0.5), p90: rank(0.9), max: v[v.length - 1]! };
}

export interface SsGroupStats {
  readonly sockets: number;
  readonly loopbackSockets: number;
  /** The sockets the summaries cover: the non-loopback ones, or the loopback ones when there are no others. */
  readonly basis: 'non-loopback' | 'loopback';
  readonly rttMs: Summary | null;
  readonly minRttMs: Summary | null;
  /** delivery rate × min RTT per socket. */
  readonly sendBdpBytes: Summary | null;
  /** rcv_space per socket: what the receiver saw arrive per RTT. */
  readonly rcvSpaceBytes: Summary | null;
  readonly notsentBytes: Summary | null;
  readonly bytesSent: number;
  readonly bytesRetrans: number;
  readonly dataSegsOut: number;
  readonly retransSegments: number;
  /** bytes_retrans / bytes_sent (retransmitted segments / data segments sent when bytes are missing). */
  readonly retransRatio: number | null;
  /** Sockets whose last send is older than their RTO: their next send restarts from the initial window when tcp_slow_start_after_idle is 1. */
  readonly idleOverRto: number;
  /** Sockets per congestion control. */
  readonly congestion: Readonly<Record<string, number>>;
}

export interface MetricsGroupStats {
  /** Observations in the histogram (one per socket per sidecar interval). */
  readonly samples: number;
  readonly rttSeconds: { readonly p50: number; readonly p90: number; readonly p99: number } | null;
  readonly meanSeconds: number | null;
  readonly retransmits: number | null;
}

export interface PortObservation {
  readonly port: number;
  readonly direction: Direction;
  readonly ss: SsGroupStats | null;
  readonly metrics: MetricsGroupStats | null;
}

export interface SourceNote {
  readonly source: 'proc' | 'ss' | 'tc' | 'metrics';
  readonly used: boolean;
  readonly detail: string;
}

export interface Observations {
  readonly ports: readonly number[];
  readonly sources: readonly SourceNote[];
  /** The sockets on watched ports, with the group each counts for. */
  readonly sockets: readonly (SsSocket & { readonly direction: Direction; readonly port: number; readonly loopback: boolean; readonly sendBdpBytes: number | null })[];
  readonly groups: readonly PortObservation[];
}

function ssGroup(sockets: readonly SsSocket[]): SsGroupStats {
  const loopback = sockets.filter(isLoopbackSocket);
  const others = sockets.filter((s) => !isLoopbackSocket(s));
  const basis = others.length > 0 ? others : loopback;
  const vals = (f: (s: SsSocket) => number | null) => basis.map(f).filter((x): x is number => x !== null);
  const bytesSent = basis.reduce((a, s) => a + (s.bytesSent ?? 0), 0);
  const bytesRetrans = basis.reduce((a, s) => a + (s.bytesRetrans ?? 0), 0);
  const dataSegsOut = basis.reduce((a, s) => a + (s.dataSegsOut ?? 0), 0);
  const retransSegments = basis.reduce((a, s) => a + s.retransTotal, 0);
  const congestion: Record<string, number> = {};
  for (const s of basis) if (s.congestion) congestion[s.congestion] = (congestion[s.congestion] ?? 0) + 1;
  return {
    sockets: sockets.length,
    loopbackSockets: loopback.length,
    basis: others.length > 0 || loopback.length === 0 ? 'non-loopback' : 'loopback',
    rttMs: summarize(vals((s) => s.rttMs)),
    minRttMs: summarize(vals((s) => s.minRttMs)),
    sendBdpBytes: summarize(vals(sendBdpBytes)),
    rcvSpaceBytes: summarize(vals((s) => s.rcvSpace)),
    notsentBytes: summarize(vals((s) => s.notsent)),
    bytesSent,
    bytesRetrans,
    dataSegsOut,
    retransSegments,
    retransRatio: bytesSent > 0 ? bytesRetrans / bytesSent : dataSegsOut > 0 ? retransSegments / dataSegsOut : null,
    idleOverRto: basis.filter((s) => s.lastSendMs !== null && s.rtoMs !== null && s.lastSendMs > s.rtoMs).length,
    congestion,
  };
}

function metricsGroup(h: SrttHistogram | undefined, retransmits: number | undefined): MetricsGroupStats {
  const samples = h?.count ?? 0;
  const q = (p: number) => (h ? histogramQuantile(p, h.buckets) : null);
  const p50 = q(0.5);
  const p90 = q(0.9);
  const p99 = q(0.99);
  return {
    samples,
    rttSeconds: p50 !== null && p90 !== null && p99 !== null ? { p50, p90, p99 } : null,
    meanSeconds: h && h.sum !== null && samples > 0 ? h.sum / samples : null,
    retransmits: retransmits ?? null,
  };
}

/**
 * Groups sockets and metric series by (direction, port) for the watched
 * ports. `sockets` is null when ss was not read, `metrics` when no
 * metrics were fetched.
 */
export function observe(
  ports: readonly number[],
  sockets: readonly SsSocket[] | null,
  metrics: SidecarMetrics | null,
  sources: readonly SourceNote[] = [],
): Observations {
  const watched = new Set(ports);
  const tagged: Observations['sockets'][number][] = [];
  for (const s of sockets ?? []) {
    const c = classifySocket(s, watched);
    if (c) tagged.push({ ...s, ...c, loopback: isLoopbackSocket(s), sendBdpBytes: sendBdpBytes(s) });
  }
  const keys = new Map<string, { direction: Direction; port: number }>();
  const add = (direction: Direction, port: number) => {
    if (watched.has(port)) keys.set(`${direction}:${port}`, { direction, port });
  };
  for (const s of tagged) add(s.direction, s.port);
  for (const h of metrics?.srtt ?? []) add(h.direction, h.port);
  for (const r of metrics?.retransmits ?? []) add(r.direction, r.port);
  const groups: PortObservation[] = [...keys.values()]
    .sort((a, b) => ports.indexOf(a.port) - ports.indexOf(b.port) || a.direction.localeCompare(b.direction))
    .map(({ direction, port }) => {
      const own = tagged.filter((s) => s.direction === direction && s.port === port);
      const h = metrics?.srtt.find((x) => x.direction === direction && x.port === port);
      const r = metrics?.retransmits.find((x) => x.direction === direction && x.port === port);
      return {
        port,
        direction,
        ss: sockets !== null && own.length > 0 ? ssGroup(own) : null,
        metrics: metrics !== null && (h || r) ? metricsGroup(h, r?.total) : null,
      };
    });
  return { ports: [...ports], sources: [...sources], sockets: tagged, groups };
}

// ---------------------------------------------------------------------------
// Rules

/**
 * recommend: change it; consider: worth trying, with a trade-off; ok: fine
 * as it is (or nothing this kernel could change); unknown: the setting
 * could not be read, so it was not judged.
 */
export type Severity = 'recommend' | 'consider' | 'ok' | 'unknown';

export interface PersistStep {
  /** File to add the lines to, e.g. /etc/sysctl.d/90-npcd-tcp.conf. */
  readonly file: string;
  readonly lines: readonly string[];
}

export interface Advice {
  /** Stable id, e.g. slow-start-after-idle. */
  readonly id: string;
  readonly severity: Severity;
  /** The sysctl (or qdisc) judged. */
  readonly setting: string;
  readonly current: string;
  /** Null when nothing is to change. */
  readonly recommended: string | null;
  readonly reason: string;
  /** The numbers behind the verdict: port, direction, RTT, BDP, buffer sizes, retransmit ratio. */
  readonly evidence: readonly string[];
  /** Commands that apply the change now (root); empty when nothing is to change. */
  readonly commands: readonly string[];
  /** What keeps the change across reboots. */
  readonly persist: readonly PersistStep[];
}

export interface Thresholds {
  /** RTT p50 above which an idle restart's extra round trips matter (ms). */
  readonly idleRestartRttMs: number;
  /** A buffer max is tight when the BDP is above this fraction of it. */
  readonly bufferFraction: number;
  /** A raised buffer max is at least this many BDPs (then rounded up to a power of two). */
  readonly bufferHeadroom: number;
  /** A path is high-BDP above this many bytes. */
  readonly highBdpBytes: number;
  /** A path is long above this RTT p90 (ms). */
  readonly highRttMs: number;
  /** A path is lossy above this retransmitted fraction of bytes sent. */
  readonly lossyRetransRatio: number;
  /** Fewer data segments sent than this make a retransmit ratio noise. */
  readonly minSegmentsForRatio: number;
  /** Use p90 over at least this many sockets, the max below. */
  readonly p90MinSockets: number;
  /** The tcp_notsent_lowat to recommend, and the one for latency-critical streams. */
  readonly notsentLowat: number;
  readonly notsentLowatLatency: number;
  /** A set tcp_notsent_lowat above this is as good as none. */
  readonly notsentLowatMaxOk: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = Object.freeze({
  idleRestartRttMs: 10,
  bufferFraction: 0.5,
  bufferHeadroom: 4,
  highBdpBytes: 1024 * 1024,
  highRttMs: 50,
  lossyRetransRatio: 0.01,
  minSegmentsForRatio: 100,
  p90MinSockets: 10,
  notsentLowat: 131072,
  notsentLowatLatency: 16384,
  notsentLowatMaxOk: 1024 * 1024,
});

export interface AdviseOptions {
  readonly thresholds?: Partial<Thresholds>;
}

export const SYSCTL_FILE = '/etc/sysctl.d/90-npcd-tcp.conf';
export const MODULES_FILE = '/etc/modules-load.d/npcd-tcp.conf';

/** "1.50 MiB", "64.0 KiB", "900 B". */
export function formatBytes(n: number): string {
  if (n >= 1024 ** 3) return `${(n / 1024 ** 3).toFixed(2)} GiB`;
  if (n >= 1024 ** 2) return `${(n / 1024 ** 2).toFixed(2)} MiB`;
  if (n >= 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${Math.round(n)} B`;
}

export function formatMs(ms: number): string {
  return ms >= 100 ? `${ms.toFixed(0)} ms` : ms >= 1 ? `${ms.toFixed(1)} ms` : `${ms.toFixed(3)} ms`;
}

function pct(x: number): string {
  return `${(x * 100).toFixed(x < 0.1 ? 2 : 1)} %`;
}

/** Smallest power of two ≥ n. */
export function nextPowerOfTwo(n: number): number {
  return n <= 1 ? 1 : 2 ** Math.ceil(Math.log2(n));
}

function label(g: PortObservation): string {
  return `${g.direction} :${g.port}`;
}

/** ss's snapshot of the group holds loopback sockets only: its per-socket figures (BDP, retransmits, queues) say nothing about real paths. */
function ssLoopbackOnly(g: PortObservation): boolean {
  return g.ss !== null && g.ss.basis === 'loopback';
}

/** The sidecar's RTT histogram has samples for the group: every connection over time, not only those open now. */
function hasRttSamples(g: PortObservation): boolean {
  return !!g.metrics?.rttSeconds && g.metrics.samples > 0;
}

/**
 * Nothing but loopback is known of the group: ss shows only loopback
 * sockets and the sidecar has no RTT samples. (A health check's loopback
 * connection open at the moment of ss does not hide the RTT the sidecar
 * measured on the clients' connections.)
 */
function isLoopbackOnly(g: PortObservation): boolean {
  return ssLoopbackOnly(g) && !hasRttSamples(g);
}

/** The RTT of a group: the sidecar's histogram when it has samples (all sockets over time), else ss's snapshot. */
export function groupRtt(g: PortObservation): { p50Ms: number; p90Ms: number; source: string } | null {
  if (g.metrics?.rttSeconds && g.metrics.samples > 0) {
    return { p50Ms: g.metrics.rttSeconds.p50 * 1000, p90Ms: g.metrics.rttSeconds.p90 * 1000, source: `metrics, ${g.metrics.samples} samples` };
  }
  if (g.ss?.rttMs) return { p50Ms: g.ss.rttMs.p50, p90Ms: g.ss.rttMs.p90, source: `ss, ${g.ss.rttMs.n} socket${g.ss.rttMs.n === 1 ? '' : 's'}` };
  return null;
}

function rttEvidence(g: PortObservation): string | null {
  const r = groupRtt(g);
  if (!r) return null;
  const loop = isLoopbackOnly(g) ? ' (loopback only)' : '';
  return `${label(g)}: rtt p50 ${formatMs(r.p50Ms)}, p90 ${formatMs(r.p90Ms)} (${r.source})${loop}`;
}

/** The BDP figure a rule compares: p90 over enough sockets, else the max. */
function bdpFigure(s: Summary, t: Thresholds): { value: number; which: string } {
  return s.n >= t.p90MinSockets ? { value: s.p90, which: 'p90' } : { value: s.max, which: 'max' };
}

/** Evidence lines for groups whose ss snapshot was loopback only, and so not used; `rtt`: the rule reads RTTs, which the sidecar may still have. */
function loopbackSkips(groups: readonly PortObservation[], rtt: boolean): string[] {
  return groups.filter(ssLoopbackOnly).map((g) => {
    const sockets = `${g.ss!.sockets} loopback socket${g.ss!.sockets === 1 ? '' : 's'} only`;
    return rtt && hasRttSamples(g)
      ? `${label(g)}: ${sockets} in ss, not used; the RTT above is the sidecar's, over every connection`
      : `${label(g)}: ${sockets}, not used (a loopback path has no bandwidth or loss to tune for)`;
  });
}

function unreadable(id: string, s: Setting<unknown>, extra = ''): Advice {
  return {
    id,
    severity: 'unknown',
    setting: s.name,
    current: s.raw ?? 'unknown',
    recommended: null,
    reason: `${s.path} could not be read (${s.error ?? 'unknown'}), so ${s.name} was not judged.${extra}`,
    evidence: [],
    commands: [],
    persist: [],
  };
}

function sysctlChange(name: string, value: string | number): { commands: string[]; persist: PersistStep[] } {
  const v = String(value);
  const quoted = /\s/.test(v) ? `"${v}"` : v;
  return { commands: [`sysctl -w ${name}=${quoted}`], persist: [{ file: SYSCTL_FILE, lines: [`${name} = ${v}`] }] };
}

/**
 * Whether a group's connections run an algorithm with its own cong_control
 * (bbr): the kernel skips the idle restart for those
 * (tcp_slow_start_after_idle_check() in include/net/tcp.h returns early when
 * ca_ops->cong_control is set). From ss's per-socket algorithm, else the
 * host's default.
 */
function ownsCongControl(g: PortObservation, hostDefault: string | null): boolean {
  const names = g.ss ? Object.keys(g.ss.congestion) : [];
  if (names.length > 0) return names.every((n) => n.startsWith('bbr'));
  return hostDefault?.startsWith('bbr') === true;
}

function ruleSlowStartAfterIdle(host: HostSettings, obs: Observations, t: Thresholds): Advice {
  const s = host.slowStartAfterIdle;
  const id = 'slow-start-after-idle';
  if (s.value === null) return unreadable(id, s);
  const paths = obs.groups.filter((g) => !isLoopbackOnly(g) && groupRtt(g) !== null);
  const slow = paths.filter((g) => groupRtt(g)!.p50Ms > t.idleRestartRttMs);
  const cc = host.congestionControl.value;
  const affected = slow.filter((g) => !ownsCongControl(g, cc));
  const evidence = paths.map((g) => {
    const idle = g.ss && g.ss.idleOverRto > 0 ? `; ${g.ss.idleOverRto} of ${g.ss.sockets - g.ss.loopbackSockets} sockets idle longer than their RTO` : '';
    const algos = g.ss ? Object.entries(g.ss.congestion).map(([k, n]) => `${k} ${n}`) : [];
    return `${rttEvidence(g)}${idle}${algos.length > 0 ? `; sockets use ${algos.join(', ')}` : ''}`;
  });
  evidence.push(...loopbackSkips(obs.groups, true));
  const base = { id, setting: s.name, current: String(s.value) };
  if (s.value === 0) {
    return { ...base, severity: 'ok', recommended: null, reason: 'Already 0: a connection that was idle keeps its congestion window.', evidence, commands: [], persist: [] };
  }
  if (slow.length === 0) {
    const reason =
      paths.length === 0
        ? 'No non-loopback connection on the watched ports was observed, so nothing shows that restarting from the initial window costs round trips here. Run again while npcd has clients and pooled upstream connections.'
        : `No watched path has an RTT p50 above ${t.idleRestartRttMs} ms, so the extra round trips of a restart from the initial window cost little.`;
    return { ...base, severity: 'ok', recommended: null, reason, evidence, commands: [], persist: [] };
  }
  if (affected.length === 0) {
    return {
      ...base,
      severity: 'ok',
      recommended: null,
      reason: `The paths above ${t.idleRestartRttMs} ms (${slow.map(label).join(', ')}) use bbr, which the kernel exempts from this restart (bbr paces from its own bandwidth estimate after idle). Only connections on other algorithms (cubic, reno) would gain from 0.`,
      evidence,
      commands: [],
      persist: [],
    };
  }
  const outbound = affected.some((g) => g.direction === 'outbound');
  const inbound = affected.some((g) => g.direction === 'inbound');
  const what = [
    outbound ? 'a request on a pooled upstream connection (a prompt with its chat history is often larger than that window)' : '',
    inbound ? 'the next reply streamed on an idle client connection' : '',
  ].filter(Boolean);
  const reason =
    `With 1, a connection idle for longer than its RTO loses its congestion window (halved per RTO of idleness, down to the initial window of 10 segments, about 14 KB), so ${what.join(' and ')} ` +
    `${what.length > 1 ? 'take' : 'takes'} extra round trips to get through, each costing ${affected.map((g) => `${formatMs(groupRtt(g)!.p50Ms)} (${label(g)})`).join(', ')}; 0 keeps the window across idle periods.` +
    (outbound ? " The replies an upstream sends depend on the upstream host's own setting." : '');
  return { ...base, severity: 'recommend', recommended: '0', reason, evidence, ...sysctlChange(s.name, 0) };
}

interface BufferRuleSpec {
  readonly id: string;
  readonly setting: Setting<BufferTriple> | Setting<number>;
  readonly side: 'send' | 'receive';
  /** net.core.*mem_max: only caps buffers an application sets itself. */
  readonly core: boolean;
}

function ruleBuffer(spec: BufferRuleSpec, obs: Observations, t: Thresholds): Advice {
  const s = spec.setting;
  if (s.value === null) return unreadable(spec.id, s);
  const triple = typeof s.value === 'object' ? (s.value as BufferTriple) : null;
  const max = triple ? triple.max : (s.value as number);
  const current = triple ? `${triple.min} ${triple.default} ${triple.max}` : String(max);
  const bdpName = spec.side === 'send' ? 'send BDP (delivery rate × min RTT)' : 'receive BDP (rcv_space)';
  const evidence: string[] = [];
  let worst: { value: number; which: string; g: PortObservation } | null = null;
  for (const g of obs.groups) {
    if (!g.ss || ssLoopbackOnly(g)) continue;
    const sum = spec.side === 'send' ? g.ss.sendBdpBytes : g.ss.rcvSpaceBytes;
    if (!sum) continue;
    const f = bdpFigure(sum, t);
    evidence.push(
      `${label(g)}: ${bdpName} p50 ${formatBytes(sum.p50)}, p90 ${formatBytes(sum.p90)}, max ${formatBytes(sum.max)} over ${sum.n} socket${sum.n === 1 ? '' : 's'} = ${pct(f.value / max)} of ${formatBytes(max)} (${f.which})`,
    );
    if (!worst || f.value > worst.value) worst = { ...f, g };
  }
  if (spec.core && worst) {
    // The per-port lines are in the tcp_*mem advice; keep the one that decides.
    const keep = evidence.find((e) => e.startsWith(`${label(worst!.g)}:`));
    evidence.length = 0;
    if (keep) evidence.push(keep);
  } else evidence.push(...loopbackSkips(obs.groups, false));
  evidence.push(`${s.name} ${triple ? 'max ' : ''}${max} B (${formatBytes(max)})`);
  const base = { id: spec.id, setting: s.name, current };
  const coreNote = spec.core
    ? ` It only caps buffers an application sets itself with SO_${spec.side === 'send' ? 'SNDBUF' : 'RCVBUF'} (which turns autotuning off for that socket); npcd does not set them, autotuned sockets are capped by net.ipv4.tcp_${spec.side === 'send' ? 'wmem' : 'rmem'} instead.`
    : '';
  if (!worst) {
    return {
      ...base,
      severity: 'ok',
      recommended: null,
      reason: `No non-loopback socket on the watched ports had a ${bdpName}, so nothing approaches ${formatBytes(max)}.${coreNote}`,
      evidence,
      commands: [],
      persist: [],
    };
  }
  if (worst.value <= t.bufferFraction * max) {
    return {
      ...base,
      severity: 'ok',
      recommended: null,
      reason: `The largest ${bdpName}, ${formatBytes(worst.value)} (${worst.which} of ${label(worst.g)}), is at most ${pct(t.bufferFraction)} of the ${formatBytes(max)} maximum.${coreNote}`,
      evidence,
      commands: [],
      persist: [],
    };
  }
  const target = Math.max(max, nextPowerOfTwo(t.bufferHeadroom * worst.value));
  const recommended = triple ? `${triple.min} ${triple.default} ${target}` : String(target);
  const reason = spec.core
    ? `The ${bdpName} of ${label(worst.g)}, ${formatBytes(worst.value)}, is above ${pct(t.bufferFraction)} of ${s.name} (${formatBytes(max)}).${coreNote} Raise it only if something on this host sets its own buffers.`
    : `Autotuning never grows a socket's ${spec.side} buffer past this maximum, and the buffer also holds per-packet overhead, so a path whose BDP is above ${pct(t.bufferFraction)} of it (${formatBytes(worst.value)} on ${label(worst.g)}, max ${formatBytes(max)}) cannot fill its bandwidth; ${formatBytes(target)} is ${t.bufferHeadroom}× that BDP rounded up to a power of two.`;
  return { ...base, severity: spec.core ? 'consider' : 'recommend', recommended, reason, evidence, ...sysctlChange(s.name, recommended) };
}

/** Parses "6.1.0-18-amd64" → [6, 1]. */
function kernelVersion(release: string | null): [number, number] | null {
  const m = /^(\d+)\.(\d+)/.exec(release ?? '');
  return m ? [Number(m[1]), Number(m[2])] : null;
}

function featureUsable(f: Feature): boolean {
  return f.state === 'in-use' || f.state === 'available' || f.state === 'loadable';
}

function ruleCongestion(host: HostSettings, obs: Observations, t: Thresholds): Advice {
  const s = host.congestionControl;
  const id = 'congestion-control';
  if (s.value === null) return unreadable(id, s);
  const cc = s.value;
  const base = { id, setting: s.name, current: cc };
  const evidence: string[] = [];
  const triggers: string[] = [];
  for (const g of obs.groups) {
    if (isLoopbackOnly(g)) continue;
    const parts: string[] = [];
    const rtt = groupRtt(g);
    if (rtt) {
      parts.push(`rtt p90 ${formatMs(rtt.p90Ms)} (${rtt.source})`);
      if (rtt.p90Ms > t.highRttMs) triggers.push(`${label(g)} rtt p90 ${formatMs(rtt.p90Ms)} > ${t.highRttMs} ms`);
    }
    if (g.ss && !ssLoopbackOnly(g)) {
      for (const [name, sum] of [
        ['send BDP', g.ss.sendBdpBytes],
        ['receive BDP', g.ss.rcvSpaceBytes],
      ] as const) {
        if (!sum) continue;
        const f = bdpFigure(sum, t);
        parts.push(`${name} ${f.which} ${formatBytes(f.value)}`);
        if (f.value > t.highBdpBytes) triggers.push(`${label(g)} ${name} ${f.which} ${formatBytes(f.value)} > ${formatBytes(t.highBdpBytes)}`);
      }
      if (g.ss.retransRatio !== null) {
        const enough = g.ss.dataSegsOut >= t.minSegmentsForRatio;
        parts.push(
          `retransmitted ${pct(g.ss.retransRatio)} (${formatBytes(g.ss.bytesRetrans)} of ${formatBytes(g.ss.bytesSent)}; ${g.ss.retransSegments} of ${g.ss.dataSegsOut} data segments)${enough ? '' : ' — too few segments to judge'}`,
        );
        if (enough && g.ss.retransRatio > t.lossyRetransRatio) triggers.push(`${label(g)} retransmitted ${pct(g.ss.retransRatio)} > ${pct(t.lossyRetransRatio)}`);
      }
      const used = Object.entries(g.ss.congestion).map(([k, n]) => `${k} ${n}`);
      if (used.length > 0) parts.push(`sockets use ${used.join(', ')}`);
    }
    if (g.metrics?.retransmits !== null && g.metrics?.retransmits !== undefined) parts.push(`${g.metrics.retransmits} retransmits (metrics)`);
    if (parts.length > 0) evidence.push(`${label(g)}: ${parts.join('; ')}`);
  }
  evidence.push(...loopbackSkips(obs.groups, true));
  evidence.push(`bbr: ${host.bbr.state}${host.bbr.evidence.length > 0 ? ` (${host.bbr.evidence.join('; ')})` : ''}`);
  if (cc.startsWith('bbr')) {
    return { ...base, severity: 'ok', recommended: null, reason: `Already ${cc}.`, evidence, commands: [], persist: [] };
  }
  if (cc !== 'cubic' && cc !== 'reno') {
    return { ...base, severity: 'ok', recommended: null, reason: `${cc} is not cubic or reno; tcp-advise only judges those.`, evidence, commands: [], persist: [] };
  }
  const paths = `high-BDP (> ${formatBytes(t.highBdpBytes)}), long (RTT p90 > ${t.highRttMs} ms) or lossy (> ${pct(t.lossyRetransRatio)} retransmitted)`;
  if (triggers.length === 0) {
    return { ...base, severity: 'ok', recommended: null, reason: `No watched path is ${paths}; ${cc} suits them.`, evidence, commands: [], persist: [] };
  }
  evidence.unshift(...triggers.map((x) => `trigger: ${x}`));
  if (host.bbr.state === 'unavailable') {
    return {
      ...base,
      severity: 'ok',
      recommended: null,
      reason: `Some watched paths are ${paths}, where bbr usually does better than ${cc}, but this kernel has no bbr; nothing to switch to.`,
      evidence,
      commands: [],
      persist: [],
    };
  }
  const version = kernelVersion(host.kernelRelease.value);
  const internalPacing = version === null || version[0] > 4 || (version[0] === 4 && version[1] >= 13);
  const fqUsable = featureUsable(host.fq);
  const commands: string[] = [];
  const sysctlLines: string[] = [];
  const persist: PersistStep[] = [];
  if (host.bbr.state === 'loadable') {
    commands.push('modprobe tcp_bbr');
    persist.push({ file: MODULES_FILE, lines: ['tcp_bbr'] });
  }
  if (fqUsable && host.defaultQdisc.value !== 'fq') {
    commands.push('sysctl -w net.core.default_qdisc=fq');
    sysctlLines.push('net.core.default_qdisc = fq');
  }
  commands.push('sysctl -w net.ipv4.tcp_congestion_control=bbr');
  sysctlLines.push('net.ipv4.tcp_congestion_control = bbr');
  persist.push({ file: SYSCTL_FILE, lines: sysctlLines });
  const pacing = fqUsable
    ? `BBR needs pacing: use it with fq as the qdisc (default_qdisc=fq; see default-qdisc for interfaces already up)${internalPacing ? ", or rely on the TCP stack's internal pacing, which Linux has done since 4.13 when the qdisc is not fq" : ''}.`
    : internalPacing
      ? `BBR needs pacing; fq is ${host.fq.state === 'unavailable' ? 'not in this kernel' : 'not known to be available'}, so it relies on the TCP stack's internal pacing (Linux 4.13 and later).`
      : `BBR needs pacing and this kernel (${host.kernelRelease.value}) predates TCP's internal pacing (4.13): it needs fq as the qdisc.`;
  const availability = host.bbr.state === 'unknown' ? ' Whether this kernel has bbr is unknown: `modprobe tcp_bbr` tells.' : '';
  return {
    ...base,
    severity: 'consider',
    recommended: 'bbr',
    reason:
      `Some watched paths are ${paths}. ${cc} grows its window until a queue overflows and backs off on every loss; bbr paces to its estimate of the bottleneck bandwidth and min RTT, so it keeps throughput under random loss and queues short on long paths. ${pacing}` +
      ` Connections already open keep their algorithm: npcd's pooled connections switch when they reconnect.${availability}`,
    evidence,
    commands,
    persist,
  };
}

function ruleNotsentLowat(host: HostSettings, obs: Observations, t: Thresholds): Advice {
  const s = host.notsentLowat;
  const id = 'notsent-lowat';
  if (s.value === null) return unreadable(id, s);
  const v = s.value;
  // 4294967295 (UINT_MAX) is the default; kernels that print the sysctl as a signed int show it as -1.
  const unlimited = v < 0 || v >= 2 ** 31 - 1;
  const base = { id, setting: s.name, current: unlimited ? `${v} (no limit)` : String(v) };
  const evidence: string[] = [];
  for (const g of obs.groups) {
    if (g.direction !== 'inbound' || !g.ss) continue;
    const n = g.ss.notsentBytes;
    const queued = n ? `unsent bytes queued p50 ${formatBytes(n.p50)}, max ${formatBytes(n.max)} over ${n.n} socket${n.n === 1 ? '' : 's'}` : 'no unsent bytes queued';
    evidence.push(`${label(g)}: ${queued}${ssLoopbackOnly(g) ? ' (loopback only)' : ''}`);
  }
  const wmem = host.tcpWmem.value;
  if (wmem) evidence.push(`net.ipv4.tcp_wmem max ${formatBytes(wmem.max)}: how much a stream's socket can queue without a limit`);
  if (v >= 0 && v <= t.notsentLowatMaxOk && v !== 0) {
    return { ...base, severity: 'ok', recommended: null, reason: `Set to ${formatBytes(v)}: a stream's socket holds at most that much unsent data, so new frames wait in npcd, where backpressure applies.`, evidence, commands: [], persist: [] };
  }
  const why =
    v === 0
      ? '0 is not a value the kernel documents for this sysctl (its default is 4294967295, no limit). '
      : unlimited
        ? "With no limit, a stream's socket takes writes until its whole send buffer is queued, so on a slow client a new token frame waits behind everything queued before it, and npcd's backpressure (buffered amount, drain) sees nothing until the kernel buffer is full. "
        : `${formatBytes(v)} is so high that the socket still queues nearly its whole send buffer. `;
  return {
    ...base,
    severity: unlimited ? 'recommend' : 'consider',
    recommended: String(t.notsentLowat),
    reason:
      why +
      `With ${t.notsentLowat} (${formatBytes(t.notsentLowat)}) the socket reports writable only while less than that is unsent: write() returns false sooner and frames wait in npcd, where its backpressure limits apply, instead of behind stale data in the kernel. It does not limit data in flight, so throughput is unchanged. For latency-critical streams ${t.notsentLowatLatency} (${formatBytes(t.notsentLowatLatency)}) keeps less queued, at the cost of more wake-ups and writes.`,
    evidence,
    ...sysctlChange(s.name, t.notsentLowat),
  };
}

function ruleDefaultQdisc(host: HostSettings, _obs: Observations, preferFq: boolean): Advice {
  const s = host.defaultQdisc;
  const id = 'default-qdisc';
  if (s.value === null) {
    return unreadable(id, s, " net.core.default_qdisc exists only in the initial network namespace: run tcp-advise on the host, not in a container's namespace.");
  }
  const dq = s.value;
  const evidence: string[] = [];
  const ifaces = host.qdiscs.interfaces.filter((i) => !i.loopback);
  for (const i of ifaces) {
    const kids = i.children.length > 0 ? ` (per queue: ${i.children.join(', ')})` : '';
    const note = i.root === 'noqueue' ? ' — a virtual device without a queue' : '';
    evidence.push(`${i.dev}: root qdisc ${i.root}${kids}${note}`);
  }
  if (host.qdiscs.error) evidence.push(`interfaces not read: ${host.qdiscs.error}`);
  evidence.push(`fq: ${host.fq.state}${host.fq.evidence.length > 0 ? ` (${host.fq.evidence.join('; ')})` : ''}`);
  evidence.push(`fq_codel: ${host.fqCodel.state}${host.fqCodel.evidence.length > 0 ? ` (${host.fqCodel.evidence.join('; ')})` : ''}`);
  const base = { id, setting: s.name, current: dq };
  const fifo = (k: string) => k === 'pfifo_fast' || k === 'pfifo' || k === 'bfifo';
  const order: ('fq' | 'fq_codel')[] = preferFq ? ['fq', 'fq_codel'] : ['fq_codel', 'fq'];
  const feat = (k: 'fq' | 'fq_codel') => (k === 'fq' ? host.fq : host.fqCodel);
  const target = order.find((k) => featureUsable(feat(k))) ?? order.find((k) => feat(k).state === 'unknown') ?? null;
  const stale = (kind: string) => ifaces.filter((i) => i.root !== kind && (fifo(i.root) || (i.root === 'mq' && i.children.some(fifo))));
  const ifaceCommands = (kind: string) =>
    stale(kind).map((i) => (i.root === 'mq' ? `tc qdisc del dev ${i.dev} root   # re-attaches mq with ${kind} per queue` : `tc qdisc replace dev ${i.dev} root ${kind}`));
  if (fifo(dq)) {
    if (target === null) {
      return {
        ...base,
        severity: 'ok',
        recommended: null,
        reason: `${dq} keeps one FIFO per band, so a bulk flow can queue ahead of a stream's small frames; fq_codel or fq would separate flows, but this kernel has neither, so there is nothing to switch to.`,
        evidence,
        commands: [],
        persist: [],
      };
    }
    const unknown = feat(target).state === 'unknown' ? ` Whether this kernel has ${target} is unknown (\`modprobe sch_${target}\` tells).` : '';
    return {
      ...base,
      severity: 'consider',
      recommended: target,
      reason:
        `${dq} keeps one FIFO per band, so a bulk flow (an upstream download, a backup) can queue ahead of a stream's small frames on the same interface. ` +
        `${target === 'fq' ? 'fq gives each flow its own queue and paces it (what BBR wants)' : 'fq_codel gives each flow its own queue and keeps their delay short (CoDel)'}; the sysctl applies to qdiscs created afterwards, so interfaces already up need the tc command too.${unknown}`,
      evidence,
      commands: [`sysctl -w ${s.name}=${target}`, ...ifaceCommands(target)],
      persist: [{ file: SYSCTL_FILE, lines: [`${s.name} = ${target}`] }],
    };
  }
  const behind = ifaceCommands(dq);
  if (behind.length > 0) {
    return {
      ...base,
      severity: 'consider',
      recommended: dq,
      reason: `${s.name} is ${dq}, but ${stale(dq).map((i) => i.dev).join(', ')} still use${stale(dq).length === 1 ? 's' : ''} a FIFO: the sysctl only applies to qdiscs created after it was set.`,
      evidence,
      commands: behind,
      persist: [],
    };
  }
  return { ...base, severity: 'ok', recommended: null, reason: `${dq} already separates flows${ifaces.length > 0 ? ', and no interface is left on a FIFO' : ''}.`, evidence, commands: [], persist: [] };
}

const SEVERITY_ORDER: Record<Severity, number> = { recommend: 0, consider: 1, unknown: 2, ok: 3 };

/**
 * Judges the host's TCP settings against what was observed. Always returns
 * one advice per checked setting (ok when nothing is to change), sorted by
 * severity: recommend, consider, unknown, ok.
 */
export function advise(host: HostSettings, obs: Observations, options: AdviseOptions = {}): Advice[] {
  const t: Thresholds = { ...DEFAULT_THRESHOLDS, ...options.thresholds };
  const cc = ruleCongestion(host, obs, t);
  const preferFq = host.congestionControl.value?.startsWith('bbr') === true || cc.recommended === 'bbr';
  const out = [
    ruleSlowStartAfterIdle(host, obs, t),
    ruleBuffer({ id: 'tcp-wmem-max', setting: host.tcpWmem, side: 'send', core: false }, obs, t),
    ruleBuffer({ id: 'tcp-rmem-max', setting: host.tcpRmem, side: 'receive', core: false }, obs, t),
    ruleBuffer({ id: 'core-wmem-max', setting: host.wmemMax, side: 'send', core: true }, obs, t),
    ruleBuffer({ id: 'core-rmem-max', setting: host.rmemMax, side: 'receive', core: true }, obs, t),
    cc,
    ruleNotsentLowat(host, obs, t),
    ruleDefaultQdisc(host, obs, preferFq),
  ];
  return out.map((a, i) => ({ a, i })).sort((x, y) => SEVERITY_ORDER[x.a.severity] - SEVERITY_ORDER[y.a.severity] || x.i - y.i).map((x) => x.a);
}
