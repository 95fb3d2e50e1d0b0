/**
 * Real Redis servers for the memory store tests: one `redis-server` on a
 * free loopback port with its own temp dir (no persistence), which a test
 * can stop and start again on the same port; and a three-master Redis
 * Cluster on loopback, built with `redis-cli --cluster create`. Teardown
 * always kills them (and they die with the test process: pdeathsig) and
 * removes their dirs.
 *
 * Ports come from below the ephemeral range (freeServicePorts): a client
 * reconnecting to a stopped server's ephemeral port could otherwise get it
 * as its own source port and connect to itself, and the restart would find
 * the port taken.
 *
 * A missing redis-server is a failure, not a skip: CI installs it (.ci/run).
 *
 *   const server = await startRedis(t);          // server.url = redis://127.0.0.1:P
 *   await server.stop(); await server.start();   // same port
 *   const cluster = await startRedisCluster(t);  // cluster.seeds = ['127.0.0.1:P1', …]
 */
import { type ChildProcess, execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import type { Test } from 'tap';
import { RedisMemoryStore, sessionKeys, type RedisMemoryStoreOptions } from '../../src/memory/redis.js';
import type { StoreHarness } from '../memory/store-suite.js';
import { freeServicePorts, withPdeathsig } from './sidecar-process.js';

const START_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 5_000;

/** Throws a clear error when redis-server or redis-cli is missing. */
export function requireRedis(): void {
  for (const tool of ['redis-server', 'redis-cli']) {
    const r = spawnSync(tool, ['--version'], { encoding: 'utf8' });
    if (r.error || r.status !== 0) {
      throw new Error(`${tool} is not installed (apt-get install -y redis-server); the Redis memory store tests need it: ${r.error?.message ?? r.stderr}`);
    }
  }
}

/**
 * Sends one command over RESP and returns the reply as text (simple string,
 * bulk string or integer); rejects on an error reply or a failed connection.
 */
export function redisCommand(port: number, args: readonly string[], timeoutMs = 2_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let data = Buffer.alloc(0);
    const done = (err: Error | undefined, value?: string) => {
      socket.destroy();
      if (err) reject(err);
      else resolve(value!);
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`redis ${port}: no reply to ${args[0]} within ${timeoutMs} ms`)));
    socket.on('error', (err) => done(err));
    socket.on('connect', () => socket.write(`*${args.length}\r\n${args.map((a) => `$${Buffer.byteLength(a)}\r\n${a}\r\n`).join('')}`));
    socket.on('data', (chunk: Buffer) => {
      data = Buffer.concat([data, chunk]);
      const eol = data.indexOf('\r\n');
      if (eol < 0) return;
      const head = data.subarray(1, eol).toString();
      switch (String.fromCharCode(data[0]!)) {
        case '+':
        case ':':
          return done(undefined, head);
        case '-':
          return done(new Error(`redis ${port}: ${head}`));
        case '$': {
          const length = Number(head);
          if (length < 0) return done(undefined, '');
          if (data.length >= eol + 2 + length) done(undefined, data.subarray(eol + 2, eol + 2 + length).toString());
          return;
        }
        default:
          return done(new Error(`redis ${port}: unexpected reply ${JSON.stringify(data.toString().slice(0, 40))}`));
      }
    });
  });
}

/** Polls until `check` resolves true; rejects naming `what` (and the last error) after `ms`. */
async function until(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`${what} not met within ${ms} ms${last ? ` (last error: ${String(last)})` : ''}`);
    await sleep(25);
  }
}

export class RedisServer {
  readonly url: string;
  readonly address: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private output = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly extraArgs: readonly string[],
  ) {
    this.address = `127.0.0.1:${port}`;
    this.url = `redis://${this.address}`;
  }

  /** Starts a server on a free loopback port; teardown kills it and removes its dir. */
  static async start(t: Test, extraArgs: readonly string[] = []): Promise<RedisServer> {
    requireRedis();
    const [port] = await freeServicePorts(1);
    const dir = mkdtempSync(join(tmpdir(), 'npcd-redis-'));
    const server = new RedisServer(port!, dir, extraArgs);
    t.teardown(async () => {
      await server.stop().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    });
    await server.start();
    return server;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  /** (Re)starts the server on its port and waits until it answers PING. */
  async start(): Promise<void> {
    if (this.running) return;
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', this.dir, ...this.extraArgs];
    const [file, argv] = withPdeathsig(['redis-server', ...args]);
    const child = spawn(file, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    this.output = '';
    child.stdout!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    child.stderr!.on('data', (d: Buffer) => (this.output = (this.output + d.toString()).slice(-4000)));
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    try {
      await until(
        async () => {
          if (!this.running) throw new Error(`redis-server exited: ${this.output.trim()}`);
          return (await redisCommand(this.port, ['PING'], 500)) === 'PONG';
        },
        START_TIMEOUT_MS,
        `redis-server on port ${this.port} answering PING`,
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Sends a signal to the server process (SIGSTOP hangs it: connections stay open, nothing answers; SIGCONT resumes it). */
  signal(signal: NodeJS.Signals): void {
    this.child?.kill(signal);
  }

  /** SIGTERM (SIGKILL after 5 s); resolves once the process has exited. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), STOP_TIMEOUT_MS);
      await this.exited;
      clearTimeout(timer);
    }
  }

  /** Sends one command to this server (see redisCommand). */
  command(...args: string[]): Promise<string> {
    return redisCommand(this.port, args);
  }
}

export interface RedisClusterNodes {
  readonly nodes: readonly RedisServer[];
  /** `127.0.0.1:port` of every master. */
  readonly seeds: readonly string[];
}

/**
 * Starts three cluster-enabled servers (each with its own bus port) and joins
 * them as three masters with no replicas; resolves once every node reports
 * cluster_state:ok.
 */
export async function startRedisCluster(t: Test): Promise<RedisClusterNodes> {
  requireRedis();
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 3; i++) {
    const [busPort] = await freeServicePorts(1);
    // The config file name is relative to --dir, which is per server.
    nodes.push(await RedisServer.start(t, ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(busPort), '--cluster-node-timeout', '5000']));
  }
  const seeds = nodes.map((n) => n.address);
  await new Promise<void>((resolve, reject) => {
    execFile('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli --cluster create failed (${err.message}): ${stdout}${stderr}`));
      else resolve();
    });
  });
  for (const node of nodes) {
    await until(async () => (await node.command('CLUSTER', 'INFO')).includes('cluster_state:ok'), 20_000, `cluster_state:ok on ${node.address}`);
  }
  return { nodes, seeds };
}

/**
 * The store suite's harness on Redis: `store` and `peer` are two clients,
 * `expiries` reads the PTTL of the session's four record keys through
 * `inspect`, `advance` waits in real time. Teardown closes every store.
 */
export function redisHarness(t: Test, options: RedisMemoryStoreOptions, inspect: Redis | Cluster): StoreHarness & { store: RedisMemoryStore } {
  const make = () => {
    const store = new RedisMemoryStore(options);
    t.teardown(() => store.close());
    return store;
  };
  return {
    store: make(),
    peer: make(),
    make: async () => make(),
    expiries: async (session) => {
      const k = sessionKeys(session, options.keyPrefix);
      const left = await Promise.all([k.h, k.turns, k.mem, k.stream].map((key) => inspect.pttl(key)));
      return left.filter((ms) => ms !== -2);
    },
    advance: (ms) => sleep(ms),
  };
}
