/**
 * The HTTP providers end to end: real adapters, the real pooled upstream and
 * time limits, against local servers that speak each API's wire format,
 * including its failure modes.
 */
import t, { type Test } from 'tap';
import type { Character } from '../../src/characters/types.js';
import { loadServeConfig, type ServeConfig } from '../../src/config/serve.js';
import { createProvider } from '../../src/providers/index.js';
import type { AttemptOutcome } from '../../src/providers/remote.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from '../../src/providers/types.js';
import type { Upstream } from '../../src/providers/upstream.js';
import { closedPortUrl, DEFAULT_TOKENS, type FakeKind, type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstreams.js';
import { waitFor } from '../helpers/wait.js';

const KINDS: FakeKind[] = ['openai', 'ollama', 'dashscope'];
const ENV = { OPENAI_API_KEY: 'sk-test-openai', DASHSCOPE_API_KEY: 'sk-test-dashscope' };

const REQUEST: GenerateRequest = {
  character: { id: 'mara' } as Character,
  messages: [
    { role: 'system', content: 'You are Mara.' },
    { role: 'user', content: 'Hello there' },
  ],
  userText: 'Hello there',
  state: 'calm',
  maxTokens: 64,
  seed: 7,
};

interface Made {
  provider: ModelProvider;
  upstream: Upstream;
  attempts: AttemptOutcome[];
  retries: string[];
  fallbacks: string[];
}

async function make(t: Test, model: string, overrides: Partial<ServeConfig> = {}): Promise<Made> {
  const { config } = loadServeConfig([], {}, { upstreamHealthIntervalMs: 0, ...overrides, model });
  const made: Partial<Made> = { attempts: [], retries: [], fallbacks: [] };
  made.provider = await createProvider(config, {
    upstream: (u) => (made.upstream ??= u),
    attempt: (_u, outcome) => made.attempts!.push(outcome),
    retry: (_u, reason) => made.retries!.push(reason),
    fallback: (from, reason) => made.fallbacks!.push(`${from}:${reason}`),
  }, ENV);
  t.teardown(() => made.provider!.close?.());
  return made as Made;
}

function spec(kind: FakeKind, fake: FakeUpstream | string, options = ''): string {
  const url = typeof fake === 'string' ? fake : fake.url;
  return `${kind}:fake-model?url=${encodeURIComponent(url)}${options ? '&' + options : ''}`;
}

async function fake(t: Test, kind: FakeKind): Promise<FakeUpstream> {
  const f = await startFakeUpstream(kind, { apiKey: kind === 'ollama' ? undefined : (kind === 'openai' ? ENV.OPENAI_API_KEY : ENV.DASHSCOPE_API_KEY) });
  t.teardown(() => f.close());
  return f;
}

async function run(provider: ModelProvider, signal = new AbortController().signal, onPiece?: (p: string, n: number) => void) {
  const pieces: string[] = [];
  const gen = provider.generate(REQUEST, signal);
  let result: GenerateResult;
  for (;;) {
    const step = await gen.next();
    if (step.done) {
      result = step.value;
      break;
    }
    pieces.push(step.value);
    onPiece?.(step.value, pieces.length);
  }
  return { pieces, text: pieces.join(''), result };
}

/** Runs a turn that must fail; returns the error and the pieces streamed before it. */
async function failing(provider: ModelProvider, signal?: AbortSignal) {
  const pieces: string[] = [];
  const started = Date.now();
  try {
    await run(provider, signal, (p) => pieces.push(p));
  } catch (err) {
    return { err: err as Error & { code?: string; reason?: string }, pieces, ms: Date.now() - started };
  }
  throw new Error('the turn did not fail');
}

for (const kind of KINDS) {
  t.test(`${kind}: streams a reply with usage, with the key only in its header`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'stream', tokens: DEFAULT_TOKENS, usage: { promptTokens: 11, completionTokens: 7 } });
    const { provider } = await make(t, spec(kind, f));
    const { text, result } = await run(provider);
    t.equal(text, DEFAULT_TOKENS.join(''));
    t.same(result, { finish: 'stop', usage: { promptTokens: 11, completionTokens: 7 } });
    t.equal(f.chatRequests.length, 1);
    if (kind !== 'ollama') t.match(f.chatRequests[0]!.headers.authorization, /^Bearer sk-test-/);
    t.notMatch(provider.description, /sk-test/, 'the description never shows the key');
  });

  t.test(`${kind}: a 500 is retried; an upstream that keeps failing gives ERR_UPSTREAM_UNAVAILABLE`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'status', status: 500 }, { type: 'status', status: 503 });
    const m = await make(t, spec(kind, f, 'retries=2'));
    t.equal((await run(m.provider)).text, DEFAULT_TOKENS.join(''), 'the third attempt got through');
    t.same(m.retries, ['unavailable', 'unavailable']);
    t.same(m.attempts, ['unavailable', 'unavailable', 'ok']);
    f.setDefault({ type: 'status', status: 500 });
    const { err } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_UNAVAILABLE');
    t.match(err.message, /answered 500/);
    t.equal(f.chatRequests.length, 3 + 3);
  });

  t.test(`${kind}: a slow first byte times out as ERR_UPSTREAM_TIMEOUT, and the request is aborted`, async (t) => {
    const f = await fake(t, kind);
    f.setDefault({ type: 'stream', firstByteDelayMs: 5_000 });
    const m = await make(t, spec(kind, f, 'ttft=300ms&retries=0'));
    const { err, ms } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_TIMEOUT');
    t.match(err.message, /no first token within 300 ms/);
    t.ok(ms >= 280 && ms < 2_000, `failed after ${ms} ms`);
    await waitFor(() => f.aborted === 1);
    t.equal(m.upstream.stats.inUse, 0, 'the connection slot was released');
  });

  t.test(`${kind}: 429 waits for Retry-After, and fails at once when Retry-After passes the deadline`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'status', status: 429, retryAfter: '1' });
    const m = await make(t, spec(kind, f, 'ttft=5s'));
    const started = Date.now();
    t.equal((await run(m.provider)).text, DEFAULT_TOKENS.join(''));
    const waited = Date.now() - started;
    t.ok(waited >= 950, `waited ${waited} ms for Retry-After: 1`);
    t.same(m.retries, ['rate_limited']);

    f.script({ type: 'status', status: 429, retryAfter: new Date(Date.now() + 60_000).toUTCString() });
    const { err, ms } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_RATE_LIMITED');
    t.ok(ms < 1_000, `gave up at once (${ms} ms) instead of waiting a minute`);
    t.equal(f.chatRequests.length, 3);
  });

  t.test(`${kind}: a stream cut in the middle ends the turn after its tokens, without a retry`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'cut', afterTokens: 3 });
    const m = await make(t, spec(kind, f));
    const { err, pieces } = await failing(m.provider);
    t.equal(pieces.join(''), DEFAULT_TOKENS.slice(0, 3).join(''));
    t.equal(err.code, 'ERR_UPSTREAM_UNAVAILABLE');
    t.match(err.message, /closed in the middle/);
    t.equal(f.chatRequests.length, 1, 'nothing is retried once tokens were sent');
  });

  t.test(`${kind}: a stream that ends without its end marker is ERR_UPSTREAM_BAD_RESPONSE`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'truncate', afterTokens: 2 });
    const m = await make(t, spec(kind, f));
    const { err, pieces } = await failing(m.provider);
    t.equal(pieces.join(''), DEFAULT_TOKENS.slice(0, 2).join(''), 'what came before the cut reached the client');
    t.equal(err.code, 'ERR_UPSTREAM_BAD_RESPONSE');
  });

  t.test(`${kind}: a malformed chunk is ERR_UPSTREAM_BAD_RESPONSE, and the next turn works`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'malformed', afterTokens: 0 });
    const m = await make(t, spec(kind, f));
    const { err } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_BAD_RESPONSE');
    t.equal(f.chatRequests.length, 1, 'a bad response is not retried');
    t.equal((await run(m.provider)).text, DEFAULT_TOKENS.join(''));
  });

  t.test(`${kind}: an error inside the stream keeps its meaning`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'stream-error', afterTokens: 2 });
    const m = await make(t, spec(kind, f));
    const { err, pieces } = await failing(m.provider);
    t.equal(pieces.join(''), DEFAULT_TOKENS.slice(0, 2).join(''));
    t.match(err.code, /^ERR_UPSTREAM_/);
  });

  t.test(`${kind}: a refusal (401) is ERR_UPSTREAM_REJECTED and not retried`, async (t) => {
    const f = await fake(t, kind);
    f.script({ type: 'status', status: 401 });
    const m = await make(t, spec(kind, f));
    const { err } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_REJECTED');
    t.equal(f.chatRequests.length, 1);
  });

  t.test(`${kind}: connection refused is ERR_UPSTREAM_UNAVAILABLE after the retries`, async (t) => {
    const url = (await closedPortUrl()) + (kind === 'openai' ? '/v1' : '');
    const m = await make(t, spec(kind, url, 'retries=1'));
    const { err } = await failing(m.provider);
    t.equal(err.code, 'ERR_UPSTREAM_UNAVAILABLE');
    t.match(err.message, /connection refused/);
    t.same(m.attempts, ['unavailable', 'unavailable']);
  });

  t.test(`${kind}: aborting mid-reply aborts the upstream request and frees its connection`, async (t) => {
    const f = await fake(t, kind);
    f.setDefault({ type: 'stream', tokens: Array.from({ length: 100 }, (_, i) => ` w${i}`), tokenDelayMs: 20 });
    const m = await make(t, spec(kind, f));
    const ac = new AbortController();
    const started = Date.now();
    const err = await run(m.provider, ac.signal, (_p, n) => {
      if (n === 3) ac.abort();
    }).then(() => undefined, (e: Error) => e);
    t.equal(err?.name, 'AbortError');
    t.ok(Date.now() - started < 1_000, 'stopped promptly');
    await waitFor(() => f.aborted === 1);
    t.equal(m.upstream.stats.inUse, 0, 'the connection slot was released');
    t.same(m.attempts, ['cancelled']);
  });
  t.test(`${kind}: relay() hands the same pieces to its sink as they arrive; a pending promise pauses the reading`, async (t) => {
    const f = await fake(t, kind);
    const tokens = Array.from({ length: 12 }, (_, i) => ` w${i}`);
    f.setDefault({ type: 'stream', tokens, tokenDelayMs: 5, usage: { promptTokens: 3, completionTokens: 12 } });
    const m = await make(t, spec(kind, f));
    const pieces: string[] = [];
    let paused = 0;
    const result = await m.provider.relay!(REQUEST, new AbortController().signal, (text) => {
      pieces.push(text);
      // The first piece holds the provider for 150 ms: the rest queue in the socket meanwhile.
      if (pieces.length === 1) {
        paused = Date.now();
        return new Promise((resolve) => setTimeout(resolve, 150));
      }
      if (pieces.length === 2) t.ok(Date.now() - paused >= 140, 'no piece came while the sink held the provider');
    });
    t.equal(pieces.join(''), tokens.join(''));
    t.same(result, { finish: 'stop', usage: { promptTokens: 3, completionTokens: 12 } });
    t.same(m.attempts, ['ok']);
    t.equal(m.upstream.stats.inUse, 0);
  });

  t.test(`${kind}: a relay sink that answers false ends the reply there and closes the upstream request`, async (t) => {
    const f = await fake(t, kind);
    f.setDefault({ type: 'stream', tokens: Array.from({ length: 100 }, (_, i) => ` w${i}`), tokenDelayMs: 20 });
    const m = await make(t, spec(kind, f));
    let n = 0;
    const result = await m.provider.relay!(REQUEST, new AbortController().signal, () => (++n === 3 ? false : undefined));
    t.same(result, { finish: 'stop' });
    t.equal(n, 3, 'no piece after the sink said stop');
    await waitFor(() => f.aborted === 1);
    t.equal(m.upstream.stats.inUse, 0, 'the connection slot was released');
    t.same(m.attempts, ['ok'], 'stopping is not a failure');
  });

  t.test(`${kind}: a generate() consumer that stops early aborts the upstream request`, async (t) => {
    const f = await fake(t, kind);
    f.setDefault({ type: 'stream', tokens: Array.from({ length: 100 }, (_, i) => ` w${i}`), tokenDelayMs: 20 });
    const m = await make(t, spec(kind, f));
    const gen = m.provider.generate(REQUEST, new AbortController().signal);
    t.equal((await gen.next()).done, false);
    const started = Date.now();
    await gen.return({ finish: 'stop' });
    t.ok(Date.now() - started < 1_000, 'returned promptly');
    await waitFor(() => f.aborted === 1);
    t.equal(m.upstream.stats.inUse, 0, 'the connection slot was released');
  });
}


t.test('ollama: keep_alive from the --model spec reaches the request', async (t) => {
  const f = await fake(t, 'ollama');
  const m = await make(t, spec('ollama', f, 'keep_alive=30m'));
  await run(m.provider);
  t.equal((f.chatRequests[0]!.body as { keep_alive?: unknown }).keep_alive, '30m');
});
