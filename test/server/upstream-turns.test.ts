/**
 * Turns served by an HTTP model upstream, through the whole server: replies
 * stream over the WebSocket, each upstream failure reaches the client as an
 * error frame with its own code and the session stays usable, a cancel frame
 * aborts the upstream request, and the pool's metrics and health show.
 */
import OpenAI from 'openai';
import t, { type Test } from 'tap';
import type { ServeConfig } from '../../src/config/serve.js';
import { createLogger } from '../../src/log.js';
import { DEFAULT_TOKENS, type FakeUpstream, startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { getJson, postJson, testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';
import { waitFor } from '../helpers/wait.js';

const CHARACTER = 'tavern-keeper';
const TEXT = 'What is on the menu tonight?';

async function setup(t: Test, options = '', overrides: Partial<ServeConfig> = {}) {
  const fake = await startFakeOpenAi();
  t.teardown(() => fake.close());
  const srv = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0&ttft=1s${options}`, upstreamHealthIntervalMs: 0, ...overrides });
  const client = await TestClient.connect(srv.ws);
  t.teardown(() => client.close());
  await client.hello();
  return { fake, srv, client };
}


t.test('a reply streams from the upstream with the character\'s prompt', async (t) => {
  const { fake, client } = await setup(t);
  const done = await client.chat('m1', CHARACTER, TEXT);
  t.equal(done.t, 'done');
  t.equal(done.text, DEFAULT_TOKENS.join(''));
  // Tokens that arrive together leave together: the frames carry the text, not one frame per upstream chunk.
  t.equal(client.framesFor('m1').filter((f) => f.t === 'token').map((f) => f.text).join(''), DEFAULT_TOKENS.join(''));
  const body = fake.chatRequests[0]!.body as { model: string; messages: { role: string; content: string }[]; stream: boolean };
  t.equal(body.model, 'fake-model');
  t.equal(body.stream, true);
  t.match(body.messages[0], { role: 'system', content: /Mara Quill/ });
  t.match(body.messages.at(-1), { role: 'user', content: TEXT });
});

t.test('each upstream failure has its own code, and the session keeps working', async (t) => {
  const { fake, client } = await setup(t);
  const cases: [Parameters<FakeUpstream['script']>[0], string][] = [
    [{ type: 'status', status: 429, retryAfter: '120' }, 'ERR_UPSTREAM_RATE_LIMITED'],
    [{ type: 'status', status: 500 }, 'ERR_UPSTREAM_UNAVAILABLE'],
    [{ type: 'stream', firstByteDelayMs: 3_000 }, 'ERR_UPSTREAM_TIMEOUT'],
    [{ type: 'malformed', afterTokens: 1 }, 'ERR_UPSTREAM_BAD_RESPONSE'],
    [{ type: 'status', status: 401 }, 'ERR_UPSTREAM_REJECTED'],
    [{ type: 'cut', afterTokens: 2 }, 'ERR_UPSTREAM_UNAVAILABLE'],
  ];
  let n = 0;
  for (const [behaviour, code] of cases) {
    fake.script(behaviour);
    const failed = await client.chat(`f${++n}`, CHARACTER, TEXT);
    t.match(failed, { t: 'error', code }, `${behaviour.type} ${'status' in behaviour ? behaviour.status : ''} → ${code}`);
    const ok = await client.chat(`ok${n}`, CHARACTER, TEXT);
    t.equal(ok.t, 'done', 'the next turn in the same session works');
  }
});

t.test('HTTP chat answers an upstream failure with its status and code', async (t) => {
  const { fake, srv } = await setup(t);
  fake.script({ type: 'status', status: 429, retryAfter: '120' });
  const res = await postJson(`${srv.http}/v1/chat`, { character: CHARACTER, message: TEXT });
  t.equal(res.status, 429);
  t.equal(res.body.error.code, 'ERR_UPSTREAM_RATE_LIMITED');
});

t.test('a cancel frame aborts the upstream request at once', async (t) => {
  const { fake, client, srv } = await setup(t);
  fake.setDefault({ type: 'stream', tokens: Array.from({ length: 200 }, (_, i) => ` w${i}`), tokenDelayMs: 20 });
  client.send({ t: 'chat', id: 'long', character: CHARACTER, text: TEXT });
  await client.waitFor((f) => f.t === 'token' && f.id === 'long');
  client.send({ t: 'cancel', id: 'long' });
  const done = await client.waitFor((f) => f.t === 'done' && f.id === 'long');
  t.equal(done.finish, 'cancelled');
  await waitFor(() => fake.aborted === 1);
  const metrics = (await getJson(`${srv.http}/metrics`)).body as string;
  t.match(metrics, /npcd_provider_requests_total\{provider="openai:fake-model",outcome="cancelled"\} 1/);
});

t.test('pool metrics and readiness follow the upstream', async (t) => {
  const { fake, srv, client } = await setup(t, '&health=100ms');
  await client.chat('m1', CHARACTER, TEXT);
  let metrics = (await getJson(`${srv.http}/metrics`)).body as string;
  t.match(metrics, /npcd_provider_requests_total\{provider="openai:fake-model",outcome="ok"\} 1/);
  t.match(metrics, /npcd_upstream_connections\{upstream="openai:fake-model",state="idle"\} 1/);
  t.match(metrics, /npcd_upstream_connections_opened_total\{upstream="openai:fake-model"\} 1/);
  t.match(metrics, /npcd_upstream_healthy\{upstream="openai:fake-model"\} 1/);
  t.equal((await getJson(`${srv.http}/readyz`)).status, 200);

  fake.healthy = false;
  await waitFor(() => fake.healthChecks >= 2);
  let ready = await getJson(`${srv.http}/readyz`);
  for (let i = 0; i < 100 && ready.status === 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    ready = await getJson(`${srv.http}/readyz`);
  }
  t.equal(ready.status, 503);
  t.equal(ready.body.reason, 'upstreams_unhealthy');
  t.match(ready.body.upstreams, [{ name: 'openai:fake-model', healthy: false, reason: /health check answered 503/ }]);
  metrics = (await getJson(`${srv.http}/metrics`)).body as string;
  t.match(metrics, /npcd_upstream_healthy\{upstream="openai:fake-model"\} 0/);
  const failed = await client.chat('m2', CHARACTER, TEXT);
  t.match(failed, { t: 'error', code: 'ERR_UPSTREAM_UNAVAILABLE', message: /out of rotation/ });

  fake.healthy = true;
  await waitFor(() => fake.healthChecks >= 4);
  for (let i = 0; i < 100 && ready.status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 50));
    ready = await getJson(`${srv.http}/readyz`);
  }
  t.equal(ready.status, 200, 'back in rotation');
});

t.test('a chain ending in the script provider keeps characters answering while the upstream is down', async (t) => {
  const fake = await startFakeOpenAi();
  t.teardown(() => fake.close());
  fake.setDefault({ type: 'status', status: 503 });
  const srv = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0,script`, upstreamHealthIntervalMs: 0 });
  const res = await postJson(`${srv.http}/v1/chat`, { character: CHARACTER, message: TEXT });
  t.equal(res.status, 200);
  t.ok(res.body.reply.length > 0, 'the script provider answered');
  const metrics = (await getJson(`${srv.http}/metrics`)).body as string;
  t.match(metrics, /npcd_provider_fallbacks_total\{provider="openai:fake-model",reason="unavailable"\} 1/);
});

