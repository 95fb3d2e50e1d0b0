import pino from 'pino';
import t from 'tap';
import { testServer, postJson } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

t.test('--max-connections refuses upgrades beyond the limit with 503', async (t) => {
  const { ws, http } = await testServer(t, { maxConnections: 2 });
  const a = await TestClient.connect(ws);
  const b = await TestClient.connect(ws);
  t.teardown(() => Promise.all([a.close(), b.close()]));
  await t.rejects(TestClient.connect(ws), /upgrade refused: 503/);
  const res = await fetch(`${http}/metrics`);
  t.match(await res.text(), /http_requests_failed_total\{route="\/v1\/ws",reason="ERR_CONNECTION_LIMIT"\} 1/);
  await a.close();
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  t.equal((await c.hello()).t, 'welcome', 'a freed slot can be used again');
});

t.test('--max-sessions refuses new sessions, keeps existing ones', async (t) => {
  const { ws, http } = await testServer(t, { maxSessions: 2, model: 'mock', mockTokens: 2 });
  t.equal((await postJson(`${http}/v1/chat`, { session_id: 's1', character: '古风剑客', message: 'a' })).status, 200);
  t.equal((await postJson(`${http}/v1/chat`, { session_id: 's2', character: '古风剑客', message: 'a' })).status, 200);
  const third = await postJson(`${http}/v1/chat`, { session_id: 's3', character: '古风剑客', message: 'a' });
  t.equal(third.status, 503);
  t.equal(third.body.error.code, 'ERR_SESSION_LIMIT');
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  const err = await c.hello();
  t.equal(err.code, 'ERR_SESSION_LIMIT');
  t.equal(c.closeCode, undefined, 'the connection stays open');
  t.equal((await c.hello({ session: 's1' })).t, 'welcome', 'an existing session can still be opened');
  t.equal((await postJson(`${http}/v1/chat`, { session_id: 's2', character: '古风剑客', message: 'b' })).status, 200);
});

t.test('idle sessions expire after --session-ttl', async (t) => {
  const { http, server } = await testServer(t, { sessionTtlMs: 1000, model: 'mock', mockTokens: 2 });
  await postJson(`${http}/v1/chat`, { session_id: 'old', character: '古风剑客', message: 'a' });
  const c = await TestClient.connect(`ws://127.0.0.1:${server.port}/v1/ws`);
  t.teardown(() => c.close());
  await c.hello({ session: 'connected' });
  t.equal(server.engine.sweep(Date.now() + 500), 0, 'not before the TTL');
  t.equal(server.engine.sweep(Date.now() + 1500), 1, 'the idle one expires; the connected one stays');
  t.equal(server.engine.peek('old'), undefined);
  t.ok(server.engine.peek('connected'));
  t.equal((await fetch(`${http}/v1/sessions/old`)).status, 404);
  const m = await (await fetch(`${http}/metrics`)).text();
  t.match(m, /npcd_sessions_expired_total 1/);
  t.match(m, /npcd_sessions 1/);
});

t.test('--max-history-turns bounds what a session keeps', async (t) => {
  const { http } = await testServer(t, { maxHistoryTurns: 4, model: 'mock', mockTokens: 1 });
  for (let i = 0; i < 5; i++) await postJson(`${http}/v1/chat`, { session_id: 'h', id: `m${i}`, character: '古风剑客', message: `n${i}` });
  const res = await (await fetch(`${http}/v1/sessions/h/messages`)).json() as { messages: { id: string; role: string }[] };
  t.same(res.messages.map((m) => `${m.role}:${m.id}`), ['user:m3', 'assistant:m3', 'user:m4', 'assistant:m4']);
  const dup = await postJson(`${http}/v1/chat`, { session_id: 'h', id: 'm4', character: '古风剑客', message: 'again' });
  t.equal(dup.status, 409);
  t.equal(dup.body.error.code, 'ERR_CHAT_DUPLICATE_ID');
});

t.test('--max-reply-tokens cuts a reply with finish "length"', async (t) => {
  const { http } = await testServer(t, { maxReplyTokens: 3, model: 'mock', mockTokens: 16 });
  const res = await postJson(`${http}/v1/chat`, { character: '古风剑客', message: 'hi' });
  t.equal(res.body.finish, 'length');
  t.equal(res.body.usage.completion_tokens, 3);
});

t.test('sessions evicted by --memory-budget are counted and the first is logged', async (t) => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'warn' }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const { http, server } = await testServer(t, { memoryBudgetBytes: 1024 * 1024, recallK: 0 }, { logger });
  const message = '长'.repeat(3900);
  // About 16 KB a session (a message of 3,900 characters counted at 2 bytes each, and its reply): 200 pass 1 MiB.
  for (let i = 0; i < 200; i++) {
    const r = await postJson(`${http}/v1/chat`, { session_id: `big-${i}`, character: '古风剑客', message });
    t.equal(r.status, 200);
  }
  const text = await server.metrics.registry.metrics();
  const evicted = Number(/^npcd_store_evictions_total (\d+)$/m.exec(text)?.[1]);
  t.ok(evicted > 0, `${evicted} sessions evicted`);
  const warnings = lines.filter((l) => String(l.msg).startsWith('the in-process store reached --memory-budget'));
  t.equal(warnings.length, 1, 'one warning when the budget is first reached, not one per eviction');
});
