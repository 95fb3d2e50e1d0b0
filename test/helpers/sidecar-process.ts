/**
 * Runs the real `npcd sidecar` (dist/cli.js) as a child process for the
 * live eBPF tests, as root: start it, wait until its bpftrace programs are
 * attached, scrape /metrics (with a small Prometheus text parser), read
 * /status and /sockets, stop it with SIGTERM. Teardown always ends it
 * (SIGTERM, then SIGKILL) and kills, by pid, any bpftrace it started that is
 * still there, so no probe outlives a test.
 *
 * Also: what this host has attached (bpftrace processes, BPF programs on
 * tracepoints and which process holds them), free service ports, and an
 * async `waitFor`.
 *
 *   const sc = await SidecarProcess.start(t, ['--ports', String(port)]);
 *   const samples = await sc.scrape();
 *   value(samples, 'npcd_tcp_connect_duration_seconds_count', { port: String(port) });
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { withPdeathsig } from '../../src/sidecar/runner.js';
import { CLI, onJsonLines } from './child.js';

export { withPdeathsig };

/** Interval the tests run the programs at (--interval). */
export const INTERVAL_MS = 1_000;


/**
 * Why the live sidecar tests cannot run here, or false when they can. Only
 * "not root" and "no bpftrace" are reasons: CI has both, so there the tests
 * run (and a missing ip/tc/ss/bpftool is a failure, not a skip).
 */
export function liveSkipReason(): string | false {
  if (process.getuid?.() !== 0) return 'the eBPF sidecar tests need root (bpftrace loads BPF programs; ip netns needs CAP_SYS_ADMIN)';
  const r = spawnSync('bpftrace', ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) return `bpftrace is not installed (apt install bpftrace): ${r.error?.message ?? r.stderr}`;
  return false;
}

// ---------------------------------------------------------------------------
// Polling

/** Async counterpart of waitFor (wait.ts): polls `get` until `ok(value)`; rejects naming `what` after `ms`. */
export async function waitForValue<T>(get: () => Promise<T>, ok: (v: T) => boolean, ms: number, what: string, everyMs = 200): Promise<T> {
  const until = Date.now() + ms;
  let last: T | undefined;
  let lastErr: unknown;
  for (;;) {
    try {
      last = await get();
      if (ok(last)) return last;
    } catch (err) {
      lastErr = err;
    }
    if (Date.now() > until) {
      const seen = last === undefined ? `last error: ${String(lastErr)}` : `last value: ${JSON.stringify(last)}`.slice(0, 2000);
      throw new Error(`${what} not met within ${ms} ms (${seen})`);
    }
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------
// Prometheus text format

export interface Sample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

/** Parses the Prometheus text exposition format (0.0.4): one sample per line, comments skipped. */
export function parsePrometheus(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    let i = 0;
    while (i < line.length && line[i] !== '{' && line[i] !== ' ' && line[i] !== '\t') i++;
    const name = line.slice(0, i);
    const labels: Record<string, string> = {};
    if (line[i] === '{') {
      i++;
      for (;;) {
        while (line[i] === ' ' || line[i] === ',') i++;
        if (line[i] === '}') {
          i++;
          break;
        }
        const eq = line.indexOf('=', i);
        if (eq < 0 || line[eq + 1] !== '"') throw new Error(`bad label in metrics line: ${line}`);
        const key = line.slice(i, eq).trim();
        let v = '';
        i = eq + 2;
        for (; i < line.length && line[i] !== '"'; i++) {
          if (line[i] === '\\') {
            i++;
            v += line[i] === 'n' ? '\n' : line[i];
          } else v += line[i];
        }
        if (line[i] !== '"') throw new Error(`unterminated label value in metrics line: ${line}`);
        i++;
        labels[key] = v;
      }
    }
    const [valueText] = line.slice(i).trim().split(/\s+/);
    // prom-client writes NaN as "Nan" (e.g. nodejs_eventloop_lag_mean_seconds before its first sample).
    const isNaNText = /^nan$/i.test(valueText ?? '');
    const value = valueText === '+Inf' ? Infinity : valueText === '-Inf' ? -Infinity : isNaNText ? NaN : Number(valueText);
    if (!name || valueText === undefined || (Number.isNaN(value) && !isNaNText)) throw new Error(`bad metrics line: ${line}`);
    out.push({ name, labels, value });
  }
  return out;
}

function matches(s: Sample, name: string, labels: Readonly<Record<string, string>>): boolean {
  return s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v);
}

/** Samples of `name` whose labels include `labels`. */
export function select(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): Sample[] {
  return samples.filter((s) => matches(s, name, labels));
}

/** Sum of the samples of `name` whose labels include `labels`; 0 when there is none (a series not yet created is zero). */
export function value(samples: readonly Sample[], name: string, labels: Readonly<Record<string, string>> = {}): number {
  return select(samples, name, labels).reduce((a, s) => a + s.value, 0);
}

