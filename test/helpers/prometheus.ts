/**
 * Runs promtool and a real Prometheus (Debian's `prometheus` package:
 * /usr/bin/promtool, /usr/bin/prometheus; .ci/run installs it) for the
 * tests of deploy/prometheus/: a temporary config and TSDB directory, a
 * loopback port, the HTTP API (/api/v1/query, /api/v1/rules). Teardown
 * stops Prometheus (SIGTERM, then SIGKILL) and removes the directory; it
 * also dies with the test process (setpriv --pdeathsig).
 *
 *   const prom = await PrometheusProcess.start(t, { port, config });
 *   const [v] = await prom.query('job:http_requests:rate1m');
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { waitForValue, withPdeathsig } from './sidecar-process.js';

export const DEPLOY = fileURLToPath(new URL('../../deploy/', import.meta.url));
export const RULES = join(DEPLOY, 'prometheus/npcd.rules.yml');
export const RULES_TEST = join(DEPLOY, 'prometheus/npcd.rules.test.yml');
export const PROMETHEUS_CONFIG = join(DEPLOY, 'prometheus/prometheus.yml');
export const DASHBOARD = join(DEPLOY, 'grafana/npcd.json');

/**
 * Why `bin` (promtool, prometheus) cannot run, or false when it can. The
 * tests fail with this message rather than skip: CI installs the package.
 */
export function toolMissing(bin: 'promtool' | 'prometheus'): string | false {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    return `${bin} is not installed or does not run (${r.error?.message ?? r.stderr.trim()}): apt-get install prometheus (Debian's package has /usr/bin/${bin}; .ci/run installs it)`;
  }
  return false;
}

/** Runs promtool with `args`; stdout and stderr together, as promtool splits its report between them. */
export function promtool(args: readonly string[], timeoutMs = 60_000): { status: number | null; output: string } {
  const r = spawnSync('promtool', args, { encoding: 'utf8', timeout: timeoutMs });
  if (r.error) throw r.error;
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

export interface InstantSample {
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

export interface RuleState {
  readonly name: string;
  readonly type: 'recording' | 'alerting';
  readonly health: string;
  readonly lastError?: string;
  readonly state?: string;
}

export class PrometheusProcess {
  stderr = '';
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  private constructor(
    readonly child: ChildProcess,
    readonly port: number,
    readonly dir: string,
  ) {
    this.exited = new Promise((resolve) =>
      child.on('exit', (code, signal) => {
        this.exit = { code, signal };
        resolve(this.exit);
      }),
    );
    child.stderr!.on('data', (d: Buffer) => (this.stderr = (this.stderr + d.toString()).slice(-20_000)));
    child.stdout!.resume();
  }

  /** Starts Prometheus on 127.0.0.1:`port` with `config` (YAML text) and waits until /-/ready answers 200. */
  static async start(t: Test, options: { port: number; config: string; timeoutMs?: number }): Promise<PrometheusProcess> {
    const dir = mkdtempSync(join(tmpdir(), 'npcd-prometheus-'));
    const configFile = join(dir, 'prometheus.yml');
    writeFileSync(configFile, options.config);
    const [file, argv] = withPdeathsig([
      'prometheus',
      `--config.file=${configFile}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${options.port}`,
      '--log.level=warn',
    ]);
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const p = new PrometheusProcess(child, options.port, dir);
    t.teardown(() => p.destroy());
    const failed = p.exited.then(({ code, signal }) => {
      throw new Error(`prometheus exited (code ${code}, signal ${signal}) before it was ready:\n${p.stderr}`);
    });
    const ready = waitForValue(
      () => fetch(p.url('/-/ready')).then((r) => r.status),
      (s) => s === 200,
      options.timeoutMs ?? 20_000,
      `prometheus ready on port ${options.port}`,
      100,
    );
    await Promise.race([ready, failed]);
    void failed.catch(() => {});
    return p;
  }

  url(path: string): string {
    return `http://127.0.0.1:${this.port}${path}`;
  }

  private async api<T>(path: string): Promise<T> {
    const res = await fetch(this.url(path));
    const body = (await res.json()) as { status: string; data: T; error?: string; errorType?: string };
    if (body.status !== 'success') throw new Error(`${path}: ${body.errorType}: ${body.error}`);
    return body.data;
  }

  /** An instant query; rejects when Prometheus answers with an error (a bad expression). */
  async query(expr: string): Promise<InstantSample[]> {
    const data = await this.api<{ resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }>(`/api/v1/query?query=${encodeURIComponent(expr)}`);
    if (data.resultType !== 'vector') throw new Error(`${expr}: result type ${data.resultType}, not vector`);
    return data.result.map((r) => ({ labels: r.metric, value: Number(r.value[1]) }));
  }

  /** Every rule of every loaded group, with its health and last evaluation error. */
  async rules(): Promise<RuleState[]> {
    const data = await this.api<{ groups: { rules: RuleState[] }[] }>('/api/v1/rules');
    return data.groups.flatMap((g) => g.rules);
  }

  /** The scrape targets: job, health ("up", "down", "unknown") and last error. */
  async targets(): Promise<{ job: string; health: string; lastError: string; scrapeUrl: string }[]> {
    const data = await this.api<{ activeTargets: { labels: Record<string, string>; health: string; lastError: string; scrapeUrl: string }[] }>('/api/v1/targets');
    return data.activeTargets.map((a) => ({ job: a.labels.job ?? '', health: a.health, lastError: a.lastError, scrapeUrl: a.scrapeUrl }));
  }

  /** SIGTERM, SIGKILL after 5 s; then the temporary directory goes. Never throws. */
  async destroy(): Promise<void> {
    if (!this.exit) {
      this.child.kill('SIGTERM');
      const r = await Promise.race([this.exited, sleep(5_000).then(() => 'timeout' as const)]);
      if (r === 'timeout') {
        this.child.kill('SIGKILL');
        await this.exited;
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