t.test('an OpenAI client through npcd to an OpenAI-compatible upstream: options reach the upstream, the reply streams back', async (t) => {
  const { fake, srv } = await setup(t);
  fake.script({ type: 'stream', tokens: DEFAULT_TOKENS, usage: { promptTokens: 42, completionTokens: 7 } });
  const client = new OpenAI({ baseURL: `${srv.http}/v1`, apiKey: 'unused', maxRetries: 0, timeout: 10_000 });
  const stream = await client.chat.completions.create({
    model: CHARACTER,
    messages: [
      { role: 'system', content: 'Keep it short.' },
      { role: 'user', content: TEXT, name: 'Traveller' },
    ],
    stream: true,
    stream_options: { include_usage: true },
    temperature: 0.3,
    top_p: 0.9,
    max_tokens: 40,
    stop: ['\n\n'],
  });
  let text = '';
  let usage: unknown;
  let finish: string | null | undefined;
  for await (const chunk of stream) {
    text += chunk.choices[0]?.delta.content ?? '';
    finish = chunk.choices[0]?.finish_reason ?? finish;
    usage = chunk.usage ?? usage;
  }
  t.equal(text, DEFAULT_TOKENS.join(''));
  t.equal(finish, 'stop');
  t.match(usage, { prompt_tokens: 42, completion_tokens: 7 });
  const body = fake.chatRequests[0]!.body as Record<string, unknown>;
  t.match(body, { model: 'fake-model', temperature: 0.3, top_p: 0.9, max_tokens: 40, stop: ['\n\n'], stream: true });
  const messages = body.messages as { role: string; content: string }[];
  t.match(messages[0], { role: 'system', content: /Mara Quill/ }, "npcd's character prompt comes first");
  t.ok(messages.some((m) => m.role === 'system' && m.content === 'Keep it short.'), "the client's system message is kept");
  t.match(messages.at(-1), { role: 'user', content: TEXT });

  // An upstream failure before the first token answers with a real HTTP status the client sees.
  fake.script({ type: 'status', status: 429, retryAfter: '120' });
  const err = await client.chat.completions.create({ model: CHARACTER, messages: [{ role: 'user', content: TEXT }] }).then(() => undefined, (e: { status?: number; code?: string }) => e);
  t.equal(err?.status, 429);
  t.equal(err?.code, 'ERR_UPSTREAM_RATE_LIMITED');
});

