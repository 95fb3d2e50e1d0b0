/**
 * Metric names and definitions, in one place. Labels are bounded enums (route
 * template, method, status code, frame type, provider, error code); they never
 * hold session ids, user ids or free text.
 */
import { Counter, type CounterConfiguration, Gauge, Histogram, type Metric, Registry } from 'prom-client';
import { REASON_CODES } from '../providers/api.js';
import { collectProcessMetrics } from './process.js';

export const METRIC = {
  httpRequests: 'http_requests_total',
  httpDuration: 'http_request_duration_seconds',
  httpFailed: 'http_requests_failed_total',
  wsConnections: 'npcd_ws_connections',
  wsConnectionsOpened: 'npcd_ws_connections_opened_total',
  wsConnectionsClosed: 'npcd_ws_connections_closed_total',
  wsFrames: 'npcd_ws_frames_total',
  wsBackpressurePauses: 'npcd_ws_backpressure_pauses_total',
  wsFramesDropped: 'npcd_ws_frames_dropped_total',
  turns: 'npcd_turns_total',
  tokens: 'npcd_tokens_streamed_total',
  ttft: 'npcd_time_to_first_token_seconds',
  interTokenGap: 'npcd_inter_token_gap_seconds',
  turnDuration: 'npcd_turn_duration_seconds',
  sessions: 'npcd_sessions',
  sessionsExpired: 'npcd_sessions_expired_total',
  storeEvictions: 'npcd_store_evictions_total',
  resumes: 'npcd_resumes_total',
  characters: 'npcd_characters',
  characterLoadErrors: 'npcd_character_load_errors_total',
  characterReloads: 'npcd_character_reloads_total',
  regexTimeouts: 'npcd_regex_timeouts_total',
  providerRequests: 'npcd_provider_requests_total',
  providerDuration: 'npcd_provider_request_duration_seconds',
  providerErrors: 'npcd_provider_errors_total',
  providerRetries: 'npcd_provider_retries_total',
  providerFallbacks: 'npcd_provider_fallbacks_total',
  upstreamConnections: 'npcd_upstream_connections',
  upstreamConnectionsOpened: 'npcd_upstream_connections_opened_total',
  upstreamHealthy: 'npcd_upstream_healthy',
  storeErrors: 'npcd_store_errors_total',
  storeUp: 'npcd_store_up',
  generationsInterrupted: 'npcd_generations_interrupted_total',
  recallDuration: 'npcd_memory_recall_duration_seconds',
  memoriesStored: 'npcd_memories_stored_total',
  embeddingErrors: 'npcd_embedding_errors_total',
  workerQueueDepth: 'npcd_worker_queue_depth',
  workerTaskDuration: 'npcd_worker_task_duration_seconds',
} as const;

/** Store operations counted in npcd_store_errors_total. */
export const STORE_OPERATIONS = ['frames', 'turns', 'memories', 'lease'] as const;

/** What the upstream pool metrics read at scrape time (see providers/upstream.ts). */
export interface UpstreamGaugeSource {
  readonly name: string;
  readonly stats: { readonly inUse: number; readonly idle: number; readonly waiting: number; readonly opened: number };
  readonly isHealthy: boolean;
}

/** What the worker pool gauge reads at scrape time (see characters/parse-pool.ts). */
export interface WorkerPoolGaugeSource {
  /** Tasks waiting for a free worker. */
  readonly queueSize: number;
}

/** Worker pools, a bounded label. */
export type WorkerPoolName = 'parse';

/** Latency buckets from 1 ms to 30 s. */
const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export type FrameDirection = 'in' | 'out';
export type TurnOutcome = 'completed' | 'cancelled' | 'failed' | 'rejected';

/**
 * A counter for per-frame paths: increments are plain additions to a cell
 * (no label hashing), and the totals are handed to prom-client when
 * /metrics is scraped.
 */
export class HotCounter<L extends string> {
  private readonly cells = new Map<string, { labels: Record<L, string>; value: number }>();
  readonly metric: Counter<L>;

  constructor(config: Omit<CounterConfiguration<L>, 'collect'>) {
    const cells = this.cells;
    this.metric = new Counter<L>({
      ...config,
      collect() {
        this.reset();
        for (const c of cells.values()) this.inc(c.labels as never, c.value);
      },
    });
  }