export interface Histogram {
  readonly count: number;
  readonly sum: number;
  /** Cumulative bucket counts by upper bound in seconds (+Inf last). */
  readonly buckets: readonly { readonly le: number; readonly count: number }[];
}

/** One histogram series (`base`_bucket/_sum/_count with exactly these labels apart from le); undefined when absent. */
export function histogram(samples: readonly Sample[], base: string, labels: Readonly<Record<string, string>>): Histogram | undefined {
  const exact = (s: Sample, extra: number) => Object.keys(s.labels).length === Object.keys(labels).length + extra;
  const count = select(samples, `${base}_count`, labels).filter((s) => exact(s, 0));
  if (count.length === 0) return undefined;
  const sum = select(samples, `${base}_sum`, labels).filter((s) => exact(s, 0));
  const buckets = select(samples, `${base}_bucket`, labels)
    .filter((s) => exact(s, 1) && s.labels.le !== undefined)
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
  return { count: count[0]!.value, sum: sum[0]?.value ?? 0, buckets };
}

/** Samples of histogram `h` above `seconds` (needs a bucket edge at `seconds`). */
export function countAbove(h: Histogram, seconds: number): number {
  const edge = h.buckets.find((b) => Math.abs(b.le - seconds) < 1e-12);
  if (!edge) throw new Error(`no bucket edge at ${seconds} s`);
  return h.count - edge.count;
}

// ---------------------------------------------------------------------------
// The sidecar's JSON

export interface ProgramStatusJson {
  readonly name: string;
  readonly running: boolean;
  /** Its probes are attached (it printed its BEGIN line). */
  readonly ready: boolean;
  readonly pid?: number;
  readonly restarts: number;
  readonly lastExit?: { readonly code: number | null; readonly signal: string | null; readonly at: string };
  readonly lastStderr: readonly string[];
  readonly args: readonly string[];
}

export interface SidecarStatusJson {
  readonly ports: readonly number[];
  readonly netns: number;
  readonly intervalSeconds: number;
  readonly programs: readonly ProgramStatusJson[];
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
  readonly notes: readonly string[];
}

export interface SocketJson {
  readonly cookie: string;
  readonly port: number;
  readonly srttUs: number;
  readonly at: string;
}

export type LogLine = Record<string, unknown> & { msg?: string; program?: string; bpftracePid?: number };

// ---------------------------------------------------------------------------
// The sidecar process

export interface StartOptions {
  /** Wait until every program is attached (default true). */
  readonly ready?: boolean;
  readonly timeoutMs?: number;
}

export class SidecarProcess {
  readonly logs: LogLine[] = [];
  stderr = '';
  port = 0;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** Every bpftrace pid this sidecar reported starting. */
  readonly bpftracePids = new Set<number>();
  readonly #serving: Promise<number>;

