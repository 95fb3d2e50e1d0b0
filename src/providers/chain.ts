/**
 * A fallback chain (`--model openai:gpt-4o-mini,ollama:llama3,script`): each
 * turn goes to the first provider in rotation; when it fails before its first
 * token (after its own retries), the next one takes the turn. Once a token
 * has reached the client the turn belongs to that provider, and a failure
 * ends the turn (switching voices mid-reply would be worse than an error).
 */
import { UpstreamError } from './api.js';
import { pullReply, relayReply } from './relay.js';
import type { GenerateRequest, GenerateResult, ModelProvider, ProviderHealth, TextSink } from './types.js';

export interface ChainObserver {
  /** `from` (the entry's KIND:MODEL, see entryLabel) failed or was out of rotation before its first token; the turn moves on. */
  fallback(from: string, reason: string): void;
}

/**
 * An entry of the chain as --model names it, KIND:MODEL ("openai:gpt-4o-mini",
 * as the upstream metrics label it) or the kind alone ("script"): two entries
 * of one kind stay apart.
 */
export function entryLabel(p: ModelProvider): string {
  return p.modelName === undefined ? p.name : `${p.name}:${p.modelName}`;
}

/** Whether a provider can take turns now (one without an upstream always can). */
export function isInRotation(p: ModelProvider): boolean {
  return p.inRotation?.() ?? true;
}

export class FallbackChain implements ModelProvider {
  readonly name: string;
  readonly description: string;

  constructor(
    readonly providers: readonly ModelProvider[],
    private readonly observer?: ChainObserver,
  ) {
    if (providers.length === 0) throw new Error('a fallback chain needs at least one provider');
    this.name = providers.map((p) => p.name).join('>');
    this.description = `fallback chain: ${providers.map((p) => p.description).join(' → ')}`;
  }

  /** The models in order (which one answers a turn is known only once it does). */
  get modelName(): string {
    return this.providers.map((p) => p.modelName ?? p.name).join('>');
  }

  health(): readonly ProviderHealth[] {
    return this.providers.flatMap((p) => p.health?.() ?? []);
  }

  inRotation(): boolean {
    return this.providers.some(isInRotation);
  }

  async close(): Promise<void> {
    await Promise.all(this.providers.map((p) => p.close?.()));
  }

  generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    return pullReply(signal, (s, onText) => this.relay(request, s, onText));
  }

  async relay(request: GenerateRequest, signal: AbortSignal, onText: TextSink): Promise<GenerateResult> {
    let last: unknown;
    // Out-of-rotation providers are skipped while another is in; when none is, each is still tried in order.
    const healthy = this.providers.filter(isInRotation);
    const order = healthy.length > 0 ? healthy : this.providers;
    for (const [i, provider] of order.entries()) {
      // Committed to this provider once a piece went on: its failure is the turn's.
      let committed = false;
      try {
        return await relayReply(provider, request, signal, (text) => {
          committed = true;
          return onText(text);
        });
      } catch (err) {
        if (signal.aborted || committed) throw err;
        last = err;
        if (i < order.length - 1) this.observer?.fallback(entryLabel(provider), err instanceof UpstreamError ? err.reason : 'failed');
      }
    }
    throw last;
  }
}
