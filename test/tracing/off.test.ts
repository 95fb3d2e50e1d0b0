/**
 * Tracing off (the default): no OpenTelemetry SDK module is loaded, and a
 * client's trace context still reaches the model upstream, unchanged, from
 * a WebSocket chat frame and from HTTP headers. Invalid ones are ignored.
 * Its own process (tap runs each file apart), so nothing else loaded the SDK.
 */
import { createRequire } from 'node:module';
import t from 'tap';
import { sdkState } from '../../src/tracing/tracing.js';
import { startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { postJson, testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const CHARACTER = 'tavern-keeper';
const TEXT = 'What is on the menu tonight?';
const TRACEPARENT = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';

t.test('off: the client\'s traceparent goes upstream unchanged, and no SDK is loaded', async (t) => {
  const fake = await startFakeOpenAi();
  t.teardown(() => fake.close());
  const { http, ws } = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0`, upstreamHealthIntervalMs: 0 });

  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  await c.hello();
  const chat = async (id: string, extra: Record<string, unknown>) => {
    const from = c.frames.length;
    c.send({ t: 'chat', id, character: CHARACTER, text: TEXT, ...extra });
    return c.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === id, 5000, from);
  };
  t.equal((await chat('w1', { traceparent: TRACEPARENT, tracestate: 'congo=t61rcWkgMzE' })).t, 'done');
  t.equal((await chat('w2', {})).t, 'done');
  t.equal((await chat('w3', { traceparent: 'not-a-traceparent' })).t, 'done', 'an invalid traceparent does not fail the chat');
  t.equal((await chat('w4', { traceparent: 42 })).t, 'done', 'nor one of another type');

  const r = await postJson(`${http}/v1/chat`, { character: CHARACTER, message: TEXT }, { traceparent: TRACEPARENT.replace(/01$/, '00') });
  t.equal(r.status, 200);
  const oai = await postJson(`${http}/v1/chat/completions`, { model: CHARACTER, messages: [{ role: 'user', content: TEXT }] }, { traceparent: TRACEPARENT, tracestate: 'rojo=1' });
  t.equal(oai.status, 200);

  const headers = fake.chatRequests.map((r) => [r.headers.traceparent, r.headers.tracestate]);
  t.same(headers, [
    [TRACEPARENT, 'congo=t61rcWkgMzE'],
    [undefined, undefined],
    [undefined, undefined],
    [undefined, undefined],
    [TRACEPARENT.replace(/01$/, '00'), undefined],
    [TRACEPARENT, 'rojo=1'],
  ]);

  t.equal(sdkState.loaded, false, 'the SDK module of npcd was never evaluated');
  const loaded = Object.keys(createRequire(import.meta.url).cache).filter((k) => /@opentelemetry[\\/](sdk-|exporter-|otlp-|resources|core)/.test(k));
  t.same(loaded, [], 'no OpenTelemetry SDK package in the module cache');
});
