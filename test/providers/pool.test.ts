/**
 * The upstream pool: connection limits under many concurrent turns,
 * keep-alive reuse (connections counted at the server), the bounded wait
 * for a connection, health checks taking an upstream out of rotation and
 * back, and fallback chains.
 */
import t, { type Test } from 'tap';
import type { Character } from '../../src/characters/types.js';
import { loadServeConfig, type ServeConfig } from '../../src/config/serve.js';
import { FallbackChain } from '../../src/providers/chain.js';
import { createProvider } from '../../src/providers/index.js';
import type { GenerateRequest, ModelProvider } from '../../src/providers/types.js';
import type { Upstream } from '../../src/providers/upstream.js';
import { closedPortUrl, DEFAULT_TOKENS, type FakeUpstream, freePort, startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { waitFor } from '../helpers/wait.js';

const REQUEST: GenerateRequest = {
  character: { id: 'mara' } as Character,
  messages: [{ role: 'user', content: 'Hello' }],
  userText: 'Hello',
  state: 'calm',
  maxTokens: 64,
  seed: 1,
};

async function make(t: Test, model: string, overrides: Partial<ServeConfig> = {}) {
  const { config } = loadServeConfig([], {}, { upstreamHealthIntervalMs: 0, mockTokens: 3, ...overrides, model });
  const upstreams: Upstream[] = [];
  const fallbacks: string[] = [];
  const provider = await createProvider(config, { upstream: (u) => upstreams.push(u), fallback: (from, reason) => fallbacks.push(`${from}:${reason}`) }, {});
  t.teardown(() => provider.close?.());
  return { provider, upstream: upstreams[0]!, upstreams, fallbacks };
}

async function fake(t: Test): Promise<FakeUpstream> {
  const f = await startFakeOpenAi();
  t.teardown(() => f.close());
  return f;
}

async function text(provider: ModelProvider, signal = new AbortController().signal): Promise<string> {
  let out = '';
  for await (const piece of provider.generate(REQUEST, signal)) out += piece;
  return out;
}


t.test('keep-alive: sequential turns reuse one connection', async (t) => {
  const f = await fake(t);
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}`);
  for (let i = 0; i < 20; i++) t.equal(await text(provider), DEFAULT_TOKENS.join(''));
  t.equal(f.chatRequests.length, 20);
  t.equal(f.connections, 1, 'twenty replies over one TCP connection');
  t.equal(upstream.stats.opened, 1);
  await waitFor(() => upstream.stats.inUse === 0);
  t.equal(upstream.stats.idle, 1, 'the connection stays open, idle');
});

t.test('many concurrent turns never exceed the connection limit, and all complete', async (t) => {
  const f = await fake(t);
  f.setDefault({ type: 'stream', tokenDelayMs: 5 });
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}&connections=8&acquire=10s`);
  let maxWaiting = 0;
  const timer = setInterval(() => (maxWaiting = Math.max(maxWaiting, upstream.stats.waiting)), 5);
  const replies = await Promise.all(Array.from({ length: 60 }, () => text(provider)));
  clearInterval(timer);
  t.ok(replies.every((r) => r === DEFAULT_TOKENS.join('')), 'every turn got its reply');
  t.ok(f.maxInFlight <= 8, `at most 8 requests at once at the upstream (saw ${f.maxInFlight})`);
  t.ok(f.connections <= 8, `at most 8 connections opened (saw ${f.connections})`);
  t.ok(maxWaiting > 0, `turns waited for a connection (up to ${maxWaiting})`);
  t.equal(upstream.stats.waiting, 0);
  await waitFor(() => upstream.stats.inUse === 0);
});

