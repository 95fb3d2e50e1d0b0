import type { ServeConfig } from '../config/serve.js';
import { NpcdError } from '../errors.js';
import { MockProvider } from './mock.js';
import { ScriptProvider } from './script.js';
import type { ModelProvider } from './types.js';

export type { ModelProvider } from './types.js';

/** Creates the provider named by --model. */
export function createProvider(config: Pick<ServeConfig, 'model' | 'scriptTokenDelayMs' | 'mockTokens' | 'mockTtftMs' | 'mockTokenDelayMs'>): ModelProvider {
  switch (config.model) {
    case 'script':
      return new ScriptProvider({ tokenDelayMs: config.scriptTokenDelayMs });
    case 'mock':
      return new MockProvider({ tokens: config.mockTokens, ttftMs: config.mockTtftMs, tokenDelayMs: config.mockTokenDelayMs });
    default:
      throw new NpcdError('ERR_CONFIG_INVALID', `--model ${JSON.stringify(config.model)} is not a known provider`);
  }
}
