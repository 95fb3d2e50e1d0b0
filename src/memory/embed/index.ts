/**
 * Embedder specs and the factory. A spec is `KIND[:TARGET][?OPTION=VALUE&...]`:
 *
 *   glove                                  the embedded default (GloVe + hashed features, offline)
 *   hash                                   hashed features only (no word list)
 *   ollama:nomic-embed-text                Ollama's POST /api/embed
 *   openai:text-embedding-3-small          POST {base}/embeddings of any OpenAI-compatible API
 *   llama:/models/nomic-embed-text.gguf    a local GGUF model through node-llama-cpp
 *
 * Options after `?` (docs/embeddings.md lists them): glove `file`; hash
 * `dim`; ollama and openai `url`, `key_env`, `timeout`, `batch`,
 * `connections`; llama `threads`, `context`. Base URLs and API keys default
 * to the chat providers' (--ollama-url / OLLAMA_HOST, --openai-base-url /
 * OPENAI_BASE_URL, OPENAI_API_KEY). Parsing does no I/O; init() of the
 * embedder created loads or probes.
 */
import type { ServeConfig } from '../../config/serve.js';
import type { Logger } from '../../log.js';
import { normalizeBaseUrl, normalizeOllamaUrl, type OptionDef, parseSpecOptions, specError, splitSpec } from '../../providers/spec.js';
import { Upstream } from '../../providers/upstream.js';
import { GloveEmbedder } from './glove.js';
import { HashEmbedder } from './hash.js';
import { LlamaEmbedder } from './llama.js';
import { type EmbedApi, OllamaEmbedAdapter, OpenAiEmbedAdapter, RemoteEmbedder } from './remote.js';
import type { Embedder } from './types.js';

export type { Embedder } from './types.js';
export { GloveEmbedder } from './glove.js';
export { HashEmbedder } from './hash.js';
export { LlamaEmbedder } from './llama.js';
export { RemoteEmbedder } from './remote.js';

export type EmbedKind = 'glove' | 'hash' | 'ollama' | 'openai' | 'llama';

export interface EmbedSpec {
  readonly kind: EmbedKind;
  /** Model name (ollama, openai), GGUF path (llama), empty otherwise. */
  readonly target: string;
  readonly options: EmbedSpecOptions;
  /** The spec as written, for messages. */
  readonly text: string;
}

export interface EmbedSpecOptions {
  /** glove: word vector file. */
  readonly file?: string;
  /** hash: components per vector. */
  readonly dim?: number;
  /** ollama, openai: base URL of the API. */
  readonly url?: string;
  /** ollama, openai: environment variable holding the API key. */
  readonly keyEnv?: string;
  /** ollama, openai: time limit of one request. */
  readonly timeoutMs?: number;
  /** ollama, openai: most texts per request. */
  readonly batch?: number;
  /** ollama, openai: most connections to the API. */
  readonly connections?: number;
  /** llama: CPU threads and tokens per text. */
  readonly threads?: number;
  readonly context?: number;
}

/** The flag the spec comes from, for messages. */
const FLAG = '--embed';

export const EMBED_KINDS = 'glove, hash, ollama:MODEL, openai:MODEL, llama:PATH.gguf';

const REMOTE_OPTIONS: Record<string, OptionDef<keyof EmbedSpecOptions>> = {
  url: { key: 'url', kind: 'url' },
  key_env: { key: 'keyEnv', kind: 'env' },
  timeout: { key: 'timeoutMs', kind: 'duration', min: 1 },
  batch: { key: 'batch', kind: 'int', min: 1, max: 2048 },
  connections: { key: 'connections', kind: 'int', min: 1, max: 10_000 },
};
const OPTIONS: Record<EmbedKind, Record<string, OptionDef<keyof EmbedSpecOptions>>> = {
  glove: { file: { key: 'file', kind: 'path' } },
  hash: { dim: { key: 'dim', kind: 'int', min: 8, max: 65_536 } },
  ollama: REMOTE_OPTIONS,
  openai: REMOTE_OPTIONS,
  llama: {
    threads: { key: 'threads', kind: 'int', min: 1, max: 256 },
    context: { key: 'context', kind: 'int', min: 16, max: 1_048_576 },
  },
};

function fail(spec: string, message: string): never {
  throw specError(FLAG, spec, message);
}

function isKind(kind: string): kind is EmbedKind {
  return Object.hasOwn(OPTIONS, kind);
}

/** Parses an embedder spec; ERR_CONFIG_INVALID with a message naming the problem. */
export function parseEmbedSpec(text: string): EmbedSpec {
  const spec = text.trim();
  if (spec === '') fail(text, `is empty; known: ${EMBED_KINDS}`);
  const { kind, target, query } = splitSpec(spec);
  if (!isKind(kind)) return fail(text, `unknown embedder "${kind}"; known: ${EMBED_KINDS}`);
  switch (kind) {
    case 'glove':
    case 'hash':
      if (target) fail(text, `"${kind}" takes no model name`);
      break;
    case 'ollama':
    case 'openai':
      if (!target) fail(text, `name the embedding model: ${kind}:MODEL (e.g. ${kind === 'ollama' ? 'ollama:nomic-embed-text' : 'openai:text-embedding-3-small'})`);
      break;
    case 'llama':
      if (!/\.gguf$/i.test(target)) fail(text, 'name a GGUF model file: llama:PATH.gguf');
      break;
  }
  return { kind, target, options: parseSpecOptions(FLAG, text, query, OPTIONS[kind]) as EmbedSpecOptions, text };
}

