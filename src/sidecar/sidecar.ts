/**
 * The sidecar: runs the chosen bpftrace programs, turns the totals they print
 * into cumulative Prometheus families, and serves them with its own process
 * metrics on its own port. Labels stay bounded: direction (inbound or
 * outbound) and a watched service port, never an ephemeral port or a
 * connection id; per-socket RTTs are only in /sockets (JSON).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { Counter, Gauge, Registry } from 'prom-client';
import { collectProcessMetrics } from '../metrics/process.js';
import type { SidecarMetrics } from './advise.js';
import type { BpftraceRecord, HistBucket, Stats } from './bpftrace-json.js';
import { LOG2_BUCKETS_SECONDS } from './buckets.js';
import type { Capabilities } from './capabilities.js';
import { DeltaCounter, Log2Histogram } from './exposition.js';
import { type Direction, SIDECAR_METRIC } from './names.js';

export { type Direction, SIDECAR_METRIC };
import { type ProgramSpec, programArgs, programPath, type Selection } from './programs.js';
import { DEFAULT_RUNNER_OPTIONS, ProgramRunner, type RunnerOptions } from './runner.js';


/** The TCP tuning advice of this host (advise-cli.ts) from the sidecar's histograms, computed on demand. */
export type AdviceSource = (metrics: SidecarMetrics) => Promise<{ readonly advice: readonly { readonly id: string; readonly severity: string }[] }>;

/** How often the advice behind npcd_tcp_advice is refreshed. */
const ADVICE_REFRESH_MS = 60_000;

export interface SidecarConfig {
  readonly ports: readonly number[];
  /** Network namespace inode to watch; 0 for every one. */
  readonly netns: number;
  readonly intervalS: number;
  readonly bpftrace: string;
  readonly bpfDir: string;
  readonly socketRtt: boolean;
  readonly metricsHost: string;
  readonly metricsPort: number;
  readonly runner?: RunnerOptions;
  /** Serves /advice and npcd_tcp_advice when set. */
  readonly advice?: AdviceSource;
}


/** The latest srtt of one watched socket (tcp-srtt with per-socket sampling). */
export interface SocketRtt {
  /** Kernel socket cookie, as `ss -e` prints it in hex after "sk:". */
  readonly cookie: string;
  readonly port: number;
  readonly srttUs: number;
  readonly at: string;
}

/** errno at a failed connect → bounded reason label. */
const CONNECT_FAILURE_REASON: Readonly<Record<string, string>> = {
  '0': 'aborted', // the application closed the socket while it was connecting
  '104': 'reset', // ECONNRESET
  '110': 'timeout', // ETIMEDOUT: the SYN retries ran out
  '111': 'refused', // ECONNREFUSED
  '101': 'unreachable', // ENETUNREACH
  '113': 'unreachable', // EHOSTUNREACH
};

const DIRECTION: Readonly<Record<string, Direction>> = { in: 'inbound', out: 'outbound' };

/** Sockets kept in /sockets at most (the newest win). */
const MAX_SOCKETS = 4096;
/** A socket leaves /sockets after a minute without a segment (closed, or idle), or three intervals when that is longer: "seen recently". */
const SOCKET_KEPT_MS = 60_000;
const SOCKET_KEPT_INTERVALS = 3;

