/**
 * The Redis MemoryStore (ioredis): one server (`redis://`, `rediss://`) or a
 * Redis Cluster. Redis is then the source of truth that several npcd nodes
 * share, so a session can move between nodes.
 *
 * Key layout, per session `<sid>` (prefix `npcd:` by default; `%`, `{` and
 * `}` in the id percent-encoded, see sessionKeys):
 *
 *   npcd:{<sid>}:h       HASH    `data`: the header (SessionData without
 *                                turns), MessagePack; `mem`: the last memory
 *                                id assigned (HINCRBY)
 *   npcd:{<sid>}:turns   LIST    one MessagePack turn per element, oldest
 *                                first; RPUSH then LTRIM to the newest maxTurns
 *   npcd:{<sid>}:mem     HASH    memory id → MessagePack memory, its vector as
 *                                little-endian Float32 bytes; ids below
 *                                last - maxMemories + 1 are deleted
 *   npcd:{<sid>}:stream  STREAM  one entry per frame, entry id `0-<seq>`, field
 *                                `f` = the MessagePack frame; XTRIM MAXLEN =
 *                                maxFrames; read with XRANGE from `0-<after+1>`
 *   npcd:{<sid>}:gen     STRING  the generation lease as JSON, with PX = the
 *                                lease time; set, renewed and released in Lua,
 *                                compared on `node` and `id`
 *
 * The braces make `<sid>` the hash tag: every key of a session hashes to one
 * Cluster slot, so the Lua scripts below, which touch several of them, run on
 * Cluster as they do on one server. Every write is one script (atomic, one
 * round trip) that also brings the expiry of the session's four record keys
 * to max(ttl, the longest expiry any of them has left): a session expires as
 * a whole and expiry never shortens (ttl.ts). The lease key keeps its own
 * expiry, the lease time. Reads that span keys are scripts too, so they see
 * one consistent state.
 *
 * Failures: no offline queue and no retry of a command whose connection
 * dropped (its fate is unknown, and a write replayed after the caller was
 * told it failed would surprise more than the error). A call waits at most
 * `commandTimeoutMs` in all (for the connection, then for the answer) and
 * otherwise rejects with ERR_STORE_UNAVAILABLE; a call that timed out may
 * still have been applied. The client reconnects forever, backing off from
 * 100 ms to 2 s; `status` and `onStatus` report the connection, and the log
 * gets one warning per outage.
 */
import { endianness } from 'node:os';
import { Cluster, Redis, type ClusterOptions, type DNSLookupFunction, type RedisOptions } from 'ioredis';
import { pack, unpack } from 'msgpackr';
import { NpcdError } from '../errors.js';
import { silentLogger, type Logger } from '../log.js';
import type { StreamFrame } from '../protocol/types.js';
import type { SessionData, Turn } from '../session/types.js';
import type { GenerationLease, Memory, MemoryStore, NewMemory, StoredFrames, StoreStatus } from './store.js';
import { checkAfter, checkCount, checkDuration, checkLease, checkSeq, checkSession, checkVector } from './validate.js';

export interface RedisMemoryStoreOptions {
  /**
   * One server: `redis://[user:password@]host[:port][/db]`, `rediss://…`
   * (TLS) or `host:port`. A Cluster: several such addresses (an array, or
   * one string separated by commas); they are seed nodes, the client
   * discovers the rest.
   */
  readonly redis: string | readonly string[];
  /** Treat a single address as a Cluster seed node (default: a Cluster when several addresses are given). */
  readonly cluster?: boolean;
  /** Prefix of every key (default `npcd:`); must not contain `{` or `}`. */
  readonly keyPrefix?: string;
  /** Most time a call takes before it rejects, waiting for the connection included (default 2000). */
  readonly commandTimeoutMs?: number;
  /** Most time a connection attempt takes (default 2000). */
  readonly connectTimeoutMs?: number;
  readonly logger?: Logger;
}

/** Redis on one server, parsed from an address. */
interface Address {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username: string | undefined;
  readonly password: string | undefined;
  readonly tls: boolean;
}

type Client = Redis | Cluster;
type ScriptName = keyof typeof SCRIPTS;
/** A script as the client calls it (ioredis adds `<name>Buffer` for each: replies as Buffers): keys, then args. */
type ScriptCall = (...args: (string | Buffer)[]) => Promise<unknown>;

