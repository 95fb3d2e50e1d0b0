// Child processes of the relay benchmarks (run.mjs, side-by-side.mjs): each
// server in its own process group with its log in one folder, all stopped on
// exit; the load client, whose JSON result is returned; and the command lines
// of npcd, the floor relay and one load, shared so both runners measure alike.
import { spawn } from 'node:child_process';
import { openSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runJsonChild } from '../lib/child.mjs';

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
export async function runClient(args, limitS) {
  const { code, json, stderr } = await runJsonChild(join(HERE, 'client.mjs'), ['--json', ...args], limitS);
  return json ?? { failed: `client exit ${code}: ${stderr.slice(-500)}` };
}

/** `node` arguments of npcd relaying the mock upstream at `upBase` (run from an npcd checkout). */
export function npcdServeArgs({ port, upBase, tokens, connections, extra = [] }) {
  return ['dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', String(port),
    '--model', `openai:bench-model?url=${upBase}`, '--no-watch', '--log-level', 'warn',
    '--max-reply-tokens', String(Math.max(256, tokens)), '--upstream-connections', String(connections), ...extra];
}

/** `node` arguments of the floor relay (floor-relay.mjs) in front of `upBase`; `read`: its --read mode. */
export function floorArgs({ port, upBase, connections, read = false }) {
  return [join(HERE, 'floor-relay.mjs'), '--port', String(port), '--upstream', upBase, '--connections', String(connections), ...(read ? ['--read'] : [])];
}

/**
 * client.mjs arguments of one measured load: C clients on `target` (url,
 * model, headers), a ramp over one reply, then warmup and window; every reply
 * is checked against the upstream's first `expectTokens` tokens.
 */
export function loadArgs({ target, concurrency, durationS, warmupS, rampMs, expectTokens, intervalMs, ttftMs, watch, label, maxTokens }) {
  return ['--url', target.url, '--model', target.model, ...(target.headers ?? []).flatMap((h) => ['--header', h]),
    '--concurrency', String(concurrency), '--duration', String(durationS), '--warmup', String(warmupS + rampMs / 1000),
    '--ramp', String(rampMs), '--timeout', '60', '--expect-tokens', String(expectTokens), '--interval', String(intervalMs),
    '--ttft', String(ttftMs), ...watch.flatMap((w) => ['--watch', w]), '--label', label,
    ...(maxTokens === undefined ? [] : ['--max-tokens', String(maxTokens)])];
}