  private constructor(
    readonly child: ChildProcess,
    readonly args: readonly string[],
  ) {
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
    this.#serving = new Promise((resolve, reject) => {
      onJsonLines(child.stdout!, (e) => {
        const entry = e as LogLine;
        this.logs.push(entry);
        if (entry.msg === 'bpftrace program started' && typeof entry.bpftracePid === 'number') this.bpftracePids.add(entry.bpftracePid);
        if (entry.msg === 'sidecar serving /metrics' && typeof entry.port === 'number') resolve(entry.port);
      });
      void this.exited.then(({ code, signal }) => reject(new Error(`npcd sidecar exited (code ${code}, signal ${signal}) before serving /metrics:\n${this.stderr}`)));
    });
    void this.#serving.catch(() => {});
  }

  /**
   * Starts `npcd sidecar --metrics-host 127.0.0.1 --metrics-port 0
   * --interval 1s ARGS` and, unless told not to, waits until it is ready
   * (see waitReady). Teardown stops it whatever happens to the test.
   */
  static async start(t: Test, args: readonly string[], options: StartOptions = {}): Promise<SidecarProcess> {
    const all = ['--metrics-host', '127.0.0.1', '--metrics-port', '0', '--interval', `${INTERVAL_MS / 1000}s`, ...args];
    const [file, argv] = withPdeathsig([process.execPath, CLI, 'sidecar', ...all]);
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NPCD_LOG_LEVEL: 'info' } });
    const sc = new SidecarProcess(child, all);
    t.teardown(() => sc.destroy());
    // --metrics-port 0: the kernel picks a free port; the CLI only logs it.
    sc.port = await sc.#serving;
    if (options.ready !== false) await sc.waitReady(options.timeoutMs);
    return sc;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  async get(path: string): Promise<{ status: number; text: string }> {
    const res = await fetch(this.url(path));
    return { status: res.status, text: await res.text() };
  }

  async scrape(): Promise<Sample[]> {
    const r = await this.get('/metrics');
    if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
    return parsePrometheus(r.text);
  }

  async status(): Promise<SidecarStatusJson> {
    return JSON.parse((await this.get('/status')).text) as SidecarStatusJson;
  }

  async sockets(): Promise<SocketJson[]> {
    return JSON.parse((await this.get('/sockets')).text) as SocketJson[];
  }

  /**
   * Ready = /healthz answers 200 and every program in /status is ready: its
   * BEGIN line came, which bpftrace prints once every probe is attached
   * (bpf/README.md, "Readiness"). `running` alone is true from the moment
   * bpftrace is spawned, 0.2–1.5 s before its probes see anything.
   */
  async waitReady(timeoutMs = 45_000): Promise<SidecarStatusJson> {
    return waitForValue(
      async () => {
        const health = await this.get('/healthz');
        const status = await this.status();
        return { health: health.status, status };
      },
      ({ health, status }) => health === 200 && status.programs.length > 0 && status.programs.every((p) => p.running && p.ready),
      timeoutMs,
      'sidecar ready (every bpftrace program running with its probes attached)',
    ).then((r) => r.status);
  }

  /** SIGTERM, then wait for the exit (SIGKILL after `timeoutMs`). */
  async stop(timeoutMs = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; killed: boolean }> {
    if (this.exit) return { ...this.exit, killed: false };
    this.child.kill('SIGTERM');
    const timer = sleep(timeoutMs).then(() => 'timeout' as const);
    const r = await Promise.race([this.exited, timer]);
    if (r !== 'timeout') return { ...r, killed: false };
    this.child.kill('SIGKILL');
    return { ...(await this.exited), killed: true };
  }

  /** Teardown: stop it (SIGKILL fallback) and kill any bpftrace it started that is still alive. Never throws. */
  async destroy(): Promise<void> {
    try {
      await this.stop(10_000);
    } catch {
      // already gone
    }
    for (const pid of this.bpftracePids) {
      if (processName(pid) === 'bpftrace') {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited meanwhile
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// What the host has attached

/** The command name of a process (/proc/PID/comm), undefined when it is gone. */
export function processName(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Pids of every bpftrace process on the host (`pgrep -x bpftrace`), whoever started it. */
export function bpftraceProcesses(): number[] {
  const r = spawnSync('pgrep', ['-x', 'bpftrace'], { encoding: 'utf8' });
  if (r.error) throw r.error;
  if (r.status !== 0 && r.status !== 1) throw new Error(`pgrep failed: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

export interface BpfProgram {
  readonly id: number;
  readonly type: string;
  readonly name?: string;
}

/** `bpftool -j prog show`: every BPF program loaded on the host. */
export function bpfPrograms(): Promise<BpfProgram[]> {
  return new Promise((resolve, reject) => {
    execFile('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`bpftool -j prog show failed: ${err.message} ${stderr}`));
      try {
        resolve((JSON.parse(stdout || '[]') as { id: number; type: string; name?: string }[]).map((p) => ({ id: p.id, type: p.type, ...(p.name ? { name: p.name } : {}) })));
      } catch (e) {
        reject(e as Error);
      }
    });
  });
}

/** Ids of the BPF programs on tracepoints (bpftrace's names: tcp_probe, inet_sock_set_s, tcp_retransmit_, truncated by the kernel). */
export async function tracepointProgramIds(): Promise<Set<number>> {
  return new Set((await bpfPrograms()).filter((p) => p.type === 'tracepoint').map((p) => p.id));
}

/** Ids of the BPF programs a process holds open (prog_id in /proc/PID/fdinfo). */
export function programIdsHeldBy(pid: number): number[] {
  const out: number[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^prog_id:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (m) out.push(Number(m[1]));
    } catch {
      // fd closed meanwhile
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Ports

function localPortRange(): [number, number] {
  try {
    const [lo, hi] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    if (lo && hi) return [lo, hi];
  } catch {
    // default below
  }
  return [32768, 60999];
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen({ port, host: '::', ipv6Only: false }, () => s.close(() => resolve(true)));
  });
}

const handedOut = new Set<number>();

/**
 * `n` distinct ports, free on this host, below the ephemeral range: the
 * sidecar traces every namespace, so a watched port must not be an
 * ephemeral port some other connection (another test file's) could get,
 * or that connection would count as "inbound" on it.
 */
export async function freeServicePorts(n: number): Promise<number[]> {
  const [lo] = localPortRange();
  const min = 20_000;
  const max = Math.min(lo, 32_768) - 1;
  const out: number[] = [];
  while (out.length < n) {
    const p = min + Math.floor(Math.random() * (max - min));
    if (handedOut.has(p) || out.includes(p)) continue;
    if (await canBind(p)) {
      handedOut.add(p);
      out.push(p);
    }
  }
  return out;
}
