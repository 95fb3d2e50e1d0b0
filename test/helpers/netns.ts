/**
 * Network namespaces for the live eBPF tests (root): namespaces and veth
 * pairs with names unique to this test process, a free 10.x.y.0/24, an
 * optional tbf qdisc, commands run inside a namespace, `ss` and the TCP MIB
 * as the namespace sees them, and a small scripted TCP peer (server and
 * clients) that runs inside a namespace. Teardown removes everything, even
 * when an assertion failed; teardown functions never throw (tap stops
 * running the remaining ones when one does).
 *
 * Network used by the tests (after bpf/scripts/netns-up.sh):
 *
 *   namespace A (client)  vethA 10.x.y.1/24 ──── vethB 10.x.y.2/24  namespace B (server)
 *                                                  └ tbf on B's egress: queueing delay, drops
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { statSync } from 'node:fs';
import { createInterface } from 'node:readline';
import type { Test } from 'tap';
import { withPdeathsig } from './sidecar-process.js';

export interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command; resolves with its exit code and output (never rejects on a non-zero exit). */
export function run(file: string, args: readonly string[], timeoutMs = 30_000): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(file, [...args], { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : 127) : 0, stdout: stdout ?? '', stderr: stderr ?? e?.message ?? '' });
    });
  });
}