  /** The cell for one label set; keep it and add to `value`. */
  cell(labels: Record<L, string>): { value: number } {
    const key = Object.values(labels).join('\u0000');
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { labels, value: 0 }));
    return c;
  }

  inc(labels: Record<L, string>, n = 1): void {
    this.cell(labels).value += n;
  }
}

/** One label set of a HotHistogram: non-cumulative bucket counts, filled by plain arithmetic. */
export class HistogramCell {
  /** counts[i]: observations in (bounds[i-1], bounds[i]]; the last one above every bound (+Inf). */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    // Values are mostly small: a scan from the smallest bucket ends early.
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

/**
 * A histogram for per-token paths: an observation is a few additions on a
 * cell kept by the caller (prom-client's Histogram validates and hashes its
 * labels on every observe, also through `labels()`), and the exposition is
 * built from the cells when /metrics is scraped. Registered in the registry
 * as a metric of its own, through prom-client's `registerMetric`.
 */
export class HotHistogram<L extends string> {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  private readonly bounds: readonly number[];
  private readonly cells = new Map<string, { labels: Record<L, string>; cell: HistogramCell }>();

  constructor(config: { name: string; help: string; labelNames: readonly L[]; buckets: readonly number[]; registers: Registry[] }) {
    this.name = config.name;
    this.help = config.help;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    for (const r of config.registers) r.registerMetric(this as unknown as Metric);
  }

  /** The cell for one label set; keep it and call its `observe`. */
  cell(labels: Record<L, string>): HistogramCell {
    const key = Object.values(labels).join('\u0000');
    let c = this.cells.get(key);
    if (!c) this.cells.set(key, (c = { labels, cell: new HistogramCell(this.bounds) }));
    return c.cell;
  }

