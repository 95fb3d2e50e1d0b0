/**
 * The embedded default provider. It is no LLM: it answers with a Markov
 * chain trained on the character's own lines (greeting and examples),
 * seeded per session and turn so replies are reproducible. Scripted trigger
 * replies are handled before any provider, in the dialogue layer.
 */
import type { Character } from '../characters/types.js';
import { mulberry32 } from '../text/random.js';
import { spaced } from '../text/tokens.js';
import { MarkovModel } from './markov.js';
import { pause } from './pace.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from './types.js';

export interface ScriptOptions {
  /** Pause between tokens, so replies stream the way a model's do. */
  readonly tokenDelayMs: number;
}

/** Replies are kept short, as a character's chat lines are. */
const MAX_SCRIPT_TOKENS = 120;

export class ScriptProvider implements ModelProvider {
  readonly name = 'script';
  readonly description = 'script: trigger replies and a Markov chain over each character\'s own lines (no LLM)';
  // Models are built on first use and dropped with the Character object (e.g. on reload).
  private readonly models = new WeakMap<Character, MarkovModel>();

  constructor(private readonly options: ScriptOptions) {}

  model(character: Character): MarkovModel {
    let m = this.models.get(character);
    if (!m) {
      const corpus = [character.greeting, ...character.examples].filter((l) => l.trim() !== '');
      m = new MarkovModel(corpus);
      this.models.set(character, m);
    }
    return m;
  }

  async *generate(request: GenerateRequest, signal: AbortSignal): AsyncGenerator<string, GenerateResult, void> {
    const model = this.model(request.character);
    const budget = Math.min(request.maxTokens, MAX_SCRIPT_TOKENS);
    const { tokens, length } = model.generate(request.userText, mulberry32(request.seed), budget);
    if (tokens.length === 0) {
      // A character without lines still answers.
      yield '…';
      return { finish: 'stop' };
    }
    let prev: string | undefined;
    for (const tok of tokens) {
      await pause(prev === undefined ? 0 : this.options.tokenDelayMs, signal);
      yield spaced(prev, tok);
      prev = tok;
    }
    return { finish: length || (tokens.length >= budget && budget < MAX_SCRIPT_TOKENS) ? 'length' : 'stop' };
  }
}
