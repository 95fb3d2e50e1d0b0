/**
 * Tracing on: spans of each turn go to an OTLP/HTTP receiver (a small HTTP
 * server here, reading the exporter's JSON), with the client's trace as
 * parent, the documented names, attributes and parent/child links; the
 * model upstream receives the llm.request span's context as traceparent.
 */
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import t from 'tap';
import { sdkState } from '../../src/tracing/tracing.js';
import { startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { postJson, testServer } from '../helpers/server.js';
import { waitForValue } from '../helpers/sidecar-process.js';
import { TestClient } from '../helpers/ws-client.js';

const CHARACTER = 'tavern-keeper';
const TEXT = 'What is on the menu tonight?';
const CLIENT_TRACE = '0af7651916cd43dd8448eb211c80319c';
const CLIENT_SPAN = 'b7ad6b7169203331';

interface OtlpValue {
  stringValue?: string;
  intValue?: string | number;
  boolValue?: boolean;
  doubleValue?: number;
}
interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  attributes: { key: string; value: OtlpValue }[];
  status?: { code?: number; message?: string };
  events?: { name: string }[];
}
interface Span {
  traceId: string;
  spanId: string;
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  attributes: Record<string, unknown>;
  status: { code: number; message?: string };
  events: string[];
  service: unknown;
}

