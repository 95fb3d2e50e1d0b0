/**
 * Configuration of `npcd serve`: one typed, frozen object built from flags,
 * environment variables and an optional config file (JSON or YAML whose keys
 * are the flag names), validated once at start.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';
import { NpcdError } from '../errors.js';
import { type FlagTable, formatHelp, parseFlags } from './flags.js';
import { normalizeBaseUrl, normalizeOllamaUrl, parseModelSpec } from '../providers/spec.js';

export interface ServeConfig {
  readonly host: string;
  readonly port: number;
  readonly model: string;
  readonly characters: string;
  readonly config: string | undefined;
  readonly logLevel: string;
  readonly apiKeys: readonly string[];
  readonly maxConnections: number;
  readonly maxSessions: number;
  readonly maxFrameBytes: number;
  readonly maxBodyBytes: number;
  readonly maxCompletionBodyBytes: number;
  readonly maxMessageChars: number;
  readonly maxReplyTokens: number;
  readonly maxHistoryTurns: number;
  readonly replayFrames: number;
  readonly replayRetentionMs: number;
  readonly sessionTtlMs: number;
  readonly orphanGraceMs: number;
  readonly heartbeatIntervalMs: number;
  readonly idleTimeoutMs: number;
  readonly helloTimeoutMs: number;
  readonly shutdownTimeoutMs: number;
  readonly wsMaxBackpressureBytes: number;
  readonly scriptTokenDelayMs: number;
  readonly mockTokens: number;
  readonly mockTtftMs: number;
  readonly mockTokenDelayMs: number;
  readonly native: boolean;
  readonly maxFrameDepth: number;
  readonly watch: boolean;
  readonly adminKeys: readonly string[];
  readonly maxCardBytes: number;
  readonly profileMaxSeconds: number;
  readonly parseThreads: number;
  readonly parseTimeoutMs: number;
  readonly regexTimeoutMs: number;
  readonly openaiBaseUrl: string;
  readonly ollamaUrl: string;
  readonly dashscopeBaseUrl: string;
  readonly upstreamConnections: number;
  readonly upstreamIdleTimeoutMs: number;
  readonly upstreamConnectTimeoutMs: number;
  readonly upstreamAcquireTimeoutMs: number;
  readonly upstreamTcpKeepaliveMs: number;
  readonly upstreamHealthIntervalMs: number;
  readonly upstreamTtftTimeoutMs: number;
  readonly upstreamTotalTimeoutMs: number;
  readonly upstreamRetries: number;
  readonly llamaThreads: number;
  readonly llamaContext: number;
  readonly llamaSequences: number;
  readonly redis: readonly string[];
  readonly redisPrefix: string;
  readonly redisTimeoutMs: number;
  readonly memoryBudgetBytes: number;
  readonly embed: string;
  readonly recallK: number;
  readonly recallMinScore: number;
  readonly maxMemories: number;
  readonly leaseMs: number;
  readonly otlpEndpoint: string | undefined;
  readonly traceSample: number;
}

/** The bundled characters folder, next to package.json. */
export const BUNDLED_CHARACTERS = fileURLToPath(new URL('../../characters', import.meta.url));

const HOUR = 3_600_000;

