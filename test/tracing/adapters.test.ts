/** Every HTTP adapter sends the turn's traceparent and tracestate, and neither when there is none. */
import t from 'tap';
import type { Character } from '../../src/characters/types.js';
import { DashScopeAdapter } from '../../src/providers/dashscope.js';
import { OllamaAdapter } from '../../src/providers/ollama.js';
import { OpenAiAdapter } from '../../src/providers/openai.js';
import type { GenerateRequest } from '../../src/providers/types.js';

const TP = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

function request(overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    character: { id: 'c', name: 'C', initialState: 'calm' } as unknown as Character,
    messages: [{ role: 'user', content: 'hi' }],
    userText: 'hi',
    state: 'calm',
    maxTokens: 16,
    seed: 1,
    ...overrides,
  };
}

t.test('traceparent and tracestate headers', async (t) => {
  const adapters = [new OpenAiAdapter({ model: 'm' }), new OllamaAdapter({ model: 'm' }), new DashScopeAdapter({ model: 'm', apiKey: 'k' })];
  for (const a of adapters) {
    const withBoth = a.chatRequest(request({ traceparent: TP, tracestate: 'congo=1' })).headers;
    t.equal(withBoth.traceparent, TP, `${a.kind}: traceparent`);
    t.equal(withBoth.tracestate, 'congo=1', `${a.kind}: tracestate`);
    const none = a.chatRequest(request()).headers;
    t.equal(none.traceparent, undefined, `${a.kind}: no traceparent unless set`);
    t.equal(none.tracestate, undefined, `${a.kind}: no tracestate unless set`);
    t.equal(a.chatRequest(request({ tracestate: 'congo=1' })).headers.tracestate, undefined, `${a.kind}: no tracestate without a traceparent`);
  }
});