// Sets the expiry of the session's four record keys (KEYS[1..4]) to the
// larger of `ttl` ms and the longest expiry any of them has left. PTTL: -2
// no such key, -1 no expiry (just created).
const TOUCH = `
local function touch(ttl)
  local target = ttl
  local left = {}
  for i = 1, 4 do
    left[i] = redis.call('PTTL', KEYS[i])
    if left[i] > target then target = left[i] end
  end
  for i = 1, 4 do
    if left[i] == -1 or (left[i] >= 0 and left[i] < target) then redis.call('PEXPIRE', KEYS[i], target) end
  end
end
`;

// ARGV[1] node, ARGV[2] message id: does the lease JSON `held` name them?
const HOLDS = `
local function holds(held)
  if not held then return false end
  local ok, lease = pcall(cjson.decode, held)
  return ok and type(lease) == 'table' and lease.node == ARGV[1] and lease.id == ARGV[2]
end
`;

/**
 * Write scripts take KEYS h, turns, mem, stream and ARGV[1] = ttl in ms;
 * lease scripts take KEYS gen and ARGV node, id[, leaseMs, lease JSON].
 */
const SCRIPTS = {
  npcdSave: {
    numberOfKeys: 4,
    lua: `${TOUCH}
redis.call('HSET', KEYS[1], 'data', ARGV[2])
touch(tonumber(ARGV[1]))
return 1`,
  },
  // ARGV[2] maxTurns, ARGV[3..] turns
  npcdAppendTurns: {
    numberOfKeys: 4,
    lua: `${TOUCH}
for i = 3, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
redis.call('LTRIM', KEYS[2], -tonumber(ARGV[2]), -1)
touch(tonumber(ARGV[1]))
return 1`,
  },
  // ARGV[2] maxMemories, ARGV[3..] memories; returns the last id assigned.
  // Ids held are always one consecutive run ending at the last id, so the
  // ones to drop are found by walking down from below the lowest kept.
  npcdAddMemories: {
    numberOfKeys: 4,
    lua: `${TOUCH}
local n = #ARGV - 2
local last = redis.call('HINCRBY', KEYS[1], 'mem', n)
local first = last - n + 1
local keep = last - tonumber(ARGV[2]) + 1
for i = 3, #ARGV do
  local id = first + i - 3
  if id >= keep then redis.call('HSET', KEYS[3], id, ARGV[i]) end
end
local id = math.min(keep, first) - 1
while id >= 1 and redis.call('HDEL', KEYS[3], id) == 1 do id = id - 1 end
touch(tonumber(ARGV[1]))
return last`,
  },
  // ARGV[2] maxFrames, then seq, frame pairs; frames at or below the newest
  // seq held are skipped (XADD would refuse them: ids must increase).
  npcdAppendFrames: {
    numberOfKeys: 4,
    lua: `${TOUCH}
local newest = redis.call('XREVRANGE', KEYS[4], '+', '-', 'COUNT', 1)
local last = 0
if #newest > 0 then last = tonumber(string.match(newest[1][1], '%-(%d+)$')) end
local added = 0
for i = 3, #ARGV, 2 do
  local seq = tonumber(ARGV[i])
  if seq > last then
    redis.call('XADD', KEYS[4], '0-' .. ARGV[i], 'f', ARGV[i + 1])
    last = seq
    added = added + 1
  end
end
if added > 0 then redis.call('XTRIM', KEYS[4], 'MAXLEN', ARGV[2]) end
touch(tonumber(ARGV[1]))
return added`,
  },
  // KEYS h, turns; returns {} or {header, turn, turn, ...}.
  npcdLoad: {
    numberOfKeys: 2,
    readOnly: true,
    lua: `
local header = redis.call('HGET', KEYS[1], 'data')
if not header then return {} end
local out = redis.call('LRANGE', KEYS[2], 0, -1)
table.insert(out, 1, header)
return out`,
  },
  // KEYS h, mem; ARGV[1] afterId; returns {id, memory, id, memory, ...}.
  npcdMemories: {
    numberOfKeys: 2,
    readOnly: true,
    lua: `
local last = tonumber(redis.call('HGET', KEYS[1], 'mem') or '0')
local from = math.max(tonumber(ARGV[1]) + 1, last - redis.call('HLEN', KEYS[2]) + 1)
local to = last
if tonumber(ARGV[2]) > 0 then to = math.min(last, from + tonumber(ARGV[2]) - 1) end
local out = {}
for id = from, to do
  local memory = redis.call('HGET', KEYS[2], id)
  if memory then
    out[#out + 1] = id
    out[#out + 1] = memory
  end
end
return out`,
  },
  // KEYS stream; ARGV[1] first entry id wanted; returns {} or
  // {newest id, oldest id, id, frame, id, frame, ...}.
  npcdFrames: {
    numberOfKeys: 1,
    readOnly: true,
    lua: `
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
if #newest == 0 then return {} end
local oldest = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)
local out = {newest[1][1], oldest[1][1]}
for _, entry in ipairs(redis.call('XRANGE', KEYS[1], ARGV[1], '+')) do
  out[#out + 1] = entry[1]
  out[#out + 1] = entry[2][2]
end
return out`,
  },
  // ARGV[3] leaseMs, ARGV[4] lease JSON; 1 when taken.
  npcdClaim: {
    numberOfKeys: 1,
    lua: `local held = redis.call('GET', KEYS[1])
if held then
  local ok, lease = pcall(cjson.decode, held)
  if not (ok and type(lease) == 'table' and lease.node == ARGV[1]) then return 0 end
end
redis.call('SET', KEYS[1], ARGV[4], 'PX', ARGV[3])
return 1`,
  },
  // ARGV[3] leaseMs; 1 when still held and extended.
  npcdRenew: {
    numberOfKeys: 1,
    lua: `${HOLDS}
if not holds(redis.call('GET', KEYS[1])) then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1`,
  },
  npcdRelease: {
    numberOfKeys: 1,
    lua: `${HOLDS}
if holds(redis.call('GET', KEYS[1])) then redis.call('DEL', KEYS[1]) end
return 1`,
  },
} as const;

