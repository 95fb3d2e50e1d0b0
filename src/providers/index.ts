/**
 * Creates the provider named by --model: one provider, or a fallback chain
 * of several. HTTP providers get one pooled upstream each.
 */
import type { ServeConfig } from '../config/serve.js';
import { NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { ApiAdapter } from './api.js';
import { type ChainObserver, FallbackChain } from './chain.js';
import { DashScopeAdapter } from './dashscope.js';
import { createLlamaProvider } from './llama.js';
import { MockProvider } from './mock.js';
import { OllamaAdapter } from './ollama.js';
import { OpenAiAdapter } from './openai.js';
import { RemoteProvider, type UpstreamObserver } from './remote.js';
import { ScriptProvider } from './script.js';
import { parseModelSpec, type ProviderSpec, type RemoteKind } from './spec.js';
import type { ModelProvider } from './types.js';
import { Upstream } from './upstream.js';

export type { ModelProvider } from './types.js';

export type ProviderConfig = Pick<
  ServeConfig,
  | 'model' | 'scriptTokenDelayMs' | 'mockTokens' | 'mockTtftMs' | 'mockTokenDelayMs'
  | 'openaiBaseUrl' | 'ollamaUrl' | 'dashscopeBaseUrl'
  | 'upstreamConnections' | 'upstreamIdleTimeoutMs' | 'upstreamConnectTimeoutMs' | 'upstreamAcquireTimeoutMs'
  | 'upstreamTcpKeepaliveMs' | 'upstreamHealthIntervalMs' | 'upstreamTtftTimeoutMs' | 'upstreamTotalTimeoutMs' | 'upstreamRetries'
  | 'llamaThreads' | 'llamaContext' | 'llamaSequences'
>;

export interface ProviderHooks extends Partial<UpstreamObserver>, Partial<ChainObserver> {
  readonly logger?: Logger;
  /** Every upstream created, so the server can export pool metrics and close them. */
  upstream?(upstream: Upstream): void;
}

/** Where each remote kind finds its API key by default. */
const KEY_ENV: Record<RemoteKind, string | undefined> = { openai: 'OPENAI_API_KEY', dashscope: 'DASHSCOPE_API_KEY', ollama: undefined };

function baseUrlOf(kind: RemoteKind, config: ProviderConfig): string {
  return kind === 'openai' ? config.openaiBaseUrl : kind === 'ollama' ? config.ollamaUrl : config.dashscopeBaseUrl;
}

function adapterFor(spec: ProviderSpec & { kind: RemoteKind }, apiKey: string | undefined): ApiAdapter {
  switch (spec.kind) {
    case 'openai':
      return new OpenAiAdapter({ model: spec.target, apiKey });
    case 'ollama':
      return new OllamaAdapter({ model: spec.target, apiKey, keepAlive: spec.options.keepAlive });
    case 'dashscope':
      return new DashScopeAdapter({ model: spec.target, apiKey });
  }
}

function remoteProvider(spec: ProviderSpec & { kind: RemoteKind }, config: ProviderConfig, env: NodeJS.ProcessEnv, hooks: ProviderHooks): RemoteProvider {
  const o = spec.options;
  const keyEnv = o.keyEnv ?? KEY_ENV[spec.kind];
  const apiKey = keyEnv ? env[keyEnv] || undefined : undefined;
  if (spec.kind === 'dashscope' && !apiKey) {
    throw new NpcdError('ERR_CONFIG_INVALID', `--model ${spec.text}: DashScope needs an API key in ${keyEnv}`);
  }
  const name = `${spec.kind}:${spec.target}`;
  const adapter = adapterFor(spec, apiKey);
  const upstream = new Upstream(name, o.url ?? baseUrlOf(spec.kind, config), adapter, {
    connections: o.connections ?? config.upstreamConnections,
    idleTimeoutMs: o.idleTimeoutMs ?? config.upstreamIdleTimeoutMs,
    connectTimeoutMs: o.connectTimeoutMs ?? config.upstreamConnectTimeoutMs,
    acquireTimeoutMs: o.acquireTimeoutMs ?? config.upstreamAcquireTimeoutMs,
    tcpKeepAliveMs: config.upstreamTcpKeepaliveMs,
    healthIntervalMs: o.healthIntervalMs ?? config.upstreamHealthIntervalMs,
    unhealthyAfter: 2,
  });
  const log = hooks.logger?.child({ subsystem: 'upstream', upstream: name });
  upstream.onHealthChange((healthy, reason) => {
    if (healthy) log?.info('upstream back in rotation');
    else log?.warn({ reason }, 'upstream out of rotation');
  });
  hooks.upstream?.(upstream);
  const observer: UpstreamObserver = {
    attempt: (u, outcome, seconds) => hooks.attempt?.(u, outcome, seconds),
    retry: (u, reason, delayMs) => {
      log?.debug({ reason, delayMs }, 'retrying upstream request');
      hooks.retry?.(u, reason, delayMs);
    },
  };
  return new RemoteProvider(adapter, upstream, {
    ttftTimeoutMs: o.ttftTimeoutMs ?? config.upstreamTtftTimeoutMs,
    totalTimeoutMs: o.totalTimeoutMs ?? config.upstreamTotalTimeoutMs,
    retries: o.retries ?? config.upstreamRetries,
    backoffBaseMs: 100,
    backoffMaxMs: 2_000,
  }, observer);
}

async function createOne(spec: ProviderSpec, config: ProviderConfig, env: NodeJS.ProcessEnv, hooks: ProviderHooks): Promise<ModelProvider> {
  switch (spec.kind) {
    case 'script':
      return new ScriptProvider({ tokenDelayMs: config.scriptTokenDelayMs });
    case 'mock':
      return new MockProvider({ tokens: config.mockTokens, ttftMs: config.mockTtftMs, tokenDelayMs: config.mockTokenDelayMs });
    case 'llama':
      return createLlamaProvider({
        modelPath: spec.target,
        threads: spec.options.threads ?? config.llamaThreads,
        contextSize: spec.options.context ?? config.llamaContext,
        sequences: spec.options.sequences ?? config.llamaSequences,
        logger: hooks.logger,
      });
    default:
      return remoteProvider(spec as ProviderSpec & { kind: RemoteKind }, config, env, hooks);
  }
}

/**
 * Creates the provider (or chain) named by --model. Credentials are read from
 * `env` here and kept only inside the adapters; they are never logged.
 */
export async function createProvider(config: ProviderConfig, hooks: ProviderHooks = {}, env: NodeJS.ProcessEnv = process.env): Promise<ModelProvider> {
  const specs = parseModelSpec(config.model);
  const providers: ModelProvider[] = [];
  try {
    for (const spec of specs) providers.push(await createOne(spec, config, env, hooks));
  } catch (err) {
    await Promise.all(providers.map((p) => p.close?.()));
    throw err;
  }
  if (providers.length === 1) return providers[0]!;
  return new FallbackChain(providers, { fallback: (from, reason) => hooks.fallback?.(from, reason) });
}
