/**
 * The memory store the server uses: in-process unless Redis addresses are
 * given (see store.ts for what it keeps, ttl.ts for how long).
 */
import { NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import { InProcessMemoryStore } from './in-process.js';
import { RedisMemoryStore } from './redis.js';

export type { GenerationLease, Memory, MemoryKind, MemoryStore, NewMemory, StoredFrames, StoreStatus } from './store.js';
export { InProcessMemoryStore, sizeOf, type InProcessMemoryStats, type InProcessMemoryStoreOptions } from './in-process.js';
export { RedisMemoryStore, parseAddress, reconnectDelayMs, sessionKeys, type RedisMemoryStoreOptions, type SessionKeys } from './redis.js';
export { INTENT_WEIGHT_S, MAX_TTL_S, MIN_TTL_S, laterExpiry, sessionTtlSeconds } from './ttl.js';

export interface MemoryStoreOptions {
  /**
   * Redis address(es): one `redis://` / `rediss://` URL for one server,
   * several (array or comma-separated) for a Cluster. Absent or empty: the
   * in-process store.
   */
  readonly redis?: string | readonly string[];
  /** Treat a single Redis address as a Cluster seed node. */
  readonly redisCluster?: boolean;
  /** Prefix of every Redis key (default `npcd:`). */
  readonly prefix?: string;
  /** Redis: most time a call takes, waiting for the connection included (default 2000). */
  readonly commandTimeoutMs?: number;
  /** Redis: most time a connection attempt takes (default 2000). */
  readonly connectTimeoutMs?: number;
  /** In-process: estimated bytes to hold before evicting least recently used sessions. */
  readonly budgetBytes: number;
  /** In-process: how often expired sessions are swept (default 60 000 ms). */
  readonly sweepIntervalMs?: number;
  /** In-process: called for each session evicted to stay within the budget. */
  readonly onEvict?: (session: string) => void;
  readonly logger?: Logger;
}

export function createMemoryStore(options: MemoryStoreOptions): InProcessMemoryStore | RedisMemoryStore {
  const { redis } = options;
  if (redis === undefined || (typeof redis === 'string' ? redis.trim() === '' : redis.length === 0)) {
    return new InProcessMemoryStore({ budgetBytes: options.budgetBytes, sweepIntervalMs: options.sweepIntervalMs, onEvict: options.onEvict });
  }
  try {
    return new RedisMemoryStore({
      redis,
      cluster: options.redisCluster,
      keyPrefix: options.prefix,
      commandTimeoutMs: options.commandTimeoutMs,
      connectTimeoutMs: options.connectTimeoutMs,
      logger: options.logger,
    });
  } catch (err) {
    // The store names its options; a user set them as flags.
    if (err instanceof NpcdError && err.code === 'ERR_CONFIG_INVALID') {
      throw new NpcdError('ERR_CONFIG_INVALID', err.message.replaceAll('options.redis', '--redis').replaceAll('options.keyPrefix', '--redis-prefix'));
    }
    throw err;
  }
}
