/**
 * Runs one bpftrace program as a child process: reads its JSON records line
 * by line, restarts it with backoff when it dies, and stops it cleanly.
 *
 * bpftrace detaches its probes when it exits, however it exits: the kernel
 * releases a BPF program's links with the last file descriptor. What must
 * not happen is a bpftrace left running after the sidecar is gone, so each
 * child runs under `setpriv --pdeathsig KILL` (util-linux) when available:
 * if the sidecar dies without stopping it, the kernel kills it.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { type BpftraceRecord, parseBpftraceLine } from './bpftrace-json.js';

export interface ProgramCommand {
  /** Short name: "tcp-srtt". */
  readonly name: string;
  readonly bpftrace: string;
  readonly file: string;
  readonly args: readonly string[];
}

export interface RunnerHooks {
  record(program: string, record: BpftraceRecord): void;
  /** A line that is not a bpftrace record (ERR_SIDECAR_OUTPUT). */
  badLine(program: string, line: string, err: Error): void;
  /** bpftrace's own messages (stderr), one line at a time. */
  stderr(program: string, line: string): void;
  /** The program exited on its own; it restarts after `restartInMs`. */
  exited(program: string, code: number | null, signal: NodeJS.Signals | null, restartInMs: number): void;
  started(program: string, pid: number): void;
}

export interface RunnerOptions {
  readonly restartMinMs: number;
  readonly restartMaxMs: number;
  /** A run that lasted this long resets the backoff. */
  readonly stableAfterMs: number;
}

export const DEFAULT_RUNNER_OPTIONS: RunnerOptions = { restartMinMs: 500, restartMaxMs: 30_000, stableAfterMs: 60_000 };

/** Lines bpftrace prints on stderr that say nothing about the program (kernels with memcg accounting need no memlock limit). */
const NOISE = /couldn't set RLIMIT_MEMLOCK/;

const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

/** `argv` as [file, args] that run it under `setpriv --pdeathsig KILL` when setpriv is there. */
export function withPdeathsig(argv: readonly string[]): [string, string[]] {
  return SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', ...argv]] : [argv[0]!, argv.slice(1)];
}

export interface ProgramStatus {
  readonly name: string;
  readonly running: boolean;
  /** Its probes are attached (it printed its BEGIN line). */
  readonly ready: boolean;
  readonly pid?: number;
  readonly restarts: number;
  readonly attachedProbes?: number;
  readonly lastExit?: { readonly code: number | null; readonly signal: string | null; readonly at: string };
  readonly lastStderr: readonly string[];
}

export class ProgramRunner {
  #child: ChildProcess | undefined;
  #stopping = false;
  #restarts = 0;
  #backoff: number;
  #timer: NodeJS.Timeout | undefined;
  #startedAt = 0;
  #attached: number | undefined;
  #ready = false;
  #lastExit: ProgramStatus['lastExit'];
  readonly #stderr: string[] = [];
  #exitWaiters: (() => void)[] = [];

  constructor(
    readonly command: ProgramCommand,
    private readonly hooks: RunnerHooks,
    private readonly options: RunnerOptions = DEFAULT_RUNNER_OPTIONS,
  ) {
    this.#backoff = options.restartMinMs;
  }

  get name(): string {
    return this.command.name;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  start(): void {
    if (this.#stopping || this.#child) return;
    const { bpftrace, file, args } = this.command;
    // Not -q: it would also drop the attached_probes record that /status reports.
    const argv = ['-f', 'json', file, ...args];
    const child = spawn(...withPdeathsig([bpftrace, ...argv]), { stdio: ['ignore', 'pipe', 'pipe'] });
    this.#child = child;
    this.#startedAt = Date.now();
    this.#attached = undefined;
    this.#ready = false;
    const name = this.command.name;
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let records: BpftraceRecord[];
      try {
        records = parseBpftraceLine(line);
      } catch (err) {
        this.hooks.badLine(name, line, err as Error);
        return;
      }
      for (const r of records) {
        if (r.type === 'attached_probes') this.#attached = r.probes;
        // BEGIN prints "NAME: tracing ..." once every probe is attached.
        if (r.type === 'printf' && r.text.startsWith(`${name}: tracing`)) this.#ready = true;
        this.hooks.record(name, r);
      }
    });
    createInterface({ input: child.stderr! }).on('line', (line) => {
      if (line.trim() === '' || NOISE.test(line)) return;
      this.#stderr.push(line);
      if (this.#stderr.length > 20) this.#stderr.shift();
      this.hooks.stderr(name, line);
    });
    child.on('error', (err) => {
      // spawn failed (binary gone): reported like an exit.
      this.#stderr.push(err.message);
    });
    child.on('spawn', () => this.hooks.started(name, child.pid!));
    child.on('close', (code, signal) => this.#onExit(child, code, signal));
  }

  #onExit(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.#child !== child) return;
    this.#child = undefined;
    this.#ready = false;
    this.#lastExit = { code, signal, at: new Date().toISOString() };
    const waiters = this.#exitWaiters;
    this.#exitWaiters = [];
    for (const w of waiters) w();
    if (this.#stopping) return;
    if (Date.now() - this.#startedAt >= this.options.stableAfterMs) this.#backoff = this.options.restartMinMs;
    const delay = this.#backoff;
    this.#backoff = Math.min(this.options.restartMaxMs, this.#backoff * 2);
    this.hooks.exited(this.command.name, code, signal, delay);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#restarts++;
      this.start();
    }, delay);
  }

  /**
   * Stops the program: SIGINT first (bpftrace prints its maps, runs END and
   * detaches), SIGKILL after `graceMs`. Resolves once it exited.
   */
  async stop(graceMs: number): Promise<void> {
    this.#stopping = true;
    if (this.#timer) clearTimeout(this.#timer);
    const child = this.#child;
    if (!child) return;
    const exited = new Promise<void>((resolve) => this.#exitWaiters.push(resolve));
    child.kill('SIGINT');
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await exited;
    clearTimeout(kill);
  }

  status(): ProgramStatus {
    return {
      name: this.command.name,
      running: this.#child !== undefined,
      ready: this.#ready,
      ...(this.#child?.pid === undefined ? {} : { pid: this.#child.pid }),
      restarts: this.#restarts,
      ...(this.#attached === undefined ? {} : { attachedProbes: this.#attached }),
      ...(this.#lastExit ? { lastExit: this.#lastExit } : {}),
      lastStderr: [...this.#stderr],
    };
  }
}
