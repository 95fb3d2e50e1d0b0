/**
 * The one interface every model provider implements: a streaming generate
 * call that takes the prompt, options and an AbortSignal and yields text as it
 * should be shown. Providers know nothing of sockets or sessions.
 */
import type { Character } from '../characters/types.js';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
  readonly name?: string;
}

export interface GenerateRequest {
  /** The character replying (its lines train the script model). */
  readonly character: Character;
  /** The prompt, in order: system parts, then history, then the user's message. */
  readonly messages: readonly ChatMessage[];
  /** The user's message of this turn. */
  readonly userText: string;
  /** The character's state for this reply. */
  readonly state: string;
  readonly maxTokens: number;
  /** Seed for deterministic sampling (same session, turn and text give the same reply). */
  readonly seed: number;
  /** Sampling options a client asked for (OpenAI-compatible endpoint); providers pass on what their API has. */
  readonly temperature?: number;
  readonly topP?: number;
  /** Sequences that end the reply (the provider's API stops there, or the provider cuts). */
  readonly stop?: readonly string[];
  /** W3C traceparent of the turn, sent to HTTP upstreams when set. */
  readonly traceparent?: string;
  /** W3C tracestate going with `traceparent`, sent when set. */
  readonly tracestate?: string;
}

export interface GenerateResult {
  /** "length" when the reply stopped at maxTokens. */
  readonly finish: 'stop' | 'length';
  /** Token counts when the provider knows them; otherwise npcd counts approximately. */
  readonly usage?: { readonly promptTokens: number; readonly completionTokens: number };
}

export interface ModelProvider extends ProviderLifecycle {
  /** Provider kind, a bounded label for metrics: "script", "mock", ... */
  readonly name: string;
  /** What actually generates, for logs and /readyz (e.g. "markov-2 over character lines"). */
  readonly description: string;
  /** The model name sent upstream (trace attribute llm.request.model); providers without one leave it out. */
  readonly modelName?: string;
  /**
   * Streams the reply. Yields pieces of text in order; returns how it finished.
   * Must stop promptly (throwing an AbortError) once `signal` aborts.
   */
  generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void>;
  /**
   * Streams the reply into `onText` as it arrives, with no promise per piece
   * (see relay.ts); providers that read a socket implement it, and turns use
   * it when it is there. Same pieces, result and failures as generate().
   */
  relay?(request: GenerateRequest, signal: AbortSignal, onText: TextSink): Promise<GenerateResult>;
}

/**
 * Takes a piece of a reply as the provider produces it: nothing to go on, a
 * promise to pause the provider until it settles, or false to end the reply
 * there (the provider stops and resolves with finish "stop").
 */
export type TextSink = (text: string) => void | false | Promise<void>;

/** How a provider's upstream is doing, for /readyz, metrics and fallback chains. */
export interface ProviderHealth {
  /** Label-safe name of the upstream (e.g. "openai:gpt-4o-mini"). */
  readonly name: string;
  readonly healthy: boolean;
  /** Why it is unhealthy (last health-check failure); undefined when healthy. */
  readonly reason?: string;
}

/** Optional parts of a provider that talks to an upstream. */
export interface ProviderLifecycle {
  /** Upstream health; providers without an upstream leave this out. */
  health?(): readonly ProviderHealth[];
  /** False while turns would find no upstream in rotation; providers without an upstream leave this out (always in). */
  inRotation?(): boolean;
  /** Releases connections, timers and models. */
  close?(): Promise<void>;
}