t.test('the API key reaches the upstream and nothing else: not logs, error frames, metrics or /readyz', async (t) => {
  const KEY = 'sk-test-7f3a9c1e5b2d';
  const fake = await startFakeOpenAi();
  t.teardown(() => fake.close());
  // Upstreams quote the key back in their own errors; npcd must not pass it on.
  fake.script({ type: 'status', status: 401, body: { error: { message: `Incorrect API key provided: ${KEY}.`, type: 'invalid_request_error', code: 'invalid_api_key' } } });
  const lines: string[] = [];
  const logger = createLogger('debug', { write: (line: string) => void lines.push(line) });
  const saved = process.env.OPENAI_API_KEY;
  process.env.OPENAI_API_KEY = KEY;
  t.teardown(() => {
    if (saved === undefined) delete process.env.OPENAI_API_KEY;
    else process.env.OPENAI_API_KEY = saved;
  });
  const srv = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0`, upstreamHealthIntervalMs: 0 }, { logger });
  const client = await TestClient.connect(srv.ws);
  t.teardown(() => client.close());
  await client.hello();
  const failed = await client.chat('k1', CHARACTER, TEXT);
  t.match(failed, { t: 'error', code: 'ERR_UPSTREAM_REJECTED', message: /Incorrect API key provided: \*\*\*/ });
  t.equal(fake.chatRequests[0]!.headers.authorization, `Bearer ${KEY}`, 'the upstream got the key');
  const seen = [
    JSON.stringify(client.frames),
    lines.join(''),
    (await getJson(`${srv.http}/metrics`)).body as string,
    JSON.stringify((await getJson(`${srv.http}/readyz`)).body),
  ].join('\n');
  t.ok(lines.some((l) => l.includes('turn failed')), 'the failure was logged');
  t.notOk(seen.includes(KEY), 'the key appears nowhere else');
});
