import { fileURLToPath } from 'node:url';
import t from 'tap';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { parseCharacterScript } from '../../src/characters/script.js';
import type { Character } from '../../src/characters/types.js';
import { createProvider } from '../../src/providers/index.js';
import { FallbackChain } from '../../src/providers/chain.js';
import { loadServeConfig } from '../../src/config/serve.js';
import { MockProvider, mockToken } from '../../src/providers/mock.js';
import { ScriptProvider } from '../../src/providers/script.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from '../../src/providers/types.js';
import { mulberry32 } from '../../src/text/random.js';
import { spaced } from '../../src/text/tokens.js';

const registry = new CharacterRegistry();
registry.loadDirectory(fileURLToPath(new URL('../../characters', import.meta.url)));
const MARA = registry.require('tavern-keeper');
const JIANKE = registry.require('gufeng-jianke');

function request(character: Character, userText: string, seed: number, maxTokens = 256): GenerateRequest {
  return { character, messages: [], userText, state: character.initialState, maxTokens, seed };
}

/** Runs a generation to its end: the pieces it yielded and the result it returned. */
async function run(provider: ModelProvider, req: GenerateRequest, signal = new AbortController().signal): Promise<{ pieces: string[]; result: GenerateResult }> {
  const gen = provider.generate(req, signal);
  const pieces: string[] = [];
  for (;;) {
    const step = await gen.next();
    if (step.done) return { pieces, result: step.value };
    pieces.push(step.value);
  }
}

t.test('ScriptProvider yields the model\'s tokens, spaced', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 0 });
  t.equal(p.name, 'script');
  for (const [character, text, seed] of [[MARA, 'where can I sleep tonight?', 1], [MARA, 'what is in your cellar', 77], [JIANKE, '天色已晚，你为何独坐山崖？', 5]] as const) {
    const { pieces, result } = await run(p, request(character, text, seed));
    const { tokens, length } = p.model(character).generate(text, mulberry32(seed), 120);
    t.same(pieces, tokens.map((tok, i) => spaced(tokens[i - 1], tok)), `${character.id}: one piece per token, spaced`);
    t.equal(pieces[0], tokens[0], 'no space before the first piece');
    t.equal(result.finish, length ? 'length' : 'stop');
    t.equal(result.usage, undefined, 'the script provider lets npcd count tokens');
    t.ok(pieces.join('').length > 0);
  }
  const zh = (await run(p, request(JIANKE, '月色', 3))).pieces.join('');
  t.notMatch(zh, / /, 'Chinese replies have no spaces');
});

t.test('ScriptProvider is deterministic per seed', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 0 });
  const a = await run(p, request(MARA, 'tell me about the harbor', 42));
  const b = await run(new ScriptProvider({ tokenDelayMs: 0 }), request(MARA, 'tell me about the harbor', 42));
  t.same(a, b, 'same seed, same reply (even from another provider instance)');
  const replies = new Set<string>();
  for (let seed = 0; seed < 20; seed++) replies.add((await run(p, request(MARA, 'tell me about the harbor', seed))).pieces.join(''));
  t.ok(replies.size > 1, `20 seeds gave ${replies.size} replies`);
});

t.test('ScriptProvider caches one model per Character object', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 0 });
  t.equal(p.model(MARA), p.model(MARA));
  t.not(p.model(MARA), p.model(JIANKE));
  t.equal(p.model(MARA).size, 1 + MARA.examples.length, 'trained on the greeting and the examples');
});

t.test('ScriptProvider respects maxTokens', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 0 });
  for (const max of [1, 2, 3, 5]) {
    const { pieces, result } = await run(p, request(MARA, 'stew', 9, max));
    t.ok(pieces.length <= max, `maxTokens ${max}: ${pieces.length} pieces`);
    t.equal(result.finish, 'length', `maxTokens ${max}: finish length`);
  }
  const long = await run(p, request(MARA, 'stew', 9, 100_000));
  t.ok(long.pieces.length <= 120, 'replies are capped at 120 tokens whatever maxTokens says');
});

t.test('ScriptProvider: a character without lines answers "…"', async (t) => {
  const { character } = parseCharacterScript('name: Mute\n', 'inline/mute.yaml');
  const { pieces, result } = await run(new ScriptProvider({ tokenDelayMs: 0 }), request(character!, 'hello', 1));
  t.same(pieces, ['…']);
  t.same(result, { finish: 'stop' });
});

t.test('ScriptProvider honours an already-aborted signal', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 0 });
  const ac = new AbortController();
  ac.abort();
  const gen = p.generate(request(MARA, 'hello', 1), ac.signal);
  await t.rejects(gen.next(), { name: 'AbortError' });
  t.same(await gen.next(), { done: true, value: undefined }, 'the generator is finished');
});