/** Reconnect delay: 100 ms doubling to 2 s, forever. */
export function reconnectDelayMs(attempt: number): number {
  return Math.min(100 * 2 ** Math.min(Math.max(attempt, 1) - 1, 5), 2_000);
}

export class RedisMemoryStore implements MemoryStore {
  readonly kind: 'redis' | 'redis-cluster';
  readonly shared = true;
  /** The client; tests and metrics may inspect it, the store owns it. */
  readonly client: Client;

  private readonly prefix: string;
  private readonly commandTimeoutMs: number;
  private readonly log: Logger;
  private readonly listeners = new Set<(status: StoreStatus) => void>();
  /** Calls waiting for the connection: start sends the command, fail rejects it. */
  private readonly waiting = new Set<{ start: () => void; fail: (err: unknown) => void }>();
  private current: StoreStatus = 'connecting';
  private lastError: Error | undefined;
  private downSince = 0;
  private closed = false;
  /** Probes a connected Redis that may not answer (hung, or a Cluster missing a master). */
  private readonly probeTimer: NodeJS.Timeout;
  private probing = false;
  /** Down because the probe failed while the connection stood. */
  private unanswered = false;

  constructor(options: RedisMemoryStoreOptions) {
    const addresses = (typeof options.redis === 'string' ? options.redis.split(',') : [...options.redis]).map((s) => s.trim()).filter((s) => s !== '');
    if (addresses.length === 0) throw configError('options.redis must name at least one Redis address');
    const prefix = options.keyPrefix ?? 'npcd:';
    if (typeof prefix !== 'string' || /[{}]/.test(prefix)) throw configError(`options.keyPrefix must be a string without { or } (got ${JSON.stringify(prefix)})`);
    this.prefix = prefix;
    this.commandTimeoutMs = checkOptionMs(options.commandTimeoutMs ?? 2_000, 'commandTimeoutMs');
    const connectTimeoutMs = checkOptionMs(options.connectTimeoutMs ?? 2_000, 'connectTimeoutMs');
    const cluster = options.cluster ?? addresses.length > 1;
    this.kind = cluster ? 'redis-cluster' : 'redis';
    this.log = (options.logger ?? silentLogger).child({ subsystem: 'memory', store: this.kind, redis: addresses.map(redact).join(',') });

    const parsed = addresses.map(parseAddress);
    const first = parsed[0]!;
    const connection: RedisOptions = {
      username: first.username,
      password: first.password,
      tls: first.tls ? {} : undefined,
      connectTimeout: connectTimeoutMs,
      commandTimeout: this.commandTimeoutMs,
      // A command whose connection drops is rejected at once and never resent.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    };
    if (cluster) {
      for (const a of parsed) {
        if (a.db !== 0) throw configError(`options.redis: Redis Cluster has only database 0 (got ${a.db} for ${a.host}:${a.port})`);
        if (a.tls !== first.tls) throw configError('options.redis: mixes redis:// and rediss:// addresses');
      }
      const clusterOptions: ClusterOptions = {
        enableOfflineQueue: false,
        clusterRetryStrategy: reconnectDelayMs,
        slotsRefreshTimeout: this.commandTimeoutMs,
        scripts: SCRIPTS,
        redisOptions: connection,
        // With TLS, keep host names (not resolved addresses) so certificates verify.
        ...(first.tls ? { dnsLookup: keepHostName } : {}),
      };
      this.client = new Cluster(
        parsed.map((a) => ({ host: a.host, port: a.port })),
        clusterOptions,
      );
      this.client.on('node error', (err: Error) => (this.lastError = err));
    } else {
      if (parsed.length > 1) throw configError('options.redis: several addresses name a Cluster; drop `cluster: false`');
      this.client = new Redis({ ...connection, host: first.host, port: first.port, db: first.db, enableOfflineQueue: false, retryStrategy: reconnectDelayMs, scripts: SCRIPTS });
    }
    // Without an 'error' listener ioredis prints every failed reconnect; the
    // outage is logged once, on the status change.
    this.client.on('error', (err: Error) => (this.lastError = err));
    this.client.on('ready', () => {
      this.unanswered = false;
      this.setStatus('ready');
    });
    this.client.on('close', () => this.setStatus('down'));
    this.probeTimer = setInterval(() => void this.probe(), Math.max(1_000, this.commandTimeoutMs));
    this.probeTimer.unref();
  }

  /**
   * A connection can stand while nothing answers on it (a hung server) or
   * while a Cluster cannot serve every slot (a master down without a
   * replica): neither closes it. The probe (PING, or CLUSTER INFO's
   * cluster_state on a Cluster) within commandTimeoutMs tells; a failed
   * probe marks the store down, as a lost connection does, and a passing
   * one brings it back.
   */
  private async probe(): Promise<void> {
    if (this.closed || this.probing || this.client.status !== 'ready') return;
    this.probing = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      const answer = this.kind === 'redis-cluster' ? this.client.cluster('INFO') : this.client.ping();
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer to ${this.kind === 'redis-cluster' ? 'CLUSTER INFO' : 'PING'} within ${this.commandTimeoutMs} ms`)), this.commandTimeoutMs);
      });
      const reply = String(await Promise.race([answer, timeout]));
      if (this.kind === 'redis-cluster' && !/cluster_state:ok/.test(reply)) throw new Error(`the cluster cannot serve every slot (${/cluster_state:\w+/.exec(reply)?.[0] ?? 'no cluster_state'})`);
      if (this.unanswered) {
        this.unanswered = false;
        this.setStatus('ready');
      }
    } catch (err) {
      if (this.closed || this.client.status !== 'ready') return;
      this.lastError = err as Error;
      this.unanswered = true;
      this.setStatus('down');
    } finally {
      clearTimeout(timer);
      this.probing = false;
    }
  }

  /** The connection now. */
  get status(): StoreStatus {
    return this.current;
  }

  /** Calls `listener` on every status change; returns a function that stops it. */
  onStatus(listener: (status: StoreStatus) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ---- sessions ----------------------------------------------------------

  async load(id: string): Promise<SessionData | undefined> {
    const k = this.keys(checkSession(id));
    const reply = await this.script('load', 'npcdLoad', [k.h, k.turns]);
    const [header, ...turns] = buffers(reply, 'load');
    if (!header) return undefined;
    return { ...(unpack(header) as Omit<SessionData, 'turns'>), turns: turns.map((t) => unpack(t) as Turn) };
  }

  async save(data: SessionData, ttlS: number): Promise<void> {
    checkSession(data?.id);
    const ttl = ttlMs(ttlS);
    const { turns: _turns, ...header } = data;
    await this.script('save', 'npcdSave', this.recordKeys(data.id), [ttl, pack(header)]);
  }

  async appendTurns(id: string, turns: readonly Turn[], maxTurns: number, ttlS: number): Promise<void> {
    checkSession(id);
    checkCount(maxTurns, 'maxTurns');
    const ttl = ttlMs(ttlS);
    if (turns.length === 0) return;
    await this.script('appendTurns', 'npcdAppendTurns', this.recordKeys(id), [ttl, String(maxTurns), ...turns.map((t) => pack(t))]);
  }

  async delete(id: string): Promise<void> {
    const k = this.keys(checkSession(id));
    await this.run('delete', () => this.client.del(k.h, k.turns, k.mem, k.stream, k.gen));
  }

  // ---- memories ----------------------------------------------------------

  async addMemories(session: string, items: readonly NewMemory[], maxMemories: number, ttlS: number): Promise<Memory[]> {
    checkSession(session);
    checkCount(maxMemories, 'maxMemories');
    const ttl = ttlMs(ttlS);
    const encoded = items.map((item) => pack({ ...item, vector: vectorBytes(checkVector(item.vector)) }));
    if (items.length === 0) return [];
    const last = await this.script('addMemories', 'npcdAddMemories', this.recordKeys(session), [ttl, String(maxMemories), ...encoded]);
    if (typeof last !== 'number') throw malformed('addMemories', last);
    const first = last - items.length + 1;
    return items.map((item, i) => ({ ...item, id: first + i, vector: item.vector.slice() }));
  }

  async memories(session: string, afterId: number, limit?: number): Promise<Memory[]> {
    const k = this.keys(checkSession(session));
    const after = checkAfter(afterId, 'afterId');
    const most = limit === undefined ? 0 : checkCount(limit, 'limit');
    const reply = await this.script('memories', 'npcdMemories', [k.h, k.mem], [String(after), String(most)]);
    if (!Array.isArray(reply)) throw malformed('memories', reply);
    const out: Memory[] = [];
    for (let i = 0; i + 1 < reply.length; i += 2) out.push(decodeMemory(reply[i], reply[i + 1]));
    return out;
  }

  // ---- stream ------------------------------------------------------------

  async appendFrames(session: string, frames: readonly StreamFrame[], maxFrames: number, ttlS: number): Promise<void> {
    checkSession(session);
    checkCount(maxFrames, 'maxFrames');
    const ttl = ttlMs(ttlS);
    const args: (string | Buffer)[] = [ttl, String(maxFrames)];
    for (const frame of frames) args.push(String(checkSeq(frame.seq)), pack(frame));
    if (frames.length === 0) return;
    await this.script('appendFrames', 'npcdAppendFrames', this.recordKeys(session), args);
  }

  async framesSince(session: string, after: number): Promise<StoredFrames> {
    const k = this.keys(checkSession(session));
    const from = checkAfter(after, 'after');
    const reply = buffers(await this.script('framesSince', 'npcdFrames', [k.stream], [`0-${from + 1}`]), 'framesSince');
    if (reply.length < 2) return { frames: [], oldestSeq: undefined, lastSeq: 0 };
    const frames: StreamFrame[] = [];
    for (let i = 2; i + 1 < reply.length; i += 2) frames.push(unpack(reply[i + 1]!) as StreamFrame);
    return { frames, oldestSeq: entrySeq(reply[1]!), lastSeq: entrySeq(reply[0]!) };
  }

  // ---- generation lease ----------------------------------------------------

  async claimGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean> {
    const gen = this.keys(checkSession(session)).gen;
    checkLease(lease);
    const ms = String(Math.ceil(checkDuration(leaseMs, 'leaseMs')));
    const value = JSON.stringify({ id: lease.id, character: lease.character, node: lease.node, startSeq: lease.startSeq });
    return (await this.script('claimGeneration', 'npcdClaim', [gen], [lease.node, lease.id, ms, value])) === 1;
  }

  async renewGeneration(session: string, lease: GenerationLease, leaseMs: number): Promise<boolean> {
    const gen = this.keys(checkSession(session)).gen;
    checkLease(lease);
    const ms = String(Math.ceil(checkDuration(leaseMs, 'leaseMs')));
    return (await this.script('renewGeneration', 'npcdRenew', [gen], [lease.node, lease.id, ms])) === 1;
  }

  async releaseGeneration(session: string, lease: GenerationLease): Promise<void> {
    const gen = this.keys(checkSession(session)).gen;
    checkLease(lease);
    await this.script('releaseGeneration', 'npcdRelease', [gen], [lease.node, lease.id]);
  }

  async generation(session: string): Promise<GenerationLease | undefined> {
    const gen = this.keys(checkSession(session)).gen;
    const value = await this.run('generation', () => this.client.get(gen));
    if (value === null) return undefined;
    const lease = parseLease(value);
    if (!lease) throw malformed('generation', value);
    return lease;
  }

  /**
   * Sends QUIT when connected (answered after the commands already sent) and
   * waits, at most commandTimeoutMs, for the connection to end; stops
   * reconnecting. Calls still waiting for a connection reject.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.probeTimer);
    this.current = 'down';
    for (const call of this.waiting) call.fail(new Error('store closed'));
    this.listeners.clear();
    if (this.client.status !== 'ready') {
      this.client.disconnect();
      return;
    }
    const ended = new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.commandTimeoutMs);
      this.client.once('end', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    // A failed QUIT means the connection is going away anyway.
    await this.client.quit().catch(() => {});
    this.client.disconnect();
    await ended;
  }

  // ---- internals -------------------------------------------------------------

  private keys(session: string): SessionKeys {
    return sessionKeys(session, this.prefix);
  }

  /** The four record keys, in the order the write scripts take them. */
  private recordKeys(session: string): string[] {
    const k = this.keys(session);
    return [k.h, k.turns, k.mem, k.stream];
  }

  private script(what: string, name: ScriptName, keys: string[], args: (string | Buffer)[] = []): Promise<unknown> {
    const call = (this.client as unknown as Record<string, ScriptCall>)[`${name}Buffer`]!;
    return this.run(what, () => call.call(this.client, ...keys, ...args));
  }

  /**
   * Sends one command once the client is connected, all within
   * commandTimeoutMs; every failure becomes ERR_STORE_UNAVAILABLE. A call
   * that times out while waiting for the connection is never sent. A call
   * made while Redis has been unreachable for a whole commandTimeoutMs
   * already fails at once: a reconnect that short was waited for by the
   * calls before it, and a turn of several commands must not wait out the
   * timeout once per command.
   */
  private run<T>(what: string, send: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const call = {
        // Sends synchronously, so that calls reach the connection in the
        // order they were made (and before a QUIT from close()).
        start: () => {
          this.waiting.delete(call);
          let sent: Promise<T>;
          try {
            sent = send();
          } catch (err) {
            call.fail(err);
            return;
          }
          sent.then((value) => {
            clearTimeout(timer);
            resolve(value);
          }, call.fail);
        },
        fail: (err: unknown) => {
          clearTimeout(timer);
          this.waiting.delete(call);
          reject(new NpcdError('ERR_STORE_UNAVAILABLE', `redis ${what}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
        },
      };
      const timer = setTimeout(() => {
        const why = this.client.status === 'ready' ? 'no answer' : `not connected${this.lastError ? ` (${this.lastError.message})` : ''}`;
        call.fail(new Error(`${why} within ${this.commandTimeoutMs} ms`));
      }, this.commandTimeoutMs);
      const downFor = this.current === 'down' ? Date.now() - this.downSince : 0;
      if (this.closed) call.fail(new Error('store closed'));
      else if (downFor >= this.commandTimeoutMs) {
        call.fail(new Error(`${this.unanswered ? 'not answering' : 'not connected'} for ${downFor} ms${this.lastError ? ` (${this.lastError.message})` : ''}`));
      } else if (this.client.status === 'ready') call.start();
      else this.waiting.add(call);
    });
  }

  private setStatus(next: StoreStatus): void {
    if (this.closed || next === this.current) return;
    const previous = this.current;
    this.current = next;
    if (next === 'down') {
      this.downSince = Date.now();
      this.log.warn({ err: this.lastError, previous }, 'redis unreachable; reconnecting');
    } else if (previous === 'down') {
      this.log.info({ downMs: Date.now() - this.downSince }, 'redis reachable again');
    } else {
      this.log.info('redis connected');
    }
    if (next === 'ready') {
      this.lastError = undefined;
      for (const call of [...this.waiting]) call.start();
    }
    for (const listener of this.listeners) listener(next);
  }
}