/** Runs a command and throws, with its stderr, when it fails. */
export async function runOk(file: string, args: readonly string[]): Promise<string> {
  const r = await run(file, args);
  if (r.code !== 0) throw new Error(`${file} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Runs a command inside namespace `ns` (`ip netns exec NS ...`); in this process's namespace when `ns` is undefined. */
export function nsExec(ns: string | undefined, file: string, args: readonly string[]): Promise<RunResult> {
  return ns === undefined ? run(file, args) : run('ip', ['netns', 'exec', ns, file, ...args]);
}

/** The inode of a named namespace, what `stat -L -c %i /run/netns/NAME` prints and what `npcd sidecar --netns` resolves. */
export function netnsInode(ns: string): number {
  return statSync(`/run/netns/${ns}`).ino;
}

// ---------------------------------------------------------------------------
// Names

const PREFIX = 'npcdt';
let counter = 0;
/** A short tag unique to this process and call: pid (base 36) and a counter. */
function uniqueTag(): string {
  return `${process.pid.toString(36)}${(counter++).toString(36)}`;
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

let staleChecked = false;
/** Removes namespaces of this naming scheme left by a test process that no longer exists (killed before its teardown). */
async function removeStale(): Promise<void> {
  if (staleChecked) return;
  staleChecked = true;
  const list = await run('ip', ['netns', 'list']);
  for (const line of list.stdout.split('\n')) {
    const name = line.split(' ')[0] ?? '';
    const m = new RegExp(`^${PREFIX}-(\\d+)-`).exec(name);
    if (m && Number(m[1]) !== process.pid && !pidAlive(Number(m[1]))) await deleteNetns(name);
  }
}

async function deleteNetns(name: string): Promise<void> {
  // Processes still inside (our peers, if a test failed early) go first, by pid: the namespace is ours alone.
  const pids = await run('ip', ['netns', 'pids', name]);
  for (const p of pids.stdout.split('\n').filter((l) => /^\d+$/.test(l.trim()))) {
    try {
      process.kill(Number(p), 'SIGKILL');
    } catch {
      // gone
    }
  }
  await run('ip', ['netns', 'del', name]);
}

/**
 * Creates a namespace named npcdt-<pid>-<tag>, with lo up; teardown kills
 * whatever still runs in it and deletes it.
 */
export async function createNetns(t: Test, role = 'n'): Promise<string> {
  await removeStale();
  const name = `${PREFIX}-${process.pid}-${uniqueTag()}${role}`;
  t.teardown(async () => {
    try {
      await deleteNetns(name);
    } catch {
      // never throw in teardown
    }
  });
  await runOk('ip', ['netns', 'add', name]);
  await runOk('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
  return name;
}

// ---------------------------------------------------------------------------
// Addresses

/** Second and third octets of every 10.x.y address or route this host (and its named namespaces) already uses. */
async function used10(): Promise<Set<string>> {
  const texts = await Promise.all([run('ip', ['-o', 'addr']), run('ip', ['-o', 'route']), run('ip', ['-all', 'netns', 'exec', 'ip', '-o', '-4', 'addr'])]);
  const used = new Set<string>();
  for (const r of texts) for (const m of r.stdout.matchAll(/\b10\.(\d+)\.(\d+)\.\d+/g)) used.add(`${m[1]}.${m[2]}`);
  return used;
}

/** A 10.x.y.0/24 nobody here uses; never 10.231.0.0/24 (bpf/scripts) or 10.232.x (fixtures). */
async function pickSubnet(): Promise<string> {
  const used = await used10();
  for (;;) {
    const x = 100 + Math.floor(Math.random() * 150);
    const y = Math.floor(Math.random() * 256);
    if (x === 231 || x === 232 || used.has(`${x}.${y}`)) continue;
    return `10.${x}.${y}`;
  }
}

export interface Tbf {
  /** e.g. "1mbit" */
  readonly rate: string;
  /** e.g. "4kb" */
  readonly burst: string;
  /** Queue as time ("50ms") ... */
  readonly latency?: string;
  /** ... or as bytes ("8kb"). */
  readonly limit?: string;
}

/** Puts (or replaces) a tbf qdisc on `dev`'s egress in namespace `ns`. */
export async function setTbf(ns: string, dev: string, tbf: Tbf): Promise<void> {
  const queue = tbf.limit ? ['limit', tbf.limit] : ['latency', tbf.latency ?? '50ms'];
  await runOk('tc', ['-n', ns, 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', tbf.rate, 'burst', tbf.burst, ...queue]);
}

export interface NetnsPair {
  /** Client namespace. */
  readonly a: string;
  /** Server namespace (the tbf is on its egress). */
  readonly b: string;
  readonly ifA: string;
  readonly ifB: string;
  readonly addrA: string;
  readonly addrB: string;
}

/**
 * Two namespaces joined by a veth pair on a fresh /24 (A = .1, B = .2),
 * with `tbf` on B's egress when given. Teardown deletes both namespaces
 * (the veth pair and the qdisc go with them).
 */
export async function createNetnsPair(t: Test, options: { tbf?: Tbf } = {}): Promise<NetnsPair> {
  const a = await createNetns(t, 'a');
  const b = await createNetns(t, 'b');
  const tag = uniqueTag();
  const ifA = `nt${tag}a`.slice(0, 15);
  const ifB = `nt${tag}b`.slice(0, 15);
  const net = await pickSubnet();
  const addrA = `${net}.1`;
  const addrB = `${net}.2`;
  // Created in A directly, so nothing is left in the host namespace if a step fails.
  await runOk('ip', ['-n', a, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', b]);
  await runOk('ip', ['-n', a, 'addr', 'add', `${addrA}/24`, 'dev', ifA]);
  await runOk('ip', ['-n', b, 'addr', 'add', `${addrB}/24`, 'dev', ifB]);
  await runOk('ip', ['-n', a, 'link', 'set', ifA, 'up']);
  await runOk('ip', ['-n', b, 'link', 'set', ifB, 'up']);
  if (options.tbf) await setTbf(b, ifB, options.tbf);
  return { a, b, ifA, ifB, addrA, addrB };
}

// ---------------------------------------------------------------------------
// What the namespace's kernel says

export interface SsSocket {
  readonly state: string;
  readonly recvQ: number;
  readonly sendQ: number;
  readonly local: string;
  readonly peer: string;
  readonly localPort: number;
  readonly peerPort: number;
  /** Socket cookie in hex, as ss prints it after "sk:" (the sidecar's /sockets `cookie`). */
  readonly cookie?: string;
  /** srtt in µs, from "rtt:<srtt ms>/<rttvar ms>". */
  readonly srttUs?: number;
  /** Segments sent and not yet acknowledged ("unacked:N"; absent when 0). */
  readonly unacked: number;
  readonly line: string;
}

function portOf(addr: string): number {
  return Number(addr.slice(addr.lastIndexOf(':') + 1));
}

/** Parses `ss -tieHnO` (one line per socket). */
export function parseSs(text: string): SsSocket[] {
  const out: SsSocket[] = [];
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 5 || !/^\d+$/.test(f[1] ?? '')) continue;
    const cookie = /\bsk:([0-9a-f]+)\b/.exec(line)?.[1];
    const rtt = /\brtt:([\d.]+)\/([\d.]+)/.exec(line);
    const unacked = /\bunacked:(\d+)/.exec(line);
    out.push({
      state: f[0]!,
      recvQ: Number(f[1]),
      sendQ: Number(f[2]),
      local: f[3]!,
      peer: f[4]!,
      localPort: portOf(f[3]!),
      peerPort: portOf(f[4]!),
      ...(cookie ? { cookie } : {}),
      ...(rtt ? { srttUs: Math.round(Number(rtt[1]) * 1000) } : {}),
      unacked: unacked ? Number(unacked[1]) : 0,
      line: line.trim(),
    });
  }
  return out;
}

/** TCP sockets of namespace `ns` (host namespace when undefined), with internals (`ss -tieHnO`; `-e` adds sk:<cookie>). */
export async function ssSockets(ns?: string): Promise<SsSocket[]> {
  const r = await nsExec(ns, 'ss', ['-tieHnO']);
  // ss -e prints "Failed to find cgroup2 mount" on stderr here; only the exit code matters.
  if (r.code !== 0) throw new Error(`ss failed in ${ns ?? 'host'}: ${r.stderr}`);
  return parseSs(r.stdout);
}

/** The namespace's TCP MIB (/proc/net/snmp "Tcp:" lines, read from inside it): RetransSegs, OutSegs, ... */
export async function tcpMib(ns?: string): Promise<Record<string, number>> {
  const r = await nsExec(ns, 'cat', ['/proc/net/snmp']);
  const lines = r.stdout.split('\n').filter((l) => l.startsWith('Tcp:'));
  const names = (lines[0] ?? '').split(/\s+/).slice(1);
  const values = (lines[1] ?? '').split(/\s+/).slice(1).map(Number);
  const out: Record<string, number> = {};
  names.forEach((n, i) => (out[n] = values[i]!));
  if (out.RetransSegs === undefined) throw new Error(`no Tcp RetransSegs in /proc/net/snmp of ${ns ?? 'host'}`);
  return out;
}

// ---------------------------------------------------------------------------
// A scripted TCP peer

/**
 * Runs inside the namespace (node -e). Reads one JSON command per line on
 * stdin and answers one JSON line per command ({seq, ok, ...}).
 *
 * Server side (op "listen"): line protocol on each accepted connection:
 * "PING\n" -> "PONG\n"; "GET <n>\n" -> n bytes of "x"; anything else
 * (e.g. "NOOP\n") -> nothing.
 * Client side: "connect" (answers id and localPort, or ok:false with the
 * errno code), "ping" (count round trips), "get" (asks for n bytes and
 * waits until all arrived), "send" (raw text, no answer expected), "close".
 */
const PEER_SCRIPT = String.raw`
const net = require('net');
const readline = require('readline');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const conns = new Map();
const servers = [];
let next = 0;
function serve(s) {
  s.setNoDelay(true);
  s.on('error', () => {});
  let buf = '';
  s.on('data', (d) => {
    buf += d.toString('latin1');
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const [cmd, arg] = buf.slice(0, i).split(' ');
      buf = buf.slice(i + 1);
      if (cmd === 'PING') s.write('PONG\n');
      else if (cmd === 'GET') s.write(Buffer.alloc(Number(arg), 120));
    }
  });
}
function track(s) {
  const c = { s, received: 0, waiters: [] };
  s.setNoDelay(true);
  s.on('data', (d) => {
    c.received += d.length;
    c.waiters = c.waiters.filter((w) => (c.received >= w.target ? (w.resolve(), false) : true));
  });
  s.on('error', () => {});
  s.on('close', () => {
    for (const w of c.waiters) w.reject(new Error('connection closed'));
    c.waiters = [];
  });
  return c;
}
function expectBytes(c, n) {
  const target = c.received + n;
  return new Promise((resolve, reject) => c.waiters.push({ target, resolve, reject }));
}
function conn(id) {
  const c = conns.get(id);
  if (!c) throw new Error('no connection ' + id);
  return c;
}
const ops = {
  async listen({ port, host }) {
    const srv = net.createServer(serve);
    await new Promise((resolve, reject) => { srv.once('error', reject); srv.listen(port, host, resolve); });
    servers.push(srv);
    return {};
  },
  async connect({ host, port }) {
    const s = net.connect({ host, port });
    await new Promise((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    const id = String(++next);
    conns.set(id, track(s));
    return { id, localPort: s.localPort };
  },
  async ping({ id, count }) {
    const c = conn(id);
    for (let i = 0; i < count; i++) {
      const p = expectBytes(c, 5);
      c.s.write('PING\n');
      await p;
    }
    return {};
  },
  async get({ id, bytes }) {
    const c = conn(id);
    const p = expectBytes(c, bytes);
    c.s.write('GET ' + bytes + '\n');
    await p;
    return {};
  },
  async send({ id, text }) {
    conn(id).s.write(text);
    return {};
  },
  async close({ id }) {
    const c = conn(id);
    conns.delete(id);
    await new Promise((resolve) => { c.s.once('close', resolve); c.s.end(); });
    return {};
  },
};
readline.createInterface({ input: process.stdin }).on('line', (line) => {
  const m = JSON.parse(line);
  Promise.resolve()
    .then(() => ops[m.op](m))
    .then((r) => out({ seq: m.seq, ok: true, ...r }), (e) => out({ seq: m.seq, ok: false, code: e.code, message: e.message }));
});
process.stdin.on('end', () => process.exit(0));
out({ ready: true });
`;

interface Reply {
  seq: number;
  ok: boolean;
  code?: string;
  message?: string;
  id?: string;
  localPort?: number;
}

/** A connection a Peer opened. */
export interface PeerConn {
  readonly id: string;
  readonly localPort: number;
}

/**
 * A TCP peer (server and/or clients) running in namespace `ns`, or in the
 * host namespace when `ns` is undefined: `ip netns exec NS node -e SCRIPT`
 * under `setpriv --pdeathsig KILL`. Teardown kills it.
 */
export class Peer {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, (r: Reply) => void>();
  #seq = 0;
  #stderr = '';
  readonly #ready: Promise<void>;

  private constructor(readonly ns: string | undefined) {
    const cmd = [...(ns === undefined ? [] : ['ip', 'netns', 'exec', ns]), process.execPath, '-e', PEER_SCRIPT];
    const [file, args] = withPdeathsig(cmd);
    this.#child = spawn(file, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stderr!.on('data', (d: Buffer) => (this.#stderr += d.toString()));
    this.#ready = new Promise((resolve, reject) => {
      createInterface({ input: this.#child.stdout! }).on('line', (line) => {
        let m: Reply & { ready?: boolean };
        try {
          m = JSON.parse(line) as Reply & { ready?: boolean };
        } catch {
          return;
        }
        if (m.ready) return resolve();
        const done = this.#pending.get(m.seq);
        this.#pending.delete(m.seq);
        done?.(m);
      });
      this.#child.on('exit', (code) => {
        const err = new Error(`peer in ${ns ?? 'host'} exited (${code}): ${this.#stderr}`);
        reject(err);
        for (const done of this.#pending.values()) done({ seq: -1, ok: false, code: 'EPEERGONE', message: err.message });
        this.#pending.clear();
      });
    });
    void this.#ready.catch(() => {});
  }

  static async start(t: Test, ns?: string): Promise<Peer> {
    const p = new Peer(ns);
    t.teardown(() => p.kill());
    await p.#ready;
    return p;
  }

  get pid(): number | undefined {
    return this.#child.pid;
  }

  async #call(op: string, args: Record<string, unknown>): Promise<Reply> {
    await this.#ready;
    const seq = ++this.#seq;
    const reply = new Promise<Reply>((resolve) => this.#pending.set(seq, resolve));
    this.#child.stdin!.write(`${JSON.stringify({ seq, op, ...args })}\n`);
    return reply;
  }

  async #ok(op: string, args: Record<string, unknown>): Promise<Reply> {
    const r = await this.#call(op, args);
    if (!r.ok) throw Object.assign(new Error(`peer ${op} ${JSON.stringify(args)} failed: ${r.code ?? ''} ${r.message ?? ''}`), { code: r.code });
    return r;
  }

  async listen(port: number, host = '0.0.0.0'): Promise<void> {
    await this.#ok('listen', { port, host });
  }

  async connect(host: string, port: number): Promise<PeerConn> {
    const r = await this.#ok('connect', { host, port });
    return { id: r.id!, localPort: r.localPort! };
  }

  /** A connect expected to fail: the errno code ("ECONNREFUSED"), or undefined if it connected. */
  async connectFails(host: string, port: number): Promise<string | undefined> {
    const r = await this.#call('connect', { host, port });
    if (r.ok) {
      await this.close({ id: r.id!, localPort: r.localPort! });
      return undefined;
    }
    return r.code;
  }

  async ping(c: PeerConn, count: number): Promise<void> {
    await this.#ok('ping', { id: c.id, count });
  }

  async get(c: PeerConn, bytes: number): Promise<void> {
    await this.#ok('get', { id: c.id, bytes });
  }

  async send(c: PeerConn, text: string): Promise<void> {
    await this.#ok('send', { id: c.id, text });
  }

  async close(c: PeerConn): Promise<void> {
    await this.#ok('close', { id: c.id });
  }

  kill(): void {
    if (this.#child.exitCode === null && this.#child.signalCode === null) this.#child.kill('SIGKILL');
  }
}
