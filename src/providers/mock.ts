/**
 * The mock provider: deterministic tokens at a set pace, for benchmarks and
 * tests. Every reply is the same word list, `tokens` long.
 */
import { pause } from './pace.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from './types.js';

export interface MockOptions {
  readonly tokens: number;
  readonly ttftMs: number;
  readonly tokenDelayMs: number;
}

const WORDS = ['the', 'lantern', 'swings', 'in', 'the', 'rain', 'and', 'the', 'harbor', 'bells', 'answer', 'one', 'by', 'one', 'tonight', '.'];

export function mockToken(i: number): string {
  const w = WORDS[i % WORDS.length]!;
  return i === 0 || w === '.' ? w : ' ' + w;
}

export class MockProvider implements ModelProvider {
  readonly name = 'mock';
  readonly description: string;

  constructor(private readonly options: MockOptions) {
    this.description = `mock: ${options.tokens} tokens, ttft ${options.ttftMs} ms, ${options.tokenDelayMs} ms between tokens`;
  }

  async *generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    const n = Math.min(this.options.tokens, request.maxTokens);
    await pause(this.options.ttftMs, signal);
    for (let i = 0; i < n; i++) {
      if (i > 0) await pause(this.options.tokenDelayMs, signal);
      yield mockToken(i);
    }
    return { finish: n < this.options.tokens ? 'length' : 'stop' };
  }
}
