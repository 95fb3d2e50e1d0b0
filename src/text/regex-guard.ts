/**
 * Regular expressions from character files (`on_regex`, lorebook regex keys)
 * are tested against chat text, which any user controls. JavaScript's engine
 * backtracks, and no check of a pattern's shape bounds the cost of every
 * pattern (`checkRegex` refuses the known bad shapes; a chain of bounded
 * ambiguous groups gets through it), so the patterns run in a helper thread
 * under a deadline. The caller waits for the answer (the turn needs it
 * before it can go on), at most `timeoutMs` from the moment the helper takes
 * the job up. A pattern still running at the deadline counts as not
 * matching and is disabled for the rest of the process's life (reported
 * through `onTimeout`); the helper thread is replaced, and the patterns
 * after it are tested in the new one.
 */
import { Worker } from 'node:worker_threads';

export interface GuardedRegex {
  readonly source: string;
  readonly flags: string;
}

export interface RegexGuardOptions {
  /** How long the patterns tested against one text may run together (default 100 ms). */
  readonly timeoutMs?: number;
  /** Called once for each pattern disabled because it ran past the deadline. */
  readonly onTimeout?: (regex: GuardedRegex, timeoutMs: number) => void;
}

export const DEFAULT_REGEX_TIMEOUT_MS = 100;
/** How long the first job may wait for a new helper thread to start. */
const START_TIMEOUT_MS = 10_000;

// Control words shared with the helper thread.
const STATE = 0;
const PROGRESS = 1;
const JOB = 2;
const POSTED = 1;
const RUNNING = 2;
const DONE = 3;

/**
 * The helper thread: compiles each pattern once, tests the patterns of a
 * job in order, recording which one it is on, and writes 1 (match) or 0 per
 * pattern into the job's results. Plain JavaScript, started without the
 * parent's loaders, so that it is up in milliseconds.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const ctrl = new Int32Array(workerData);
const compiled = new Map();
parentPort.on('message', (job) => {
  Atomics.store(ctrl, ${JOB}, job.id);
  Atomics.store(ctrl, ${PROGRESS}, 0);
  Atomics.store(ctrl, ${STATE}, ${RUNNING});
  Atomics.notify(ctrl, ${STATE});
  const results = new Int8Array(job.results);
  for (let i = 0; i < job.regexes.length; i++) {
    Atomics.store(ctrl, ${PROGRESS}, i);
    const [source, flags] = job.regexes[i];
    const key = flags + '/' + source;
    let re = compiled.get(key);
    try {
      if (re === undefined) {
        if (compiled.size >= 4096) compiled.clear();
        re = new RegExp(source, flags);
        compiled.set(key, re);
      }
      re.lastIndex = 0;
      results[i] = re.test(job.text) ? 1 : 0;
    } catch {
      results[i] = 0;
    }
  }
  Atomics.store(ctrl, ${STATE}, ${DONE});
  Atomics.notify(ctrl, ${STATE});
});
`;

export class RegexGuard {
  private worker: Worker | undefined;
  private ctrl = new Int32Array(new SharedArrayBuffer(0));
  private results = new Int8Array(new SharedArrayBuffer(0));
  private jobs = 0;
  private readonly disabled = new Set<string>();
  timeoutMs: number;
  onTimeout: ((regex: GuardedRegex, timeoutMs: number) => void) | undefined;

  constructor(options: RegexGuardOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_REGEX_TIMEOUT_MS;
    this.onTimeout = options.onTimeout;
  }

  /** Whether a pattern was disabled for running past the deadline. */
  isDisabled(regex: GuardedRegex): boolean {
    return this.disabled.has(keyOf(regex));
  }

  /** Tests every pattern against `text`: true where it matches (never for a disabled pattern). */
  test(regexes: readonly GuardedRegex[], text: string): boolean[] {
    const out = regexes.map(() => false);
    let pending = regexes.flatMap((r, i) => (this.disabled.has(keyOf(r)) ? [] : [i]));
    while (pending.length > 0) {
      const ran = this.run(pending.map((i) => regexes[i]!), text);
      ran.hits.forEach((hit, j) => (out[pending[j]!] = hit));
      if (ran.stuck === undefined) break;
      const culprit = regexes[pending[ran.stuck]!]!;
      this.disabled.add(keyOf(culprit));
      this.onTimeout?.(culprit, this.timeoutMs);
      pending = pending.slice(ran.stuck + 1);
    }
    return out;
  }

  /**
   * One job: the results of the patterns that finished, and the pattern
   * that ran past the deadline, if one did. A helper that never takes the
   * job up leaves every pattern without a match.
   */
  private run(regexes: readonly GuardedRegex[], text: string): { hits: boolean[]; stuck?: number } {
    const worker = this.ensureWorker();
    if (this.results.length < regexes.length) this.results = new Int8Array(new SharedArrayBuffer(Math.max(64, regexes.length * 2)));
    const results = this.results;
    const id = ++this.jobs;
    Atomics.store(this.ctrl, STATE, POSTED);
    worker.postMessage({ id, regexes: regexes.map((r) => [r.source, r.flags]), text, results: results.buffer });
    if (!this.waitWhile(POSTED, START_TIMEOUT_MS)) {
      this.replaceWorker();
      return { hits: [] };
    }
    const finished = this.waitWhile(RUNNING, this.timeoutMs);
    const done = finished ? regexes.length : Atomics.load(this.ctrl, PROGRESS);
    const hits = Array.from({ length: done }, (_, i) => results[i] === 1);
    if (finished) return { hits };
    this.replaceWorker();
    return { hits, stuck: done };
  }

  /** Waits while the state is `state`, at most `ms`; false when it still is. */
  private waitWhile(state: number, ms: number): boolean {
    const deadline = performance.now() + ms;
    for (;;) {
      if (Atomics.load(this.ctrl, STATE) !== state) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.ctrl, STATE, state, left);
    }
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    this.ctrl = new Int32Array(new SharedArrayBuffer(3 * Int32Array.BYTES_PER_ELEMENT));
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: this.ctrl.buffer, execArgv: [], name: 'npcd-regex' });
    // It must not keep the process up, nor end it on an error.
    worker.unref();
    worker.on('error', () => {
      if (this.worker === worker) this.worker = undefined;
    });
    this.worker = worker;
    return worker;
  }

  /** Stops the helper; the next job starts a new one, with new shared buffers (the old one may still write to its own until it stops). */
  private replaceWorker(): void {
    const worker = this.worker;
    this.worker = undefined;
    this.results = new Int8Array(new SharedArrayBuffer(0));
    void worker?.terminate();
  }

  close(): void {
    this.replaceWorker();
  }
}

function keyOf(r: GuardedRegex): string {
  return `${r.flags}/${r.source}`;
}

let shared: RegexGuard | undefined;

/** The process's guard, used by trigger and lorebook matching; `configureRegexGuard` sets its deadline and reporting. */
export function regexGuard(): RegexGuard {
  shared ??= new RegexGuard();
  return shared;
}

export function configureRegexGuard(options: RegexGuardOptions): void {
  const guard = regexGuard();
  if (options.timeoutMs !== undefined) guard.timeoutMs = options.timeoutMs;
  if (options.onTimeout !== undefined) guard.onTimeout = options.onTimeout;
}