t.test('the wait for a connection is bounded: ERR_UPSTREAM_UNAVAILABLE after the acquire timeout', async (t) => {
  const f = await fake(t);
  f.script({ type: 'hang' });
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}&connections=1&acquire=200ms&retries=0&ttft=10s`);
  const hold = new AbortController();
  const held = text(provider, hold.signal).catch((e: Error) => e);
  await f.waitForRequests(1);
  const started = Date.now();
  const err = await text(provider).then(() => undefined, (e: Error & { code?: string }) => e);
  const ms = Date.now() - started;
  t.equal(err?.code, 'ERR_UPSTREAM_UNAVAILABLE');
  t.match(err?.message, /no free connection .* within 200 ms/);
  t.ok(ms >= 190 && ms < 1_500, `gave up after ${ms} ms`);
  t.equal(f.chatRequests.length, 1, 'the waiting turn never reached the upstream');
  hold.abort();
  t.equal(((await held) as Error).name, 'AbortError');
  await waitFor(() => upstream.stats.inUse === 0);
  t.equal(await text(provider), DEFAULT_TOKENS.join(''), 'the freed connection serves the next turn');
});

t.test('a turn cancelled while waiting for a connection leaves the line', async (t) => {
  const f = await fake(t);
  f.script({ type: 'hang' });
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}&connections=1&acquire=10s&ttft=20s`);
  const hold = new AbortController();
  const held = text(provider, hold.signal).catch((e: Error) => e);
  await f.waitForRequests(1);
  const waiter = new AbortController();
  const waiting = text(provider, waiter.signal).catch((e: Error) => e);
  await waitFor(() => upstream.stats.waiting === 1);
  waiter.abort();
  t.equal(((await waiting) as Error).name, 'AbortError');
  t.equal(upstream.stats.waiting, 0);
  hold.abort();
  await held;
});

t.test('health checks take a failing upstream out of rotation and bring it back', async (t) => {
  const f = await fake(t);
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}&health=100ms`);
  const changes: boolean[] = [];
  upstream.onHealthChange((healthy) => changes.push(healthy));
  await waitFor(() => f.healthChecks >= 1);
  t.ok(upstream.isHealthy);
  f.healthy = false;
  await waitFor(() => !upstream.isHealthy);
  t.match(upstream.health(), { healthy: false, reason: /503/ });
  const before = f.chatRequests.length;
  const err = await text(provider).then(() => undefined, (e: Error & { code?: string }) => e);
  t.equal(err?.code, 'ERR_UPSTREAM_UNAVAILABLE');
  t.match(err?.message, /out of rotation/);
  t.equal(f.chatRequests.length, before, 'no request is sent to an upstream out of rotation');
  f.healthy = true;
  await waitFor(() => upstream.isHealthy);
  t.same(changes, [false, true]);
  t.equal(await text(provider), DEFAULT_TOKENS.join(''));
});

t.test('connection failures of real turns also take an upstream out of rotation', async (t) => {
  const url = (await closedPortUrl()) + '/v1';
  const { provider, upstream } = await make(t, `openai:m?url=${url}&retries=0&health=1h`);
  for (let i = 0; i < 2; i++) await text(provider).catch(() => undefined);
  t.notOk(upstream.isHealthy, 'two refused connections in a row');
});

t.test('with health checks off, an upstream is never out of rotation: the first turn after an outage reaches it', async (t) => {
  const port = await freePort();
  const { provider, upstream } = await make(t, `openai:m?url=http://127.0.0.1:${port}/v1&retries=0&health=0`);
  for (let i = 0; i < 3; i++) {
    const err = await text(provider).then(() => undefined, (e: Error & { code?: string }) => e);
    t.equal(err?.code, 'ERR_UPSTREAM_UNAVAILABLE');
    t.match(err?.message, /connection refused/, 'each turn tried the upstream');
  }
  t.ok(upstream.isHealthy, 'nothing would bring it back, so it never leaves');
  const f = await startFakeOpenAi({ port });
  t.teardown(() => f.close());
  t.equal(await text(provider), DEFAULT_TOKENS.join(''));
  t.equal(f.chatRequests.length, 1);
});