export interface SessionKeys {
  readonly h: string;
  readonly turns: string;
  readonly mem: string;
  readonly stream: string;
  readonly gen: string;
}

/**
 * The keys of a session. `%`, `{` and `}` in the id are percent-encoded, so
 * the hash tag is exactly the (non-empty) id: a `}` in it would otherwise
 * end the tag early, or leave it empty and scatter the keys over slots.
 */
export function sessionKeys(session: string, prefix = 'npcd:'): SessionKeys {
  const tag = session.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  const base = `${prefix}{${tag}}:`;
  return { h: `${base}h`, turns: `${base}turns`, mem: `${base}mem`, stream: `${base}stream`, gen: `${base}gen` };
}

const keepHostName: DNSLookupFunction = (address, callback) => callback(null, address);

function configError(message: string): NpcdError {
  return new NpcdError('ERR_CONFIG_INVALID', message);
}

function checkOptionMs(value: number, name: string): number {
  if (!Number.isSafeInteger(value) || value < 1) throw configError(`options.${name} must be an integer >= 1 (got ${value})`);
  return value;
}

/** An address without its password, for messages. */
function redact(spec: string): string {
  return spec.replace(/\/\/[^@/]*@/, '//***@');
}

/** Parses `redis://…`, `rediss://…` or `host:port`. */
export function parseAddress(spec: string): Address {
  const what = `options.redis: ${JSON.stringify(redact(spec))}`;
  let url: URL;
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(spec) ? spec : `redis://${spec}`);
  } catch {
    throw configError(`${what} is not a redis:// or rediss:// URL or host:port`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') throw configError(`${what} must use redis:// or rediss://`);
  if (url.hostname === '') throw configError(`${what} has no host`);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,5}$/.test(db)) throw configError(`${what}: the path must be a database number`);
  return {
    host: url.hostname.replace(/^\[|\]$/g, ''),
    port: url.port === '' ? 6379 : Number(url.port),
    db: db === '' ? 0 : Number(db),
    username: url.username === '' ? undefined : decodeURIComponent(url.username),
    password: url.password === '' ? undefined : decodeURIComponent(url.password),
    tls: url.protocol === 'rediss:',
  };
}