t.test('ScriptProvider stops between tokens when aborted', async (t) => {
  const p = new ScriptProvider({ tokenDelayMs: 5 });
  const ac = new AbortController();
  const gen = p.generate(request(MARA, 'tell me about the harbor', 42, 100), ac.signal);
  const first = await gen.next();
  t.equal(first.done, false);
  ac.abort();
  await t.rejects(gen.next(), { name: 'AbortError' });
});

t.test('MockProvider yields exactly N tokens', async (t) => {
  const p = new MockProvider({ tokens: 5, ttftMs: 0, tokenDelayMs: 0 });
  t.equal(p.name, 'mock');
  t.equal(p.description, 'mock: 5 tokens, ttft 0 ms, 0 ms between tokens');
  const { pieces, result } = await run(p, request(MARA, 'anything', 1));
  t.same(pieces, ['the', ' lantern', ' swings', ' in', ' the']);
  t.same(pieces, [0, 1, 2, 3, 4].map(mockToken));
  t.same(result, { finish: 'stop' });
  const again = await run(p, request(JIANKE, 'something else', 99));
  t.same(again.pieces, pieces, 'whatever the message, character or seed');
});

t.test('mockToken', async (t) => {
  t.equal(mockToken(0), 'the', 'no space before the first token');
  t.equal(mockToken(1), ' lantern');
  t.equal(mockToken(15), '.', 'no space before the full stop');
  t.equal(mockToken(16), ' the', 'the word list repeats, with a space');
  const sentence = Array.from({ length: 16 }, (_, i) => mockToken(i)).join('');
  t.equal(sentence, 'the lantern swings in the rain and the harbor bells answer one by one tonight.');
});

t.test('MockProvider respects maxTokens with finish length', async (t) => {
  const p = new MockProvider({ tokens: 10, ttftMs: 0, tokenDelayMs: 0 });
  const { pieces, result } = await run(p, request(MARA, 'x', 1, 3));
  t.same(pieces, ['the', ' lantern', ' swings']);
  t.same(result, { finish: 'length' });
  const exact = await run(p, request(MARA, 'x', 1, 10));
  t.equal(exact.pieces.length, 10);
  t.same(exact.result, { finish: 'stop' }, 'a budget of exactly N is not a cut');
  const many = await run(new MockProvider({ tokens: 40, ttftMs: 0, tokenDelayMs: 0 }), request(MARA, 'x', 1, 1000));
  t.same(many.pieces, Array.from({ length: 40 }, (_, i) => mockToken(i)));
});

t.test('MockProvider aborts between tokens', async (t) => {
  const p = new MockProvider({ tokens: 100, ttftMs: 0, tokenDelayMs: 5 });
  const ac = new AbortController();
  const gen = p.generate(request(MARA, 'x', 1), ac.signal);
  const got: string[] = [];
  const first = await gen.next();
  if (!first.done) got.push(first.value);
  ac.abort();
  await t.rejects(gen.next(), { name: 'AbortError' });
  t.same(got, ['the'], 'only the first token came out');
  t.same(await gen.next(), { done: true, value: undefined });
});

t.test('MockProvider honours an already-aborted signal, with and without ttft', async (t) => {
  for (const ttftMs of [0, 5]) {
    const ac = new AbortController();
    ac.abort();
    const gen = new MockProvider({ tokens: 3, ttftMs, tokenDelayMs: 0 }).generate(request(MARA, 'x', 1), ac.signal);
    await t.rejects(gen.next(), { name: 'AbortError' }, `ttft ${ttftMs}`);
  }
});

t.test('createProvider', async (t) => {
  const { config } = loadServeConfig([], {}, { scriptTokenDelayMs: 0, mockTokens: 2, mockTtftMs: 0, mockTokenDelayMs: 0 });
  t.ok((await createProvider({ ...config, model: 'script' })) instanceof ScriptProvider);
  const mock = await createProvider({ ...config, model: 'mock' });
  t.ok(mock instanceof MockProvider);
  t.same((await run(mock, request(MARA, 'x', 1))).pieces, ['the', ' lantern']);
  await t.rejects(createProvider({ ...config, model: 'gpt-9' }), { code: 'ERR_CONFIG_INVALID', message: /unknown provider "gpt-9"/ });
  // Keys come from the environment given, and a missing required one is a start-up error.
  await t.rejects(createProvider({ ...config, model: 'dashscope:qwen-plus' }, {}, {}), { code: 'ERR_CONFIG_INVALID', message: /DASHSCOPE_API_KEY/ });
  const chain = await createProvider({ ...config, model: 'openai:m?url=http://127.0.0.1:9/v1&health=0,mock' }, {}, {});
  t.ok(chain instanceof FallbackChain);
  t.equal(chain.name, 'openai>mock');
  await chain.close?.();
});