t.test("a turn's retries go on while its upstream leaves rotation, and ride out a short outage", async (t) => {
  const port = await freePort();
  const { provider, upstream } = await make(t, `openai:m?url=http://127.0.0.1:${port}/v1&retries=6&health=1h`);
  const changes: boolean[] = [];
  let up: Promise<FakeUpstream> | undefined;
  upstream.onHealthChange((healthy) => {
    changes.push(healthy);
    // The upstream comes up as soon as it has left rotation (after two refusals).
    if (!healthy) up ??= startFakeOpenAi({ port });
  });
  t.equal(await text(provider), DEFAULT_TOKENS.join(''), 'a retry after the upstream left rotation reached it');
  const f = await up!;
  t.teardown(() => f.close());
  t.equal(f.chatRequests.length, 1);
  t.same(changes, [false, true], 'out after two refusals, back with the answer');
  // A new turn skips an upstream out of rotation without trying it (covered above); this one is back.
  t.ok(upstream.isHealthy);
});

t.test('a passing health check does not count as a request that proves the upstream: the next check still runs', async (t) => {
  const f = await fake(t);
  const { provider, upstream } = await make(t, `openai:m?url=${f.url}&health=1h`);
  t.equal(await upstream.checkHealth(), true);
  t.equal(await upstream.checkHealth(), true);
  t.equal(f.healthChecks, 2, 'two checks, two requests');
  // A real request answered within the interval makes the next check needless.
  await text(provider);
  t.equal(await upstream.checkHealth(), true);
  t.equal(f.healthChecks, 2, 'skipped after a real answer');
});

t.test('a fallback chain moves a failing turn to the next provider before its first token', async (t) => {
  const f = await fake(t);
  const down = (await closedPortUrl()) + '/v1';
  // health=1h: rotation on, and no check comes within the test.
  const { provider, upstreams, fallbacks } = await make(t, `openai:a?url=${down}&retries=0&health=1h,openai:b?url=${f.url},mock`);
  t.ok(provider instanceof FallbackChain);
  t.equal(await text(provider), DEFAULT_TOKENS.join(''), 'the second upstream answered');
  t.same(fallbacks, ['openai:a:unavailable'], 'the entry is named KIND:MODEL, as in the upstream metrics');
  // The first upstream is now out of rotation (2 failures): it is skipped without a try.
  await text(provider);
  t.notOk(upstreams[0]!.isHealthy);
  t.same(fallbacks, ['openai:a:unavailable', 'openai:a:unavailable']);
  await text(provider);
  t.equal(fallbacks.length, 2, 'skipped, not tried');
  // Both upstreams failing: the mock at the end answers.
  f.setDefault({ type: 'status', status: 401 });
  t.equal(await text(provider), 'the lantern swings');
});

t.test('once a token was sent, a failure ends the turn instead of falling back', async (t) => {
  const f = await fake(t);
  f.script({ type: 'cut', afterTokens: 2 });
  const { provider, fallbacks } = await make(t, `openai:a?url=${f.url},mock`);
  const pieces: string[] = [];
  const err = await (async () => {
    for await (const p of provider.generate(REQUEST, new AbortController().signal)) pieces.push(p);
  })().then(() => undefined, (e: Error & { code?: string }) => e);
  t.equal(pieces.join(''), DEFAULT_TOKENS.slice(0, 2).join(''));
  t.equal(err?.code, 'ERR_UPSTREAM_UNAVAILABLE');
  t.same(fallbacks, []);
});

t.test('a consumer that stops reading early frees the connection (the chain closes the inner stream)', async (t) => {
  const f = await fake(t);
  f.setDefault({ type: 'stream', tokens: Array.from({ length: 50 }, (_, i) => ` t${i}`), tokenDelayMs: 10 });
  const { provider, upstream } = await make(t, `openai:a?url=${f.url},mock`);
  for await (const p of provider.generate(REQUEST, new AbortController().signal)) {
    if (p) break;
  }
  await waitFor(() => f.aborted === 1);
  t.equal(upstream.stats.inUse, 0);
});
