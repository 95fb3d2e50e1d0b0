// Child processes of the relay benchmarks (run.mjs, side-by-side.mjs): each
// server in its own process group with its log in one folder, all stopped on
// exit; and the load client, whose JSON result is returned.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Children {
  /** @param {string} logs folder for the servers' logs */
  constructor(logs) {
    this.logs = logs;
    this.list = [];
    process.on('SIGINT', () => { this.stopAll().then(() => process.exit(130)); });
    process.on('SIGTERM', () => { this.stopAll().then(() => process.exit(143)); });
  }

  start(name, cmd, args, env = {}, cwd = ROOT) {
    const fd = openSync(join(this.logs, `${name}.log`), 'a');
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', fd, fd], detached: true });
    child.name = name;
    child.exited = false;
    child.on('exit', () => { child.exited = true; });
    this.list.push(child);
    return child;
  }

  async stop(child) {
    if (child.exited) return;
    try { process.kill(-child.pid, 'SIGTERM'); } catch { /* already gone */ }
    for (let i = 0; i < 50 && !child.exited; i++) await sleep(100);
    if (!child.exited) try { process.kill(-child.pid, 'SIGKILL'); } catch { /* already gone */ }
  }

  stopAll() {
    return Promise.all(this.list.map((c) => this.stop(c)));
  }
}

/** Runs client.mjs with `args` and returns its JSON result (or { failed } on error); killed after `limitS`. */
export function runClient(args, limitS) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(HERE, 'client.mjs'), '--json', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => { out += d; });
    child.stderr.on('data', (d) => { err += d; });
    const limit = setTimeout(() => child.kill('SIGKILL'), limitS * 1000);
    child.on('exit', (code) => {
      clearTimeout(limit);
      try { resolve(JSON.parse(out.trim().split('\n').pop())); } catch { resolve({ failed: `client exit ${code}: ${err.slice(-500)}` }); }
    });
  });
}