function ttlMs(ttlS: number): string {
  return String(Math.ceil(checkDuration(ttlS, 'ttlS') * 1000));
}

function malformed(what: string, reply: unknown): NpcdError {
  return new NpcdError('ERR_STORE_UNAVAILABLE', `redis ${what}: unexpected reply ${typeof reply === 'object' ? JSON.stringify(reply)?.slice(0, 80) : String(reply)}`);
}

/** A script reply that is an array of bulk strings. */
function buffers(reply: unknown, what: string): Buffer[] {
  if (!Array.isArray(reply) || !reply.every((r) => Buffer.isBuffer(r))) throw malformed(what, reply);
  return reply as Buffer[];
}

/** The seq of a stream entry id `0-<seq>`. */
function entrySeq(id: Buffer): number {
  const text = id.toString('latin1');
  return Number(text.slice(text.indexOf('-') + 1));
}

function decodeMemory(id: unknown, bytes: unknown): Memory {
  if (typeof id !== 'number' || !Buffer.isBuffer(bytes)) throw malformed('memories', [id, bytes]);
  const value = unpack(bytes) as Omit<Memory, 'vector'> & { vector: unknown };
  if (typeof value !== 'object' || value === null || !(value.vector instanceof Uint8Array)) throw malformed('memories', value);
  return { ...value, id, vector: bytesVector(value.vector) };
}

function parseLease(json: string): GenerationLease | undefined {
  try {
    const v = JSON.parse(json) as Partial<GenerationLease>;
    if (typeof v.id === 'string' && typeof v.node === 'string' && typeof v.character === 'string' && typeof v.startSeq === 'number') {
      return { id: v.id, character: v.character, node: v.node, startSeq: v.startSeq };
    }
  } catch {
    // Reported by the caller.
  }
  return undefined;
}

// Vectors travel as little-endian Float32 bytes whatever the host, copied
// byte for byte so that every value (NaN payloads included) comes back exact.
const LITTLE_ENDIAN = endianness() === 'LE';

function vectorBytes(v: Float32Array): Uint8Array {
  if (LITTLE_ENDIAN) return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  const view = new DataView(new ArrayBuffer(v.byteLength));
  for (let i = 0; i < v.length; i++) view.setFloat32(i * 4, v[i]!, true);
  return new Uint8Array(view.buffer);
}

function bytesVector(bytes: Uint8Array): Float32Array {
  if (bytes.byteLength % 4 !== 0) throw malformed('memories', `vector of ${bytes.byteLength} bytes`);
  const out = new Float32Array(bytes.byteLength / 4);
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(bytes);
  else {
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
  }
  return out;
}