export const SERVE_FLAGS: FlagTable<keyof ServeConfig> = {
  host: { flag: 'host', env: 'NPCD_HOST', type: 'string', default: '0.0.0.0', help: 'Address to listen on.', metavar: 'ADDR' },
  port: { flag: 'port', env: 'NPCD_PORT', type: 'int', default: 8080, min: 0, max: 65535, help: 'TCP port to listen on (0 picks a free port).', metavar: 'PORT' },
  model: {
    flag: 'model', env: 'NPCD_MODEL', type: 'string', default: 'script', metavar: 'SPEC',
    help: 'Model provider, or a comma list tried in order (fallback chain): "script" (embedded default: the character\'s script and a Markov chain over its lines; no LLM), "mock" (deterministic tokens for benchmarks), "ollama:MODEL", "openai:MODEL" (any OpenAI-compatible API), "dashscope:MODEL", "llama:PATH.gguf" (local model, needs the optional node-llama-cpp). Per-provider options after "?", e.g. openai:gpt-4o-mini?url=http://127.0.0.1:8000/v1&ttft=5s (see docs/providers.md). API keys come from OPENAI_API_KEY / DASHSCOPE_API_KEY.',
  },
  openaiBaseUrl: { flag: 'openai-base-url', env: 'OPENAI_BASE_URL', type: 'string', default: 'https://api.openai.com/v1', help: 'Base URL of the OpenAI-compatible API for openai:MODEL (vLLM, llama.cpp server, LiteLLM, ...).', metavar: 'URL' },
  ollamaUrl: { flag: 'ollama-url', env: 'OLLAMA_HOST', type: 'string', default: 'http://127.0.0.1:11434', help: 'Ollama server for ollama:MODEL.', metavar: 'URL' },
  dashscopeBaseUrl: { flag: 'dashscope-base-url', env: 'DASHSCOPE_BASE_URL', type: 'string', default: 'https://dashscope.aliyuncs.com', help: 'DashScope endpoint for dashscope:MODEL (https://dashscope-intl.aliyuncs.com outside mainland China).', metavar: 'URL' },
  upstreamConnections: { flag: 'upstream-connections', env: 'NPCD_UPSTREAM_CONNECTIONS', type: 'int', default: 200, min: 1, max: 100_000, help: 'Most connections (and requests in flight) per model upstream.', metavar: 'N' },
  upstreamIdleTimeoutMs: { flag: 'upstream-idle-timeout', env: 'NPCD_UPSTREAM_IDLE_TIMEOUT', type: 'duration', default: '300s', min: 1000, help: 'An idle pooled upstream connection is closed after this long (or sooner, if the upstream\'s Keep-Alive header says so).', metavar: 'DURATION' },
  upstreamConnectTimeoutMs: { flag: 'upstream-connect-timeout', env: 'NPCD_UPSTREAM_CONNECT_TIMEOUT', type: 'duration', default: '5s', min: 1, help: 'Time limit for opening a connection to a model upstream.', metavar: 'DURATION' },
  upstreamAcquireTimeoutMs: { flag: 'upstream-acquire-timeout', env: 'NPCD_UPSTREAM_ACQUIRE_TIMEOUT', type: 'duration', default: '3s', min: 1, help: 'Longest wait for a free upstream connection when all are busy; then the turn fails with ERR_UPSTREAM_UNAVAILABLE (or falls back).', metavar: 'DURATION' },
  upstreamTcpKeepaliveMs: { flag: 'upstream-tcp-keepalive', env: 'NPCD_UPSTREAM_TCP_KEEPALIVE', type: 'duration', default: '60s', min: 1000, help: 'TCP keep-alive probes start after a pooled upstream connection has been idle this long.', metavar: 'DURATION' },
  upstreamHealthIntervalMs: { flag: 'upstream-health-interval', env: 'NPCD_UPSTREAM_HEALTH_INTERVAL', type: 'duration', default: '10s', min: 0, help: 'How often each upstream is health-checked (twice as often while it is out of rotation); 0 turns checks off, and with them taking upstreams out of rotation (every turn tries them).', metavar: 'DURATION' },
  upstreamTtftTimeoutMs: { flag: 'upstream-ttft-timeout', env: 'NPCD_UPSTREAM_TTFT_TIMEOUT', type: 'duration', default: '30s', min: 1, help: 'A reply whose first token has not arrived this long after the turn started fails with ERR_UPSTREAM_TIMEOUT (retries included).', metavar: 'DURATION' },
  upstreamTotalTimeoutMs: { flag: 'upstream-total-timeout', env: 'NPCD_UPSTREAM_TOTAL_TIMEOUT', type: 'duration', default: '5m', min: 1, help: 'A reply still streaming this long after the turn started is cut with ERR_UPSTREAM_TIMEOUT.', metavar: 'DURATION' },
  upstreamRetries: { flag: 'upstream-retries', env: 'NPCD_UPSTREAM_RETRIES', type: 'int', default: 2, min: 0, max: 10, help: 'Retries (with backoff, or the Retry-After of a 429) of a failed upstream request, only before its first token.', metavar: 'N' },
  llamaThreads: { flag: 'llama-threads', env: 'NPCD_LLAMA_THREADS', type: 'int', default: 1, min: 1, max: 256, help: 'CPU threads for llama:PATH.gguf (set it explicitly; on small machines 1 is often fastest).', metavar: 'N' },
  llamaContext: { flag: 'llama-context', env: 'NPCD_LLAMA_CONTEXT', type: 'int', default: 4096, min: 64, max: 1_048_576, help: 'Context size in tokens for llama:PATH.gguf (capped by the model\'s own).', metavar: 'N' },
  llamaSequences: { flag: 'llama-sequences', env: 'NPCD_LLAMA_SEQUENCES', type: 'int', default: 2, min: 1, max: 64, help: 'Turns a llama:PATH.gguf model generates at once; further turns wait.', metavar: 'N' },
  redis: { flag: 'redis', env: 'NPCD_REDIS', type: 'list', default: [], help: 'Keep sessions, memories and streams in Redis so that any node can serve any session: one URL (redis://[user:password@]host:port[/db], rediss:// for TLS) or, for a Redis Cluster, a comma list of two or more of its nodes (host:port or URLs; one address is taken for a standalone server). Without it everything stays in this process (docs/memory.md).', metavar: 'URL[,URL...]' },
  redisPrefix: { flag: 'redis-prefix', env: 'NPCD_REDIS_PREFIX', type: 'string', default: 'npcd:', help: 'Prefix of every Redis key npcd writes.', metavar: 'PREFIX' },
  redisTimeoutMs: { flag: 'redis-timeout', env: 'NPCD_REDIS_TIMEOUT', type: 'duration', default: '2s', min: 10, max: 600_000, help: 'A Redis command not answered within this time fails with ERR_STORE_UNAVAILABLE (npcd keeps reconnecting).', metavar: 'DURATION' },
  memoryBudgetBytes: { flag: 'memory-budget', env: 'NPCD_MEMORY_BUDGET', type: 'bytes', default: '512MiB', min: 1024 * 1024, help: 'In-process store (no --redis): most bytes its sessions, memories and streams may hold (at least 1MiB); beyond it the stored records of the least recently used sessions are evicted.', metavar: 'SIZE' },
  embed: { flag: 'embed', env: 'NPCD_EMBED', type: 'string', default: 'glove', help: 'Embedder for memory recall: "glove" (embedded default: GloVe word vectors plus hashed n-grams, offline), "hash" (hashed n-grams only), "ollama:MODEL", "openai:MODEL" (OpenAI-compatible /embeddings at --openai-base-url), "llama:PATH.gguf" (docs/embeddings.md).', metavar: 'SPEC' },
  recallK: { flag: 'recall', env: 'NPCD_RECALL', type: 'int', default: 4, min: 0, max: 64, help: 'Memories recalled into each prompt at most; 0 keeps no memories and recalls none.', metavar: 'N' },
  recallMinScore: { flag: 'recall-min-score', env: 'NPCD_RECALL_MIN_SCORE', type: 'float', default: 0.3, min: -1, max: 1, help: 'Cosine similarity a memory needs to be recalled.', metavar: 'X' },
  maxMemories: { flag: 'max-memories', env: 'NPCD_MAX_MEMORIES', type: 'int', default: 100_000, min: 1, max: 10_000_000, help: 'Memories kept per session; the oldest are dropped beyond it.', metavar: 'N' },
  leaseMs: { flag: 'generation-lease', env: 'NPCD_GENERATION_LEASE', type: 'duration', default: '3s', min: 100, max: 600_000, help: 'With --redis: a node renews the lease on each reply it generates every third of this time; a reply whose node stopped is declared interrupted (ERR_GENERATION_INTERRUPTED) this long after.', metavar: 'DURATION' },
  otlpEndpoint: { flag: 'otlp-endpoint', env: 'NPCD_OTLP_ENDPOINT', type: 'string', default: undefined, help: 'Export OpenTelemetry spans of each turn over OTLP/HTTP (JSON) to this collector, e.g. http://127.0.0.1:4318 (/v1/traces is appended unless given). Without it tracing is off and costs nothing; a client\'s traceparent is still passed to the model upstream (docs/tracing.md).', metavar: 'URL' },
  traceSample: { flag: 'trace-sample', env: 'NPCD_TRACE_SAMPLE', type: 'float', default: 1, min: 0, max: 1, help: 'With --otlp-endpoint: share of new traces recorded (0 to 1); a client\'s traceparent decides for its own trace through its sampled flag.', metavar: 'RATIO' },
  characters: { flag: 'characters', env: 'NPCD_CHARACTERS', type: 'string', default: BUNDLED_CHARACTERS, help: 'Folder of characters: scripts (*.yaml, *.yml) and Character Cards (*.png, *.json); other JSON files there are lorebooks the scripts may name.', metavar: 'DIR' },
  adminKeys: { flag: 'admin-keys', env: 'NPCD_ADMIN_KEYS', type: 'list', default: [], help: 'Comma-separated admin keys for /v1/admin routes (card import and export), sent as "Authorization: Bearer KEY". Without them the admin routes answer 403 ERR_ADMIN_DISABLED.', metavar: 'KEYS' },
  maxCardBytes: { flag: 'max-card-bytes', env: 'NPCD_MAX_CARD_BYTES', type: 'bytes', default: '16MiB', min: 1024, max: 32 * 1024 * 1024, help: 'Largest Character Card accepted by POST /v1/admin/characters.', metavar: 'SIZE' },
  profileMaxSeconds: { flag: 'profile-max-seconds', env: 'NPCD_PROFILE_MAX_SECONDS', type: 'int', default: 60, min: 1, max: 3600, help: 'Longest CPU profile GET /debug/profile?seconds=N may take (admin keys only; docs/profiling.md).', metavar: 'N' },
  watch: { flag: 'watch', env: 'NPCD_WATCH', type: 'bool', default: true, help: 'Reload character files when they change, are added or removed (--no-watch: load once at start).' },
  parseThreads: { flag: 'parse-threads', env: 'NPCD_PARSE_THREADS', type: 'int', default: 0, min: 0, max: 64, help: 'Worker threads that parse character files (0: half the cores, 1 to 4).', metavar: 'N' },
  parseTimeoutMs: { flag: 'parse-timeout', env: 'NPCD_PARSE_TIMEOUT', type: 'duration', default: '2s', min: 1, max: 600_000, help: 'A character file whose parsing runs longer in its worker fails to load (the worker is stopped); waiting for a worker does not count.', metavar: 'DURATION' },
  regexTimeoutMs: { flag: 'regex-timeout', env: 'NPCD_REGEX_TIMEOUT', type: 'duration', default: '100ms', min: 1, max: 60_000, help: 'How long the regular expressions of a character (on_regex, lorebook regex keys) may run together against one text; one still running then counts as not matching and is disabled until restart (npcd_regex_timeouts_total).', metavar: 'DURATION' },
  config: { flag: 'config', env: 'NPCD_CONFIG', type: 'string', default: undefined, help: 'Config file (JSON or YAML) whose keys are these flag names; flags and environment override it.', metavar: 'FILE' },
  logLevel: { flag: 'log-level', env: 'NPCD_LOG_LEVEL', type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], help: 'Log level (logs are JSON lines on stdout).', metavar: 'LEVEL' },
  apiKeys: { flag: 'api-keys', env: 'NPCD_API_KEYS', type: 'list', default: [], help: 'Comma-separated API keys. When set, /v1 HTTP routes need "Authorization: Bearer KEY" and WebSocket `hello` needs `token`.', metavar: 'KEYS' },
  maxConnections: { flag: 'max-connections', env: 'NPCD_MAX_CONNECTIONS', type: 'int', default: 20_000, min: 1, help: 'Maximum concurrent WebSocket connections; upgrades beyond it get 503 ERR_CONNECTION_LIMIT.', metavar: 'N' },
  maxSessions: { flag: 'max-sessions', env: 'NPCD_MAX_SESSIONS', type: 'int', default: 100_000, min: 1, help: 'Maximum sessions held; new sessions beyond it get ERR_SESSION_LIMIT.', metavar: 'N' },
  maxFrameBytes: { flag: 'max-frame-bytes', env: 'NPCD_MAX_FRAME_BYTES', type: 'bytes', default: '16KiB', min: 256, max: 16 * 1024 * 1024, help: 'Largest WebSocket message accepted. Larger messages get ERR_PROTOCOL_FRAME_TOO_LARGE; above 4x this size the connection is closed without reading the message (no close frame: the client sees 1006).', metavar: 'SIZE' },
  maxBodyBytes: { flag: 'max-body-bytes', env: 'NPCD_MAX_BODY_BYTES', type: 'bytes', default: '64KiB', min: 256, max: 64 * 1024 * 1024, help: 'Largest HTTP request body accepted; larger bodies get 413 ERR_HTTP_BODY_TOO_LARGE.', metavar: 'SIZE' },
  maxCompletionBodyBytes: { flag: 'max-completion-body-bytes', env: 'NPCD_MAX_COMPLETION_BODY_BYTES', type: 'bytes', default: '1MiB', min: 256, max: 64 * 1024 * 1024, help: 'Largest body of POST /v1/chat/completions, whose clients (SillyTavern) send the whole chat each time; larger bodies get 413.', metavar: 'SIZE' },
  maxFrameDepth: { flag: 'max-frame-depth', env: 'NPCD_MAX_FRAME_DEPTH', type: 'int', default: 32, min: 2, max: 1000, help: 'Deepest nesting of arrays and maps accepted in a MessagePack frame (native codec); deeper frames get ERR_PROTOCOL_MALFORMED.', metavar: 'N' },
  maxMessageChars: { flag: 'max-message-chars', env: 'NPCD_MAX_MESSAGE_CHARS', type: 'int', default: 4000, min: 1, help: 'Longest chat message accepted, in characters (Unicode code points: an emoji counts as one); longer ones get ERR_CHAT_TEXT_TOO_LONG.', metavar: 'N' },
  maxReplyTokens: { flag: 'max-reply-tokens', env: 'NPCD_MAX_REPLY_TOKENS', type: 'int', default: 256, min: 1, max: 100_000, help: 'Upper bound on tokens generated per reply.', metavar: 'N' },
  maxHistoryTurns: { flag: 'max-history-turns', env: 'NPCD_MAX_HISTORY_TURNS', type: 'int', default: 200, min: 2, help: 'Messages kept per session in memory; the oldest are dropped beyond it.', metavar: 'N' },
  replayFrames: { flag: 'replay-frames', env: 'NPCD_REPLAY_FRAMES', type: 'int', default: 512, min: 16, max: 1_000_000, help: 'Stream frames kept per session for resume (about 90 bytes each); older ones give ERR_RESUME_GAP.', metavar: 'N' },
  replayRetentionMs: { flag: 'replay-retention', env: 'NPCD_REPLAY_RETENTION', type: 'duration', default: '10m', min: 1000, max: 30 * 24 * HOUR, help: 'How long a session without a connection keeps its replay log; a later resume gets ERR_RESUME_GAP (history stays readable over HTTP).', metavar: 'DURATION' },
  orphanGraceMs: { flag: 'orphan-grace', env: 'NPCD_ORPHAN_GRACE', type: 'duration', default: '15s', min: 0, max: 24 * HOUR, help: 'A reply that nobody receives (no WebSocket on its session, no HTTP request waiting) for this long is cancelled; a client that resumes sooner keeps it streaming. 0 cancels at once.', metavar: 'DURATION' },
  sessionTtlMs: { flag: 'session-ttl', env: 'NPCD_SESSION_TTL', type: 'duration', default: '30m', min: 1000, max: 30 * 24 * HOUR, help: 'A session with no connection, no generation and no activity for this long is deleted.', metavar: 'DURATION' },
  heartbeatIntervalMs: { flag: 'heartbeat-interval', env: 'NPCD_HEARTBEAT_INTERVAL', type: 'duration', default: '15s', min: 100, help: 'Ping interval the server asks clients for (sent as welcome.heartbeat_ms).', metavar: 'DURATION' },
  helloTimeoutMs: { flag: 'hello-timeout', env: 'NPCD_HELLO_TIMEOUT', type: 'duration', default: '10s', min: 100, help: 'A WebSocket that has not sent hello this long after connecting is closed (4408 ERR_HELLO_TIMEOUT), pings or not.', metavar: 'DURATION' },
  idleTimeoutMs: { flag: 'idle-timeout', env: 'NPCD_IDLE_TIMEOUT', type: 'duration', default: '30s', min: 200, help: 'A WebSocket that sends nothing for this long is closed (4408 ERR_HEARTBEAT_TIMEOUT).', metavar: 'DURATION' },
  shutdownTimeoutMs: { flag: 'shutdown-timeout', env: 'NPCD_SHUTDOWN_TIMEOUT', type: 'duration', default: '10s', min: 0, help: 'On SIGTERM/SIGINT, how long in-flight replies may run before they are cancelled.', metavar: 'DURATION' },
  wsMaxBackpressureBytes: { flag: 'ws-max-backpressure', env: 'NPCD_WS_MAX_BACKPRESSURE', type: 'bytes', default: '1MiB', min: 64 * 1024, help: 'Per-connection send buffer limit. Live frames pause at 1/16 of it and resume from the replay log on drain; at the limit the connection is closed.', metavar: 'SIZE' },
  scriptTokenDelayMs: { flag: 'script-token-delay', env: 'NPCD_SCRIPT_TOKEN_DELAY', type: 'duration', default: '30ms', min: 0, max: 10_000, help: 'Pause between tokens of the script provider, so replies stream like a model\'s (0 streams at once).', metavar: 'DURATION' },
  mockTokens: { flag: 'mock-tokens', env: 'NPCD_MOCK_TOKENS', type: 'int', default: 16, min: 1, max: 100_000, help: 'Tokens per reply of the mock provider.', metavar: 'N' },
  mockTtftMs: { flag: 'mock-ttft', env: 'NPCD_MOCK_TTFT', type: 'duration', default: '0ms', min: 0, help: 'Mock provider: delay before the first token.', metavar: 'DURATION' },
  native: { flag: 'native', env: 'NPCD_NATIVE', type: 'bool', default: true, help: 'Use the native module (native/, Rust) for MessagePack and vector search; --no-native uses msgpackr, hnswlib-node and JS instead. When the module does not load, npcd logs why and uses those.' },
  mockTokenDelayMs: { flag: 'mock-token-delay', env: 'NPCD_MOCK_TOKEN_DELAY', type: 'duration', default: '0ms', min: 0, help: 'Mock provider: delay between tokens.', metavar: 'DURATION' },
};

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (cause) {
    throw new NpcdError('ERR_CONFIG_INVALID', `cannot read config file ${path}: ${(cause as Error).message}`, { cause });
  }
  let data: unknown;
  try {
    data = /\.json$/i.test(path) ? JSON.parse(text) : parseYaml(text, { maxAliasCount: 10 });
  } catch (cause) {
    throw new NpcdError('ERR_CONFIG_INVALID', `config file ${path} is not valid ${/\.json$/i.test(path) ? 'JSON' : 'YAML'}: ${(cause as Error).message}`, { cause });
  }
  if (data === null || data === undefined) return {};
  if (typeof data !== 'object' || Array.isArray(data)) {
    throw new NpcdError('ERR_CONFIG_INVALID', `config file ${path} must hold a map of option names to values`);
  }
  return data as Record<string, unknown>;
}

