/**
 * Builds the npcd server from its parts and owns its lifecycle: listen, and a
 * graceful shutdown that stops accepting, lets in-flight replies finish within
 * the deadline, then closes every connection.
 */
import uWS, { type TemplatedApp, type us_listen_socket } from 'uWebSockets.js';
import { ParsePool } from '../characters/parse-pool.js';
import { CharacterRegistry } from '../characters/registry.js';
import { CharacterWatcher } from '../characters/watcher.js';
import { formatIssue } from '../characters/script.js';
import type { ServeConfig } from '../config/serve.js';
import { NpcdError } from '../errors.js';
import { type Logger, silentLogger } from '../log.js';
import { Metrics } from '../metrics/metrics.js';
import { nativeLoadError } from '../native/index.js';
import { createCodec, DEFAULT_DECODE_LIMITS, type FrameCodec } from '../protocol/codec.js';
import { isInRotation } from '../providers/chain.js';
import { createProvider, type ProviderHooks } from '../providers/index.js';
import type { ModelProvider } from '../providers/types.js';
import { createEmbedder } from '../memory/embed/index.js';
import type { Embedder } from '../memory/embed/types.js';
import { createMemoryStore } from '../memory/index.js';
import { DEFAULT_RECALL, MemoryRecall } from '../memory/recall.js';
import type { MemoryStore } from '../memory/store.js';
import { SessionEngine } from '../session/engine.js';
import { configureRegexGuard } from '../text/regex-guard.js';
import { createTracing } from '../tracing/tracing.js';
import { VERSION } from '../version.js';
import { HttpExchange } from './http.js';
import { registerRoutes } from './routes.js';
import { WsServer } from './ws.js';

export interface ServerParts {
  /** Defaults: a new registry loaded from config.characters, the --model provider, in-process store. */
  registry?: CharacterRegistry;
  provider?: ModelProvider;
  store?: MemoryStore;
  /** Default: the --embed embedder (not created when --recall is 0). */
  embedder?: Embedder;
  metrics?: Metrics;
  logger?: Logger;
  /** Default: native unless config.native is false or the module does not load. */
  codec?: FrameCodec;
}

export interface NpcdServer {
  readonly app: TemplatedApp;
  readonly engine: SessionEngine;
  readonly registry: CharacterRegistry;
  readonly metrics: Metrics;
  readonly ws: WsServer;
  readonly codec: FrameCodec;
  /** The bound port (useful with --port 0). */
  readonly port: number;
  /** Graceful shutdown; resolves when every connection is closed. Idempotent. */
  shutdown(timeoutMs?: number): Promise<void>;
}

async function loadCharacters(dir: string, pool: ParsePool, metrics: Metrics, log: Logger): Promise<CharacterRegistry> {
  const registry = new CharacterRegistry();
  const { loaded, failed, warnings } = await registry.loadDirectoryWith(dir, pool);
  for (const issue of failed) log.error({ file: issue.file, line: issue.line, column: issue.column }, `character not loaded: ${formatIssue(issue)}`);
  for (const w of warnings) log.warn({ file: w.file, line: w.line, column: w.column }, `character warning: ${formatIssue(w)}`);
  metrics.characterLoadErrors.inc(new Set(failed.map((f) => f.file)).size);
  log.info({ dir, characters: loaded.map((c) => c.id) }, `loaded ${loaded.length} characters`);
  return registry;
}

/** The store's reachability into npcd_store_up (the in-process store is always up). */
/** Counts each eviction; logs the first as a warning (the budget is reached) and the rest at debug level. */
function evictionReporter(metrics: Metrics, log: Logger, budgetBytes: number): (session: string) => void {
  let warned = false;
  return (session) => {
    metrics.storeEvictions.inc();
    if (warned) return log.debug({ session }, 'session evicted from the in-process store');
    warned = true;
    log.warn({ session, budgetBytes }, 'the in-process store reached --memory-budget: the least recently used sessions lose their stored history and memories (npcd_store_evictions_total counts them)');
  };
}

function watchStore(store: MemoryStore, metrics: Metrics): void {
  metrics.storeUp.set(store.status === 'down' ? 0 : 1);
  store.onStatus?.((status) => metrics.storeUp.set(status === 'down' ? 0 : 1));
}

/** Provider and upstream events into metrics and logs. */
function providerHooks(metrics: Metrics, logger: Logger): ProviderHooks {
  return {
    logger,
    upstream: (u) => metrics.watchUpstream(u),
    attempt: (provider, outcome, seconds) => {
      metrics.providerRequests.inc({ provider, outcome });
      if (outcome !== 'ok' && outcome !== 'cancelled') metrics.providerErrors.inc({ provider, reason: outcome });
      metrics.providerDuration.observe({ provider }, seconds);
    },
    retry: (provider, reason) => metrics.providerRetries.inc({ provider, reason }),
    fallback: (provider, reason) => metrics.providerFallbacks.inc({ provider, reason }),
  };
}