export class Sidecar {
  readonly registry = new Registry();
  readonly srtt = new Log2Histogram(SIDECAR_METRIC.srtt, 'Smoothed TCP RTT of connections on watched ports, one sample per socket per interval (tcp:tcp_probe).', ['direction', 'port'] as const);
  readonly connectDuration = new Log2Histogram(SIDECAR_METRIC.connectDuration, 'Active TCP open to a watched port: SYN sent to ESTABLISHED.', ['port'] as const);
  readonly handshakeRtt = new Log2Histogram(SIDECAR_METRIC.handshakeRtt, "The kernel's first RTT sample of a new connection: SYN-ACK to ACK (inbound), SYN to SYN-ACK (outbound).", ['direction', 'port'] as const);
  readonly connectFailures = new DeltaCounter(SIDECAR_METRIC.connectFailures, 'Active TCP opens to a watched port that left SYN_SENT for anything but ESTABLISHED, by reason.', ['port', 'reason'] as const);
  readonly retransmits = new DeltaCounter(SIDECAR_METRIC.retransmits, 'Retransmitted TCP segments on connections of watched ports.', ['direction', 'port'] as const);
  readonly retransmitErrors = new DeltaCounter(SIDECAR_METRIC.retransmitErrors, 'Retransmissions the kernel could not send (not_sent: the previous copy is still queued locally) or the local qdisc dropped (dropped).', ['direction', 'port', 'kind'] as const);
  readonly synackRetransmits = new DeltaCounter(SIDECAR_METRIC.synackRetransmits, 'SYN-ACKs a listener on a watched port sent again.', ['port'] as const);
  readonly runners: ProgramRunner[] = [];
  readonly #families = [this.srtt, this.connectDuration, this.handshakeRtt, this.connectFailures, this.retransmits, this.retransmitErrors, this.synackRetransmits];
  readonly #ports: ReadonlySet<string>;
  /** By cookie, least recently seen first; `at` in ms (an ISO time in sockets()). */
  readonly #sockets = new Map<string, { readonly cookie: string; readonly port: number; readonly srttUs: number; readonly at: number }>();
  readonly #outputErrors: Counter<'program'>;
  readonly #lostEvents: Counter<'program'>;
  readonly #restarts: Counter<'program'>;
  #server: Server | undefined;
  /** The last totals each program printed, per map entry (see #delta). */
  readonly #totals = new Map<string, Map<string, number>>();
  #advice: { at: number; report: Awaited<ReturnType<AdviceSource>> } | undefined;
  #advising: Promise<Awaited<ReturnType<AdviceSource>>> | undefined;
  #adviceTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: SidecarConfig,
    readonly capabilities: Capabilities,
    readonly selection: Selection,
    private readonly log: Logger,
  ) {
    this.#ports = new Set(config.ports.map(String));
    collectProcessMetrics(this.registry);
    const runners = this.runners;
    new Gauge({
      name: SIDECAR_METRIC.programUp,
      help: 'Whether a bpftrace program of the sidecar runs with its probes attached (1), or is starting or waiting to restart (0).',
      labelNames: ['program'],
      registers: [this.registry],
      collect() {
        for (const r of runners) this.set({ program: r.name }, r.status().ready ? 1 : 0);
      },
    });
    this.#restarts = new Counter({ name: SIDECAR_METRIC.programRestarts, help: 'Restarts of a bpftrace program after it exited.', labelNames: ['program'], registers: [this.registry] });
    this.#outputErrors = new Counter({ name: SIDECAR_METRIC.outputErrors, help: 'Lines of bpftrace output that were not JSON records (ERR_SIDECAR_OUTPUT), or records with keys the sidecar does not watch.', labelNames: ['program'], registers: [this.registry] });
    this.#lostEvents = new Counter({ name: SIDECAR_METRIC.lostEvents, help: 'Events bpftrace reported lost.', labelNames: ['program'], registers: [this.registry] });
    if (config.advice) {
      const sidecar = this;
      new Gauge({
        name: SIDECAR_METRIC.advice,
        help: 'TCP tuning advice for this host (npcd tcp-advise, refreshed every minute): 1 for each check by its severity (recommend, consider, unknown, ok).',
        labelNames: ['id', 'severity'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const a of sidecar.#advice?.report.advice ?? []) this.set({ id: a.id, severity: a.severity }, 1);
        },
      });
    }
  }

  /** The advice, computed again when older than `maxAgeMs` (one computation at a time). */
  async advice(maxAgeMs: number): Promise<Awaited<ReturnType<AdviceSource>> | undefined> {
    const source = this.config.advice;
    if (!source) return undefined;
    if (this.#advice && Date.now() - this.#advice.at <= maxAgeMs) return this.#advice.report;
    this.#advising ??= source(this.adviceMetrics())
      .then((report) => {
        this.#advice = { at: Date.now(), report };
        return report;
      })
      .finally(() => (this.#advising = undefined));
    return this.#advising;
  }

  /**
   * Starts the metrics server, then the programs; resolves with the bound
   * port. A port that cannot be bound rejects before any program is
   * attached, so a sidecar that could not serve its metrics leaves nothing
   * running.
   */
  async start(): Promise<number> {
    this.#server = createServer((req, res) => void this.#handle(req.url ?? '/', res));
    await new Promise<void>((resolve, reject) => {
      this.#server!.once('error', reject);
      this.#server!.listen(this.config.metricsPort, this.config.metricsHost, () => resolve());
    });
    const port = (this.#server.address() as AddressInfo).port;
    const options = { socketRtt: this.config.socketRtt, intervalS: this.config.intervalS, netns: this.config.netns, ports: this.config.ports };
    for (const p of this.selection.run) this.runners.push(this.#runner(p, options));
    for (const r of this.runners) r.start();
    if (this.config.advice) {
      const refresh = () => void this.advice(0).catch((err: unknown) => this.log.warn({ err }, 'tcp advice failed'));
      // The first advice waits for one interval of RTT samples.
      this.#adviceTimer = setInterval(refresh, ADVICE_REFRESH_MS);
      this.#adviceTimer.unref();
      setTimeout(refresh, (this.config.intervalS + 1) * 1000).unref();
    }
    return port;
  }

  #runner(p: ProgramSpec, options: Parameters<typeof programArgs>[1]): ProgramRunner {
    const log = this.log;
    return new ProgramRunner(
      { name: p.name, bpftrace: this.config.bpftrace, file: programPath(this.config.bpfDir, p), args: programArgs(p, options) },
      {
        record: (program, record) => this.ingest(program, record),
        badLine: (program, line, err) => {
          this.#outputErrors.inc({ program });
          log.warn({ program, code: 'ERR_SIDECAR_OUTPUT', line: line.slice(0, 500) }, err.message);
        },
        stderr: (program, line) => log.warn({ program }, `bpftrace: ${line}`),
        exited: (program, code, signal, restartInMs) => {
          this.#restarts.inc({ program });
          log.error({ program, code, signal, restartInMs }, 'bpftrace program exited; restarting');
        },
        started: (program, bpftracePid) => {
          // A new run counts from zero again.
          this.#totals.delete(program);
          log.info({ program, bpftracePid }, 'bpftrace program started');
        },
      },
      this.config.runner ?? DEFAULT_RUNNER_OPTIONS,
    );
  }

  /** Takes one record of a program's output. */
  ingest(program: string, record: BpftraceRecord): void {
    switch (record.type) {
      case 'printf':
        if (/: error:/.test(record.text)) this.log.error({ program }, record.text.trim());
        else this.log.info({ program }, record.text.trim());
        return;
      case 'lost_events':
        this.#lostEvents.inc({ program }, record.events);
        return;
      case 'hist':
        for (const e of record.entries) this.#hist(program, record.name, e.keys, e.value);
        return;
      case 'stats':
        for (const e of record.entries) this.#stats(program, record.name, e.keys, e.value);
        return;
      case 'map': {
        const at = Date.now();
        for (const e of record.entries) this.#map(program, record.name, e.keys, e.value, at);
        return;
      }
      default:
        return;
    }
  }

  /**
   * The programs print totals since they started (their maps are never
   * cleared, so no event is lost between a print and a clear); this turns a
   * total into what is new since the program's previous print. A total below
   * the last one means the program started again.
   */
  #delta(program: string, entry: string, total: number): number {
    let totals = this.#totals.get(program);
    if (!totals) this.#totals.set(program, (totals = new Map()));
    const last = totals.get(entry) ?? 0;
    totals.set(entry, total);
    return total >= last ? total - last : total;
  }

  #hist(program: string, name: string, keys: readonly string[], totals: readonly HistBucket[]): void {
    // Bucket totals become what each bucket gained since the program's previous print.
    const grown = () => {
      const entry = `${name}\u0000${keys.join(',')}\u0000`;
      return totals.map((b) => ({ ...b, count: this.#delta(program, `${entry}${b.min}:${b.max}`, b.count) }));
    };
    switch (name) {
      case '@tcp_srtt_us':
        return this.#withDirPort(program, keys, (l) => this.srtt.addHist(l, grown()));
      case '@tcp_handshake_rtt_us':
        return this.#withDirPort(program, keys, (l) => this.handshakeRtt.addHist(l, grown()));
      case '@tcp_connect_latency_us':
        return this.#withPort(program, keys[0], (port) => this.connectDuration.addHist({ port }, grown()));
      default:
        return this.#unknown(program, name);
    }
  }

  #stats(program: string, name: string, keys: readonly string[], totals: Stats): void {
    const grown = () => this.#delta(program, `${name}\u0000${keys.join(',')}`, totals.total);
    switch (name) {
      case '@tcp_srtt_us_stats':
        return this.#withDirPort(program, keys, (l) => this.srtt.addSumMicros(l, grown()));
      case '@tcp_handshake_rtt_us_stats':
        return this.#withDirPort(program, keys, (l) => this.handshakeRtt.addSumMicros(l, grown()));
      case '@tcp_connect_latency_us_stats':
        return this.#withPort(program, keys[0], (port) => this.connectDuration.addSumMicros({ port }, grown()));
      default:
        return this.#unknown(program, name);
    }
  }

  #map(program: string, name: string, keys: readonly string[], total: number, at: number): void {
    // The per-socket map holds the latest values; every other one counts since the program started.
    if (name === '@tcp_srtt_sock_us') return this.#withPort(program, keys[1], (port) => this.#socket(keys[0]!, Number(port), total, at));
    const grown = () => this.#delta(program, `${name}\u0000${keys.join(',')}`, total);
    switch (name) {
      case '@tcp_connect_failures':
        return this.#withPort(program, keys[0], (port) => this.connectFailures.add({ port, reason: CONNECT_FAILURE_REASON[keys[1] ?? ''] ?? 'other' }, grown()));
      case '@tcp_retransmits':
        return this.#withDirPort(program, keys, (l) => this.retransmits.add(l, grown()));
      case '@tcp_retransmit_errors':
        return this.#withDirPort(program, keys, (l) => this.retransmitErrors.add({ ...l, kind: Number(keys[2]) < 0 ? 'not_sent' : 'dropped' }, grown()));
      case '@tcp_synack_retransmits':
        return this.#withPort(program, keys[0], (port) => this.synackRetransmits.add({ port }, grown()));
      default:
        return this.#unknown(program, name);
    }
  }

  #socket(cookieDecimal: string, port: number, srttUs: number, at: number): void {
    const cookie = BigInt(cookieDecimal).toString(16);
    this.#sockets.delete(cookie);
    this.#sockets.set(cookie, { cookie, port, srttUs, at });
    if (this.#sockets.size > MAX_SOCKETS) this.#sockets.delete(this.#sockets.keys().next().value!);
    this.#expireSockets();
  }

  /** Drops the sockets not seen recently (the oldest come first). */
  #expireSockets(now = Date.now()): void {
    const oldest = now - Math.max(SOCKET_KEPT_MS, SOCKET_KEPT_INTERVALS * this.config.intervalS * 1000);
    for (const [cookie, s] of this.#sockets) {
      if (s.at >= oldest) break;
      this.#sockets.delete(cookie);
    }
  }

  #withDirPort(program: string, keys: readonly string[], use: (labels: { direction: Direction; port: string }) => void): void {
    const direction = DIRECTION[keys[0] ?? ''];
    if (!direction) return this.#unknown(program, `direction ${keys[0]}`);
    this.#withPort(program, keys[1], (port) => use({ direction, port }));
  }

  /** Only watched ports become label values: anything else is a program error, counted and dropped. */
  #withPort(program: string, port: string | undefined, use: (port: string) => void): void {
    if (port === undefined || !this.#ports.has(port)) return this.#unknown(program, `port ${port}`);
    use(port);
  }

  #unknown(program: string, what: string): void {
    this.#outputErrors.inc({ program });
    this.log.warn({ program, code: 'ERR_SIDECAR_OUTPUT' }, `unexpected ${what} in bpftrace output`);
  }

  /** The srtt histograms and retransmit counts, as the advisor reads them from /metrics. */
  adviceMetrics(): SidecarMetrics {
    const le = [...LOG2_BUCKETS_SECONDS, Infinity];
    const srtt = [...this.srtt.snapshots()].map((h) => ({
      direction: h.labels.direction as Direction,
      port: Number(h.labels.port),
      buckets: h.cumulative.map((count, i) => ({ le: le[i]!, count })),
      sum: h.sum,
      count: h.count,
    }));
    const retransmits = [...this.retransmits.values()].map((r) => ({ direction: r.labels.direction as Direction, port: Number(r.labels.port), total: r.value }));
    return { srtt, retransmits };
  }

  /** The latest srtt of each watched socket seen in the last minute (three intervals if longer), newest last. */
  sockets(now = Date.now()): SocketRtt[] {
    this.#expireSockets(now);
    return [...this.#sockets.values()].map((s) => ({ ...s, at: new Date(s.at).toISOString() }));
  }

  async metrics(): Promise<string> {
    return this.#families.map((f) => f.render()).join('') + (await this.registry.metrics());
  }

  status(): object {
    return {
      ports: this.config.ports,
      netns: this.config.netns,
      intervalSeconds: this.config.intervalS,
      capabilities: this.capabilities,
      programs: this.runners.map((r) => ({ ...r.status(), args: r.command.args })),
      skipped: this.selection.skipped,
      notes: this.selection.notes,
    };
  }

  async #handle(url: string, res: import('node:http').ServerResponse): Promise<void> {
    const path = url.split('?')[0];
    try {
      if (path === '/metrics') {
        const body = await this.metrics();
        res.writeHead(200, { 'Content-Type': this.registry.contentType }).end(body);
      } else if (path === '/healthz') {
        const up = this.runners.filter((r) => r.status().ready).length;
        res.writeHead(up > 0 ? 200 : 503, { 'Content-Type': 'application/json' }).end(JSON.stringify({ status: up > 0 ? 'ok' : 'no program running', running: up, programs: this.runners.length }));
      } else if (path === '/status') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(this.status(), null, 2));
      } else if (path === '/advice' && this.config.advice) {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(await this.advice(10_000), null, 2));
      } else if (path === '/sockets' && !this.config.socketRtt) {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 'ERR_HTTP_NOT_FOUND', message: '/sockets is off: start the sidecar with --socket-rtt to keep the latest srtt of every watched socket' } }));
      } else if (path === '/sockets') {
        res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify(this.sockets()));
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' }).end(JSON.stringify({ error: { code: 'ERR_HTTP_NOT_FOUND', message: `no route ${path}; try /metrics, /status, /sockets, /advice, /healthz` } }));
      }
    } catch (err) {
      this.log.error({ err }, 'sidecar request failed');
      res.writeHead(500).end();
    }
  }

  /** Stops every program (SIGINT, then SIGKILL after `graceMs`) and the server. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#adviceTimer) clearInterval(this.#adviceTimer);
    await Promise.all(this.runners.map((r) => r.stop(graceMs)));
    const server = this.#server;
    if (!server) return;
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}