/**
 * Server-wide settings an embedder falls back on when its spec has no
 * option of its own: the server config's fields of the same names (pass
 * `{ ...config, logger }`), each optional. Unset base URLs come from `env`
 * as the chat providers' do (OLLAMA_HOST, OPENAI_BASE_URL).
 */
export interface EmbedderConfig
  extends Partial<
    Pick<
      ServeConfig,
      | 'ollamaUrl' | 'openaiBaseUrl'
      | 'upstreamConnections' | 'upstreamIdleTimeoutMs' | 'upstreamConnectTimeoutMs' | 'upstreamAcquireTimeoutMs'
      | 'upstreamTcpKeepaliveMs' | 'upstreamHealthIntervalMs' | 'llamaThreads'
    >
  > {
  /** Where API keys (and unset base URLs) are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
  /** Time limit of one request to an embedding API (default 10 s). */
  readonly embedTimeoutMs?: number;
  /** Texts per request to an embedding API (default 64). */
  readonly embedBatchSize?: number;
  /** Characters of a text sent to an embedding API; longer texts are cut (default 8000). */
  readonly embedMaxChars?: number;
  /** llama: tokens per text (default 512; not the chat context, --llama-context). */
  readonly embedContext?: number;
  readonly logger?: Logger;
  /** Every upstream created, so the server can export its pool metrics. */
  upstream?(upstream: Upstream): void;
}

/** Pool settings when the config has none: the chat providers' defaults (src/config/serve.ts). */
const POOL_DEFAULTS = { connections: 200, idleTimeoutMs: 300_000, connectTimeoutMs: 5_000, acquireTimeoutMs: 3_000, tcpKeepAliveMs: 60_000, healthIntervalMs: 10_000 };

/** Where each API finds its key by default: the chat providers' variables. */
const KEY_ENV = { openai: 'OPENAI_API_KEY', ollama: undefined } as const;

function baseUrl(kind: 'ollama' | 'openai', config: EmbedderConfig, env: NodeJS.ProcessEnv): string {
  if (kind === 'ollama') return normalizeOllamaUrl(config.ollamaUrl ?? (env.OLLAMA_HOST || 'http://127.0.0.1:11434'), config.ollamaUrl ? 'ollamaUrl' : 'OLLAMA_HOST');
  return normalizeBaseUrl(config.openaiBaseUrl ?? (env.OPENAI_BASE_URL || 'https://api.openai.com/v1'), config.openaiBaseUrl ? 'openaiBaseUrl' : 'OPENAI_BASE_URL');
}

function remoteEmbedder(spec: EmbedSpec & { kind: 'ollama' | 'openai' }, config: EmbedderConfig): RemoteEmbedder {
  const env = config.env ?? process.env;
  const o = spec.options;
  const keyEnv = o.keyEnv ?? KEY_ENV[spec.kind];
  const apiKey = keyEnv ? env[keyEnv] || undefined : undefined;
  const api: EmbedApi = spec.kind === 'ollama' ? new OllamaEmbedAdapter({ model: spec.target, apiKey }) : new OpenAiEmbedAdapter({ model: spec.target, apiKey });
  const upstream = new Upstream(`${spec.kind}:${spec.target}`, o.url ?? baseUrl(spec.kind, config, env), api, {
    connections: o.connections ?? config.upstreamConnections ?? POOL_DEFAULTS.connections,
    idleTimeoutMs: config.upstreamIdleTimeoutMs ?? POOL_DEFAULTS.idleTimeoutMs,
    connectTimeoutMs: config.upstreamConnectTimeoutMs ?? POOL_DEFAULTS.connectTimeoutMs,
    acquireTimeoutMs: config.upstreamAcquireTimeoutMs ?? POOL_DEFAULTS.acquireTimeoutMs,
    tcpKeepAliveMs: config.upstreamTcpKeepaliveMs ?? POOL_DEFAULTS.tcpKeepAliveMs,
    healthIntervalMs: config.upstreamHealthIntervalMs ?? POOL_DEFAULTS.healthIntervalMs,
    unhealthyAfter: 2,
  });
  const log = config.logger?.child({ subsystem: 'embedder', embedder: upstream.name });
  upstream.onHealthChange((healthy, reason) => {
    if (healthy) log?.info('embedding upstream back in rotation');
    else log?.warn({ reason }, 'embedding upstream out of rotation');
  });
  config.upstream?.(upstream);
  return new RemoteEmbedder(api, upstream, {
    timeoutMs: o.timeoutMs ?? config.embedTimeoutMs ?? 10_000,
    batchSize: o.batch ?? config.embedBatchSize ?? 64,
    maxChars: config.embedMaxChars ?? 8000,
  });
}

/**
 * The embedder a spec names (a string is parsed first), not yet
 * initialized: call init() before embed(). Throws ERR_CONFIG_INVALID for a
 * bad spec or option.
 */
export function createEmbedder(spec: string | EmbedSpec = 'glove', config: EmbedderConfig = {}): Embedder {
  const s = typeof spec === 'string' ? parseEmbedSpec(spec) : spec;
  switch (s.kind) {
    case 'glove':
      return new GloveEmbedder({ file: s.options.file });
    case 'hash':
      return new HashEmbedder({ dim: s.options.dim });
    case 'llama':
      return new LlamaEmbedder({
        modelPath: s.target,
        threads: s.options.threads ?? config.llamaThreads ?? 1,
        contextSize: s.options.context ?? config.embedContext ?? 512,
        logger: config.logger,
      });
    case 'ollama':
    case 'openai':
      return remoteEmbedder(s as EmbedSpec & { kind: 'ollama' | 'openai' }, config);
  }
}