  /** What prom-client's registry formats (the same shape as Histogram.get()). */
  get(): { name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: { labels: Record<string, string | number>; value: number; metricName: string }[] } {
    const values: { labels: Record<string, string | number>; value: number; metricName: string }[] = [];
    for (const { labels, cell } of this.cells.values()) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += cell.counts[i]!;
        values.push({ labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      }
      values.push({ labels, value: cell.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: cell.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  reset(): void {
    for (const { cell } of this.cells.values()) {
      cell.counts.fill(0);
      cell.sum = 0;
      cell.count = 0;
    }
  }
}

export class Metrics {
  readonly registry = new Registry();
  readonly httpRequests = new Counter({
    name: METRIC.httpRequests,
    help: 'HTTP requests by route template, method and status code.',
    labelNames: ['route', 'method', 'status_code'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: METRIC.httpDuration,
    help: 'HTTP request duration in seconds, until the response ended (streams included).',
    labelNames: ['route'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly httpFailed = new Counter({
    name: METRIC.httpFailed,
    help: 'HTTP requests answered with an error, by route template and error code.',
    labelNames: ['route', 'reason'] as const,
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({
    name: METRIC.wsConnections,
    help: 'Open WebSocket connections.',
    registers: [this.registry],
  });
  readonly wsOpened = new Counter({
    name: METRIC.wsConnectionsOpened,
    help: 'WebSocket connections opened.',
    registers: [this.registry],
  });
  readonly wsClosed = new Counter({
    name: METRIC.wsConnectionsClosed,
    help: 'WebSocket connections closed, by reason (client, heartbeat_timeout, hello_timeout, taken_over, shutdown, auth).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly wsFrames = new HotCounter({
    name: METRIC.wsFrames,
    help: 'WebSocket frames by direction (in/out) and frame type ("invalid" for undecodable input).',
    labelNames: ['direction', 'type'] as const,
    registers: [this.registry],
  });
  readonly wsBackpressurePauses = new Counter({
    name: METRIC.wsBackpressurePauses,
    help: 'Times live sending to a WebSocket paused because its send buffer passed the high-water mark.',
    registers: [this.registry],
  });
  readonly wsFramesDropped = new Counter({
    name: METRIC.wsFramesDropped,
    help: 'Frames a slow WebSocket client missed because they left the replay log before it caught up.',
    registers: [this.registry],
  });
  readonly turns = new Counter({
    name: METRIC.turns,
    help: 'Chat turns by provider and outcome (completed, cancelled, failed, rejected).',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly tokens = new HotCounter({
    name: METRIC.tokens,
    help: 'Token frames streamed, by provider.',
    labelNames: ['provider'] as const,
    registers: [this.registry],
  });
  readonly ttft = new Histogram({
    name: METRIC.ttft,
    help: 'Time from accepting a chat to its first token, in seconds.',
    labelNames: ['provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  /** Observed once per token after the first: take `interTokenGap.cell(...)` once per turn and observe on it. */
  readonly interTokenGap = new HotHistogram({
    name: METRIC.interTokenGap,
    help: 'Time between consecutive tokens of a reply, in seconds, by provider.',
    labelNames: ['provider'] as const,
    // Tokens that arrive in one upstream chunk are microseconds apart; a stalled upstream seconds.
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });
  readonly turnDuration = new Histogram({
    name: METRIC.turnDuration,
    help: 'Time from accepting a chat to its done frame, in seconds.',
    labelNames: ['provider'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly sessions = new Gauge({
    name: METRIC.sessions,
    help: 'Sessions held in memory.',
    registers: [this.registry],
  });
  readonly sessionsExpired = new Counter({
    name: METRIC.sessionsExpired,
    help: 'Sessions deleted after their idle TTL.',
    registers: [this.registry],
  });
  readonly regexTimeouts = new Counter({
    name: METRIC.regexTimeouts,
    help: 'Regular expressions of characters (on_regex, lorebook regex keys) disabled for running past --regex-timeout against a text.',
    registers: [this.registry],
  });
  readonly storeEvictions = new Counter({
    name: METRIC.storeEvictions,
    help: 'Sessions whose stored records (history, memories, stream) the in-process store evicted to stay within --memory-budget.',
    registers: [this.registry],
  });
  readonly storeErrors = new Counter({
    name: METRIC.storeErrors,
    help: 'Memory store writes that failed in the background (the node went on without them), by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });
  readonly storeUp = new Gauge({
    name: METRIC.storeUp,
    help: '1 while the memory store is reachable (always 1 in-process), 0 while Redis is down.',
    registers: [this.registry],
  });
  readonly generationsInterrupted = new Counter({
    name: METRIC.generationsInterrupted,
    help: 'Replies declared interrupted because the node generating them stopped (shared store only).',
    registers: [this.registry],
  });
  readonly recallDuration = new Histogram({
    name: METRIC.recallDuration,
    help: 'Memory recall per turn: embedding the message and searching the session\'s memories.',
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [this.registry],
  });
  readonly memoriesStored = new Counter({
    name: METRIC.memoriesStored,
    help: 'Memories stored, by kind (turn, event).',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });
  readonly embeddingErrors = new Counter({
    name: METRIC.embeddingErrors,
    help: 'Embedding requests that failed (recall skipped for the turn, or a memory stored without recall).',
    registers: [this.registry],
  });
  readonly resumes = new Counter({
    name: METRIC.resumes,
    help: 'hello frames with resume, by result (replayed, gap).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly characters = new Gauge({
    name: METRIC.characters,
    help: 'Characters loaded.',
    registers: [this.registry],
  });
  readonly characterLoadErrors = new Counter({
    name: METRIC.characterLoadErrors,
    help: 'Character files that failed to load.',
    registers: [this.registry],
  });
  readonly characterReloads = new Counter({
    name: METRIC.characterReloads,
    help: 'Character files reloaded after a change, by result: loaded, failed (the last good version keeps serving), removed.',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });

  /** Upstreams whose pools the gauges below read when scraped. */
  private readonly upstreams: UpstreamGaugeSource[] = [];
  readonly providerRequests = new Counter({
    name: METRIC.providerRequests,
    help: 'HTTP requests to model upstreams (each retry counts), by upstream ("openai:gpt-4o-mini") and outcome: ok, cancelled, unavailable, timeout, rate_limited, bad_response, rejected.',
    labelNames: ['provider', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly providerDuration = new Histogram({
    name: METRIC.providerDuration,
    help: 'Duration of HTTP requests to model upstreams in seconds, from waiting for a connection to the end of the streamed reply, by upstream.',
    labelNames: ['provider'] as const,
    buckets: [...LATENCY_BUCKETS, 60, 120, 300],
    registers: [this.registry],
  });
  readonly providerErrors = new Counter({
    name: METRIC.providerErrors,
    help: 'HTTP requests to model upstreams that failed (each retry counts), by upstream and reason: unavailable, timeout, rate_limited, bad_response, rejected.',
    labelNames: ['provider', 'reason'] as const,
    registers: [this.registry],
  });
  readonly providerRetries = new Counter({
    name: METRIC.providerRetries,
    help: 'Retries of upstream requests before their first token, by upstream and the reason of the failure retried.',
    labelNames: ['provider', 'reason'] as const,
    registers: [this.registry],
  });
  readonly providerFallbacks = new Counter({
    name: METRIC.providerFallbacks,
    help: 'Turns passed to the next provider of the --model chain, by the provider that failed before its first token and why.',
    labelNames: ['provider', 'reason'] as const,
    registers: [this.registry],
  });
  /** Worker pools whose queues the gauge below reads when scraped. */
  private readonly workerPools = new Map<WorkerPoolName, WorkerPoolGaugeSource>();
  readonly workerQueueDepth: Gauge<'pool'>;
  readonly workerTaskDuration = new Histogram({
    name: METRIC.workerTaskDuration,
    help: 'Run time of worker pool tasks in seconds (in the worker, queue wait excluded), by pool.',
    labelNames: ['pool'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  /** Exports a worker pool's queue depth (read when scraped). */
  watchWorkerPool(name: WorkerPoolName, pool: WorkerPoolGaugeSource): void {
    this.workerPools.set(name, pool);
  }

  readonly upstreamConnections: Gauge<'upstream' | 'state'>;
  readonly upstreamOpened: Counter<'upstream'>;
  readonly upstreamHealthy: Gauge<'upstream'>;

  /** Exports an upstream's pool (connections in use, idle, waiting turns, opened) and health. */
  watchUpstream(u: UpstreamGaugeSource): void {
    this.upstreams.push(u);
    for (const reason of Object.keys(REASON_CODES)) this.providerErrors.inc({ provider: u.name, reason }, 0);
  }

  constructor(options: { defaultMetrics?: boolean } = {}) {
    const upstreams = this.upstreams;
    const workerPools = this.workerPools;
    this.workerQueueDepth = new Gauge({
      name: METRIC.workerQueueDepth,
      help: 'Tasks waiting for a free worker, by pool (parse: character files).',
      labelNames: ['pool'] as const,
      registers: [this.registry],
      collect() {
        for (const [pool, source] of workerPools) this.set({ pool }, source.queueSize);
      },
    });
    this.upstreamConnections = new Gauge({
      name: METRIC.upstreamConnections,
      help: 'Connections of each model upstream\'s pool by state: in_use (carrying a request), idle (kept alive), waiting (turns waiting for a free connection).',
      labelNames: ['upstream', 'state'] as const,
      registers: [this.registry],
      collect() {
        for (const u of upstreams) {
          const s = u.stats;
          this.set({ upstream: u.name, state: 'in_use' }, s.inUse);
          this.set({ upstream: u.name, state: 'idle' }, s.idle);
          this.set({ upstream: u.name, state: 'waiting' }, s.waiting);
        }
      },
    });
    this.upstreamOpened = new Counter({
      name: METRIC.upstreamConnectionsOpened,
      help: 'Connections opened to each model upstream (a reused keep-alive connection is not counted again).',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const u of upstreams) this.inc({ upstream: u.name }, u.stats.opened);
      },
    });
    this.upstreamHealthy = new Gauge({
      name: METRIC.upstreamHealthy,
      help: '1 while a model upstream is in rotation, 0 while health checks keep it out.',
      labelNames: ['upstream'] as const,
      registers: [this.registry],
      collect() {
        for (const u of upstreams) this.set({ upstream: u.name }, u.isHealthy ? 1 : 0);
      },
    });
    // Known label values start at 0, so rates and alerts work before the first event.
    for (const result of ['replayed', 'gap']) this.resumes.inc({ result }, 0);
    for (const operation of STORE_OPERATIONS) this.storeErrors.inc({ operation }, 0);
    for (const kind of ['turn', 'event']) this.memoriesStored.inc({ kind }, 0);
    this.storeUp.set(1);
    for (const result of ['loaded', 'failed', 'removed']) this.characterReloads.inc({ result }, 0);
    for (const reason of ['client', 'heartbeat_timeout', 'hello_timeout', 'taken_over', 'shutdown', 'auth']) this.wsClosed.inc({ reason }, 0);
    // Process, event-loop lag and GC metrics.
    if (options.defaultMetrics !== false) collectProcessMetrics(this.registry);
  }
}
