/** Runs the built CLI (dist/cli.js) as a child process, for tests that need real signals. */
import { type ChildProcess, spawn } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';

export const CLI = fileURLToPath(new URL('../../dist/cli.js', import.meta.url));

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** Log lines (parsed JSON) so far. */
  logs: Record<string, unknown>[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** Starts `npcd serve` on a free loopback port and waits until it listens. */
export function startCli(t: Test, args: string[], env: Record<string, string> = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, [CLI, 'serve', '--host', '127.0.0.1', '--port', '0', ...args], { env: { ...process.env, ...env } });
  const logs: Record<string, unknown>[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.on('exit', (code, signal) => r({ code, signal })));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return new Promise((resolve, reject) => {
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    onJsonLines(child.stdout!, (entry) => {
      logs.push(entry);
      if (typeof entry.port === 'number' && String(entry.msg).startsWith('npcd listening')) {
        resolve({ child, port: entry.port, logs, exited });
      }
    });
    void exited.then(({ code }) => reject(new Error(`npcd exited (${code}) before listening: ${stderr}`)));
  });
}

/** Calls `onEntry` with each JSON line (a pino log entry) of `stream`; other lines are skipped. */
export function onJsonLines(stream: Readable, onEntry: (entry: Record<string, unknown>) => void): void {
  let buf = '';
  stream.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        continue;
      }
      if (typeof entry === 'object' && entry !== null) onEntry(entry as Record<string, unknown>);
    }
  });
}
