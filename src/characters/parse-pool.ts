/**
 * The pool of worker threads that parse character files (piscina). Every
 * task has a deadline and every worker has V8 heap and stack limits: a file
 * that takes too long or too much memory fails with a file:1:1 issue, its
 * worker is replaced, and the server's event loop never waits on a parse.
 */
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import type { Card } from './cards/types.js';
import type { ParseTask, ParseTaskResult } from './parse-worker.js';
import type { CharacterFileRead } from './registry.js';
import { fromCharacterData } from './transfer.js';
import type { Character, CharacterIssue } from './types.js';

export interface ParsePoolOptions {
  /** Worker threads (default: half the cores, at least 1, at most 4). */
  readonly threads?: number;
  /** A parse that runs longer in its worker fails (default 2000 ms); time waiting for a worker does not count. */
  readonly taskTimeoutMs?: number;
  /** V8 old-generation heap per worker (default 64 MiB). */
  readonly maxHeapMb?: number;
  /** Tasks waiting beyond the running ones (default 1000). */
  readonly maxQueue?: number;
  /**
   * Called after each task with its run time in seconds: as the worker
   * measured it, or, for a task that failed there (timeout, out of memory),
   * from submission to failure.
   */
  readonly onTaskDone?: (seconds: number) => void;
}

export interface ParseOutcome {
  readonly character?: Character;
  readonly issues: readonly CharacterIssue[];
  /** Problems that do not stop the character loading (logged, shown by npcd check, returned by an import). */
  readonly warnings?: readonly CharacterIssue[];
  /** For a Character Card, the card as imported (export writes it back). */
  readonly card?: Card;
  /** For `importCard`, the file the card names in the folder. */
  readonly file?: string;
}

export class ParsePool {
  private readonly pool: Piscina;
  readonly taskTimeoutMs: number;
  private readonly onTaskDone: ((seconds: number) => void) | undefined;

  constructor(options: ParsePoolOptions = {}) {
    const threads = options.threads ?? Math.max(1, Math.min(4, Math.floor(availableParallelism() / 2)));
    this.taskTimeoutMs = options.taskTimeoutMs ?? 2000;
    this.onTaskDone = options.onTaskDone;
    const maxHeapMb = options.maxHeapMb ?? 64;
    this.pool = new Piscina({
      filename: new URL('./parse-worker.js', import.meta.url).href,
      minThreads: 1,
      maxThreads: threads,
      maxQueue: options.maxQueue ?? 1000,
      idleTimeout: 30_000,
      resourceLimits: { maxOldGenerationSizeMb: maxHeapMb, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 },
    });
    // A worker that dies (e.g. out of memory) fails its task, which
    // parseScript reports; piscina also emits the error here, and an
    // unhandled 'error' event would end the process.
    this.pool.on('error', () => {});
  }

  get queueSize(): number {
    return this.pool.queueSize;
  }

  /** Parses a character script (YAML); never rejects: failures are issues. */
  parseScript(file: string, text: string): Promise<ParseOutcome> {
    return this.run({ kind: 'script', file, text });
  }

  /** Parses a Character Card (JSON or PNG bytes); never rejects. */
  parseCard(file: string, bytes: Uint8Array): Promise<ParseOutcome> {
    return this.run({ kind: 'card', file, bytes });
  }

  /** Parses a card being imported into `dir`; the outcome names the file it gets there. */
  importCard(dir: string, bytes: Uint8Array): Promise<ParseOutcome> {
    return this.run({ kind: 'card', file: join(dir, 'upload'), bytes, importInto: dir });
  }

  /** Parses whatever `file` is, read by `readCharacterFile`. */
  parseRead(file: string, read: CharacterFileRead): Promise<ParseOutcome> {
    if ('issues' in read) return Promise.resolve({ issues: read.issues });
    return 'text' in read ? this.parseScript(file, read.text) : this.parseCard(file, read.bytes);
  }

  private async run(task: ParseTask): Promise<ParseOutcome> {
    const file = task.file;
    let result: ParseTaskResult;
    const abort = new AbortController();
    const deadline = new TaskDeadline(this.taskTimeoutMs, () => abort.abort());
    const submitted = performance.now();
    try {
      result = (await this.pool.run({ ...task, startedAt: deadline.startedAt }, { signal: abort.signal })) as ParseTaskResult;
      this.onTaskDone?.((result.runMs ?? performance.now() - submitted) / 1000);
    } catch (err) {
      this.onTaskDone?.((performance.now() - submitted) / 1000);
      return { issues: [{ file, line: 1, column: 1, message: describeFailure(err, this.taskTimeoutMs) }] };
    } finally {
      deadline.clear();
    }
    const warnings = result.warnings ?? [];
    return result.character ? { character: fromCharacterData(result.character), issues: result.issues, warnings, card: result.card, file: result.file } : { issues: result.issues, warnings };
  }

  close(): Promise<void> {
    return this.pool.destroy();
  }
}

/** How often a deadline looks again at a task still waiting for a worker (at least). */
const QUEUED_RECHECK_MS = 20;

/**
 * A parse's deadline, counted from the moment a worker takes the task up
 * (it stores that time in `startedAt`): a task waiting in the queue, or for a
 * new worker to start, is not timed out for it. The timer is referenced, so
 * a caller awaiting a parse gets its answer even when nothing else keeps the
 * process up.
 */
class TaskDeadline {
  readonly startedAt = new BigInt64Array(new SharedArrayBuffer(8));
  private timer: NodeJS.Timeout;

  constructor(
    private readonly timeoutMs: number,
    private readonly onExpired: () => void,
  ) {
    this.timer = setTimeout(() => this.check(), timeoutMs);
  }

  private check(): void {
    const started = Number(Atomics.load(this.startedAt, 0));
    if (started === 0) {
      this.timer = setTimeout(() => this.check(), Math.max(this.timeoutMs, QUEUED_RECHECK_MS));
      return;
    }
    const left = started + this.timeoutMs - Date.now();
    if (left <= 0) this.onExpired();
    else this.timer = setTimeout(() => this.check(), left);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}

function describeFailure(err: unknown, timeoutMs: number): string {
  const e = err as Error & { code?: string };
  if (e.name === 'AbortError') return `parsing took longer than ${timeoutMs} ms and was stopped`;
  if (e.code === 'ERR_WORKER_OUT_OF_MEMORY') return 'parsing needed more memory than a parse worker may use and was stopped';
  return `parse worker failed: ${e.message}`;
}