function findConfigPath(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--config') return argv[i + 1];
    if (a.startsWith('--config=')) return a.slice('--config='.length);
  }
  return env.NPCD_CONFIG || undefined;
}

export interface ServeArgs {
  config: ServeConfig;
  help: boolean;
}

/** Builds the serve config; throws NpcdError ERR_CONFIG_INVALID naming the bad option. */
export function loadServeConfig(
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>> = process.env,
  overrides: Partial<ServeConfig> = {},
): ServeArgs {
  const help = argv.includes('--help') || argv.includes('-h');
  const path = help ? undefined : findConfigPath(argv, env);
  const file = path ? readConfigFile(path) : {};
  const parsed = parseFlags(SERVE_FLAGS, argv, env, file);
  if (parsed.positionals.length > 0) {
    throw new NpcdError('ERR_CONFIG_INVALID', `unexpected argument ${JSON.stringify(parsed.positionals[0])} (see npcd serve --help)`);
  }
  const config = { ...(parsed.values as unknown as ServeConfig), ...overrides };
  if (config.idleTimeoutMs <= config.heartbeatIntervalMs) {
    throw new NpcdError('ERR_CONFIG_INVALID', `--idle-timeout (${config.idleTimeoutMs} ms) must be longer than --heartbeat-interval (${config.heartbeatIntervalMs} ms)`);
  }
  parseModelSpec(config.model);
  if (config.otlpEndpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(config.otlpEndpoint);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:')) {
      throw new NpcdError('ERR_CONFIG_INVALID', `--otlp-endpoint must be an http:// or https:// URL, got ${JSON.stringify(config.otlpEndpoint)}`);
    }
  }
  for (const [key, flag] of [['openaiBaseUrl', 'openai-base-url'], ['dashscopeBaseUrl', 'dashscope-base-url']] as const) {
    (config as Record<string, unknown>)[key] = normalizeBaseUrl(config[key], `--${flag}`);
  }
  (config as Record<string, unknown>).ollamaUrl = normalizeOllamaUrl(config.ollamaUrl, '--ollama-url (OLLAMA_HOST)');
  return { config: Object.freeze({ ...config, apiKeys: Object.freeze([...config.apiKeys]), adminKeys: Object.freeze([...config.adminKeys]) }), help: parsed.help };
}

export function serveHelp(): string {
  return `Usage: npcd serve [options]

Runs the npcd server: WebSocket protocol v1 at /v1/ws, HTTP JSON/SSE at /v1/chat,
the OpenAI-compatible /v1/chat/completions and /v1/models, characters and
sessions under /v1, Prometheus metrics at /metrics, /healthz and /readyz.
Replies come from the --model provider (docs/providers.md). Every option can also be set by its environment variable or in the
--config file; command-line flags win over the environment, which wins over the file.
Durations accept ms, s, m, h (a bare number is milliseconds); sizes accept
KiB, MiB, GiB, kb, mb (a bare number is bytes). Boolean flags take --no-NAME.

Options:
${formatHelp(SERVE_FLAGS)}
  -h, --help                      Show this help.
`;
}