export async function startServer(config: ServeConfig, parts: ServerParts = {}): Promise<NpcdServer> {
  const logger = parts.logger ?? silentLogger;
  const log = logger.child({ subsystem: 'server' });
  const metrics = parts.metrics ?? new Metrics();
  const provider = parts.provider ?? (await createProvider(config, providerHooks(metrics, logger)));
  const store =
    parts.store ??
    createMemoryStore({
      redis: config.redis,
      prefix: config.redisPrefix,
      commandTimeoutMs: config.redisTimeoutMs,
      budgetBytes: config.memoryBudgetBytes,
      onEvict: evictionReporter(metrics, log, config.memoryBudgetBytes),
      logger,
    });
  watchStore(store, metrics);
  let embedder = parts.embedder;
  if (!embedder && config.recallK > 0) {
    embedder = createEmbedder(config.embed, { ...config, logger });
    await embedder.init();
  }
  // --recall 0 keeps no memories and recalls none, whatever embedder is at hand.
  const recall = embedder && config.recallK > 0
    ? new MemoryRecall(store, embedder, { native: config.native && !nativeLoadError() }, { k: config.recallK, minScore: config.recallMinScore, maxMemories: config.maxMemories, maxIndexes: DEFAULT_RECALL.maxIndexes }, log)
    : undefined;

  // Patterns from character files run against chat text under a deadline.
  configureRegexGuard({
    timeoutMs: config.regexTimeoutMs,
    onTimeout: (regex, ms) => {
      metrics.regexTimeouts.inc();
      log.warn({ subsystem: 'characters', pattern: regex.source.slice(0, 200), flags: regex.flags, timeoutMs: ms }, 'a regular expression ran past --regex-timeout against a text; it counts as not matching and is disabled until restart');
    },
  });

  // Character files are parsed in worker threads, at start and on reload.
  let pool: ParsePool | undefined;
  let watcher: CharacterWatcher | undefined;
  let registry = parts.registry;
  if (!registry) {
    pool = new ParsePool({
      threads: config.parseThreads || undefined,
      taskTimeoutMs: config.parseTimeoutMs,
      onTaskDone: (seconds) => metrics.workerTaskDuration.observe({ pool: 'parse' }, seconds),
    });
    metrics.watchWorkerPool('parse', pool);
    registry = await loadCharacters(config.characters, pool, metrics, log);
    if (config.watch) {
      const reg = registry;
      watcher = new CharacterWatcher({
        registry: reg,
        pool,
        logger,
        onReload: (_file, result) => {
          metrics.characterReloads.inc({ result });
          metrics.characters.set(reg.size);
        },
      });
      await watcher.start(config.characters);
    }
  }
  metrics.characters.set(registry.size);

  // Off (and nothing of the SDK loaded) without --otlp-endpoint.
  const tracing = await createTracing({ endpoint: config.otlpEndpoint, sampleRatio: config.traceSample, logger, serviceVersion: VERSION });
  const engine = new SessionEngine({
    tracing,
    store,
    recall,
    sharing: { leaseMs: config.leaseMs },
    registry,
    provider,
    metrics,
    logger,
    limits: {
      maxSessions: config.maxSessions,
      maxReplyTokens: config.maxReplyTokens,
      maxHistoryTurns: config.maxHistoryTurns,
      replayFrames: config.replayFrames,
      replayRetentionMs: config.replayRetentionMs,
      sessionTtlMs: config.sessionTtlMs,
      scriptTokenDelayMs: config.scriptTokenDelayMs,
      orphanGraceMs: config.orphanGraceMs,
    },
  });

  let codec = parts.codec;
  if (!codec) {
    const chosen = createCodec({
      native: config.native,
      limits: {
        ...DEFAULT_DECODE_LIMITS,
        maxInputBytes: config.maxFrameBytes,
        maxStrBytes: config.maxFrameBytes,
        maxDepth: config.maxFrameDepth,
      },
    });
    codec = chosen.codec;
    if (chosen.fallbackReason && config.native) log.warn({ reason: chosen.fallbackReason }, 'native module not loaded; using the JavaScript implementations');
  }
  const vectors = config.native && !nativeLoadError() ? 'native' : 'hnswlib-node (HNSW), js (exact)';
  log.info({ msgpack: codec.implementation, vectors }, `implementations: MessagePack ${codec.implementation}, vector search ${vectors}`);

  const app = uWS.App();
  const ws = new WsServer({
    engine,
    codec,
    metrics,
    logger,
    limits: {
      maxConnections: config.maxConnections,
      maxFrameBytes: config.maxFrameBytes,
      maxMessageChars: config.maxMessageChars,
      heartbeatIntervalMs: config.heartbeatIntervalMs,
      idleTimeoutMs: config.idleTimeoutMs,
      helloTimeoutMs: config.helloTimeoutMs,
      wsMaxBackpressureBytes: config.wsMaxBackpressureBytes,
      apiKeys: config.apiKeys,
    },
  });
  ws.register(app, '/v1/ws');
  let shuttingDown = false;
  registerRoutes(app, {
    engine,
    registry,
    metrics,
    logger,
    providerName: provider.name,
    providerHealth: () => provider.health?.() ?? [],
    maxBodyBytes: config.maxBodyBytes,
    maxCompletionBodyBytes: config.maxCompletionBodyBytes,
    maxMessageChars: config.maxMessageChars,
    apiKeys: config.apiKeys,
    sseMaxQueuedBytes: config.wsMaxBackpressureBytes,
    profileMaxSeconds: config.profileMaxSeconds,
    admin: {
      adminKeys: config.adminKeys,
      registry,
      pool,
      charactersDir: parts.registry ? undefined : config.characters,
      maxCardBytes: config.maxCardBytes,
    },
    isReady: () =>
      shuttingDown
        ? { ready: false, reason: 'shutting_down' }
        : registry.size === 0
          ? { ready: false, reason: 'no_characters' }
          : !isInRotation(provider)
            ? { ready: false, reason: 'upstreams_unhealthy' }
            : store.status === 'down'
              ? { ready: false, reason: 'store_unavailable' }
              : { ready: true, reason: 'ok' },
  });
  // A plain GET on the WebSocket path (uWS passes non-upgrade requests on).
  app.get('/v1/ws', (res, req) => {
    new HttpExchange(res, req, '/v1/ws', 'get', { metrics, logger }).error(
      new NpcdError('ERR_HTTP_UPGRADE_REQUIRED', 'connect with a WebSocket client (Upgrade: websocket)'),
      { Upgrade: 'websocket' },
    );
  });
  app.any('/v1/ws', (res, req) => {
    new HttpExchange(res, req, '/v1/ws', req.getMethod(), { metrics, logger }).error(
      new NpcdError('ERR_HTTP_METHOD_NOT_ALLOWED', `${req.getCaseSensitiveMethod().toUpperCase()} is not allowed on /v1/ws`),
      { Allow: 'GET' },
    );
  });
  app.any('/*', (res, req) => {
    new HttpExchange(res, req, 'unmatched', req.getMethod(), { metrics, logger }).error(
      new NpcdError('ERR_HTTP_NOT_FOUND', `no route for ${req.getCaseSensitiveMethod().toUpperCase()} ${req.getUrl().slice(0, 200)}`),
    );
  });

  const listenSocket = await new Promise<us_listen_socket>((resolve, reject) => {
    app.listen(config.host, config.port, (token) => {
      if (token) resolve(token);
      else reject(new NpcdError('ERR_CONFIG_INVALID', `cannot listen on ${config.host}:${config.port} (address in use or not available)`));
    });
  });
  const port = uWS.us_socket_local_port(listenSocket);
  log.info({ host: config.host, port, provider: provider.description, store: store.kind, embedder: embedder?.name, node: engine.nodeId }, `npcd listening on ${config.host}:${port}`);

  let shutdownPromise: Promise<void> | undefined;
  const shutdown = (timeoutMs = config.shutdownTimeoutMs): Promise<void> => {
    shutdownPromise ??= (async () => {
      shuttingDown = true;
      ws.stopAccepting();
      uWS.us_listen_socket_close(listenSocket);
      log.info({ generations: engine.activeGenerations, timeoutMs }, 'shutting down: waiting for replies in flight');
      const { finished, cancelled } = await engine.drain(timeoutMs);
      log.info({ finished, cancelled }, 'replies settled; closing connections');
      ws.closeAll();
      ws.close();
      engine.close();
      await tracing.shutdown();
      await watcher?.close();
      await pool?.close();
      if (!parts.store) await store.close();
      if (!parts.embedder) await embedder?.close();
      // Only a provider this server created is closed here; a caller's own one stays the caller's.
      if (!parts.provider) await provider.close?.();
    })();
    return shutdownPromise;
  };

  return { app, engine, registry, metrics, ws, codec, port, shutdown };
}