/** An OTLP/HTTP receiver: POST /v1/traces with JSON bodies (ExportTraceServiceRequest). */
async function startReceiver() {
  const spans: Span[] = [];
  const contentTypes: string[] = [];
  const read = async (req: IncomingMessage) => {
    const parts: Buffer[] = [];
    for await (const chunk of req) parts.push(chunk as Buffer);
    return Buffer.concat(parts).toString('utf8');
  };
  const value = (v: OtlpValue) => v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue);
  const server = createServer((req, res) => {
    void (async () => {
      const body = await read(req);
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end();
        return;
      }
      contentTypes.push(String(req.headers['content-type']));
      const data = JSON.parse(body) as { resourceSpans: { resource: { attributes: OtlpSpan['attributes'] }; scopeSpans: { spans: OtlpSpan[] }[] }[] };
      for (const rs of data.resourceSpans) {
        const service = rs.resource.attributes.find((a) => a.key === 'service.name')?.value.stringValue;
        for (const ss of rs.scopeSpans) {
          for (const s of ss.spans) {
            spans.push({
              traceId: s.traceId,
              spanId: s.spanId,
              parentSpanId: s.parentSpanId || undefined,
              name: s.name,
              kind: s.kind,
              attributes: Object.fromEntries(s.attributes.map((a) => [a.key, value(a.value)])),
              status: { code: s.status?.code ?? 0, message: s.status?.message },
              events: (s.events ?? []).map((e) => e.name),
              service,
            });
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { spans, contentTypes, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

function until<T>(what: string, get: () => T | undefined, ms = 10_000): Promise<T> {
  return waitForValue(async () => get(), (v) => v !== undefined, ms, what, 50) as Promise<T>;
}

t.test('on: a turn\'s spans are exported with the client\'s trace as parent', async (t) => {
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const fake = await startFakeOpenAi({ default: { type: 'stream', tokenDelayMs: 1 } });
  t.teardown(() => fake.close());
  const { http, ws } = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0`, upstreamHealthIntervalMs: 0, otlpEndpoint: receiver.url });
  t.equal(sdkState.loaded, true, 'the SDK is loaded when an endpoint is configured');
  t.not(Object.keys(createRequire(import.meta.url).cache).filter((k) => /@opentelemetry[\\/]sdk-trace/.test(k)).length, 0, 'and shows in the module cache (what off.test.ts checks)');

  // WebSocket: traceparent in the chat frame.
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  const welcome = await c.hello({ session: 'trace-session-1' });
  c.send({ t: 'chat', id: 'm1', character: CHARACTER, text: TEXT, traceparent: `00-${CLIENT_TRACE}-${CLIENT_SPAN}-01`, tracestate: 'congo=t61rcWkgMzE' });
  t.equal((await c.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === 'm1')).t, 'done');

  const turn = await until('npc.turn of m1', () => receiver.spans.find((s) => s.name === 'npc.turn' && s.attributes['npc.message_id'] === 'm1'));
  const spansOf = (traceId: string) => receiver.spans.filter((s) => s.traceId === traceId);
  await until('the turn\'s children', () => (spansOf(CLIENT_TRACE).length >= 5 ? true : undefined));
  t.equal(turn.traceId, CLIENT_TRACE, 'the client\'s trace');
  t.equal(turn.parentSpanId, CLIENT_SPAN, 'the client\'s span is the parent');
  t.equal(turn.kind, 2, 'SERVER');
  t.equal(turn.service, 'npcd');
  t.match(turn.attributes, { 'npc.id': CHARACTER, 'npc.conversation_id': welcome.session, 'llm.request.model': 'fake-model', 'npc.finish_reason': 'stop' });
  const byName = new Map(spansOf(CLIENT_TRACE).map((s) => [s.name, s]));
  for (const name of ['npc.memory.recall', 'npc.triggers', 'llm.request', 'npc.stream']) {
    t.equal(byName.get(name)?.parentSpanId, turn.spanId, `${name} is a child of npc.turn`);
  }
  const llm = byName.get('llm.request')!;
  t.equal(llm.kind, 3, 'llm.request is a CLIENT span');
  t.match(llm.attributes, { 'llm.request.model': 'fake-model', 'llm.provider': 'openai' });
  t.equal(llm.status.code, 0, 'unset status: fine');
  t.ok((byName.get('npc.stream')?.attributes['npc.stream.tokens'] as number) > 0);

  // The upstream got the llm.request span's context, in the client's trace, with its tracestate.
  const upstream = fake.chatRequests[0]!;
  t.equal(upstream.headers.traceparent, `00-${CLIENT_TRACE}-${llm.spanId}-01`, 'traceparent of llm.request');
  t.equal(upstream.headers.tracestate, 'congo=t61rcWkgMzE', 'tracestate passed on');

  // HTTP: traceparent header on POST /v1/chat; an upstream failure is recorded on the spans.
  fake.script({ type: 'status', status: 500 });
  const httpTrace = '11111111111111111111111111111111';
  const failed = await postJson(`${http}/v1/chat`, { session_id: 'trace-session-2', id: 'h1', character: CHARACTER, message: TEXT }, { traceparent: `00-${httpTrace}-2222222222222222-01` });
  t.equal(failed.status, 503);
  const failedTurn = await until('npc.turn of h1', () => receiver.spans.find((s) => s.name === 'npc.turn' && s.attributes['npc.message_id'] === 'h1'));
  t.equal(failedTurn.traceId, httpTrace);
  t.equal(failedTurn.parentSpanId, '2222222222222222');
  t.equal(failedTurn.status.code, 2, 'ERROR');
  t.match(failedTurn.status.message, /answered 500/);
  t.equal(failedTurn.attributes['error.type'], 'ERR_UPSTREAM_UNAVAILABLE');
  const failedLlm = await until('llm.request of h1', () => receiver.spans.find((s) => s.name === 'llm.request' && s.traceId === httpTrace));
  t.equal(failedLlm.status.code, 2);
  t.ok(failedLlm.events.includes('exception'), 'the error is recorded as an exception event');
  t.equal(fake.chatRequests[1]!.headers.traceparent, `00-${httpTrace}-${failedLlm.spanId}-01`);

  // No client trace context: a new trace, whose root is npc.turn; an invalid traceparent likewise.
  const fresh = await postJson(`${http}/v1/chat`, { session_id: 'trace-session-3', id: 'h2', character: CHARACTER, message: TEXT }, { traceparent: 'bogus' });
  t.equal(fresh.status, 200);
  const root = await until('npc.turn of h2', () => receiver.spans.find((s) => s.name === 'npc.turn' && s.attributes['npc.message_id'] === 'h2'));
  t.equal(root.parentSpanId, undefined, 'a root span');
  t.match(root.traceId, /^[0-9a-f]{32}$/);
  t.not(root.traceId, CLIENT_TRACE);
  t.match(fake.chatRequests[2]!.headers.traceparent, new RegExp(`^00-${root.traceId}-[0-9a-f]{16}-01$`));
  t.ok(receiver.contentTypes.every((ct) => ct.startsWith('application/json')), 'OTLP/HTTP with JSON');
});

t.test('on: a client\'s unsampled trace is not exported but still propagated', async (t) => {
  const receiver = await startReceiver();
  t.teardown(() => receiver.close());
  const fake = await startFakeOpenAi();
  t.teardown(() => fake.close());
  const { http, server } = await testServer(t, { model: `openai:fake-model?url=${fake.url}&retries=0`, upstreamHealthIntervalMs: 0, otlpEndpoint: receiver.url, recallK: 0 });
  const trace = '33333333333333333333333333333333';
  const r = await postJson(`${http}/v1/chat`, { session_id: 'unsampled', id: 'u1', character: CHARACTER, message: TEXT }, { traceparent: `00-${trace}-4444444444444444-00` });
  t.equal(r.status, 200);
  t.match(fake.chatRequests[0]!.headers.traceparent, new RegExp(`^00-${trace}-[0-9a-f]{16}-00$`), 'same trace, not sampled');
  await server.shutdown(0);
  t.same(receiver.spans.filter((s) => s.traceId === trace), [], 'nothing exported for it');
});
