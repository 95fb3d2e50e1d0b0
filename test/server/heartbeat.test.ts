import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const TIMING = { heartbeatIntervalMs: 150, idleTimeoutMs: 500 };

t.test('a silent connection is closed with 4408 ERR_HEARTBEAT_TIMEOUT', async (t) => {
  const { ws, server } = await testServer(t, TIMING);
  const c = await TestClient.connect(ws);
  const w = await c.hello();
  t.equal(w.heartbeat_ms, 150, 'welcome tells the client how often to ping');
  const opened = Date.now();
  await c.closed();
  const after = Date.now() - opened;
  t.equal(c.closeCode, 4408);
  t.equal(c.closeReason, 'ERR_HEARTBEAT_TIMEOUT');
  t.equal(c.frames.at(-1)!.code, 'ERR_HEARTBEAT_TIMEOUT', 'an error frame comes before the close');
  t.ok(after >= 450 && after < 2000, `closed after ${after} ms of silence`);
  const closed = await server.metrics.wsClosed.get();
  t.ok(closed.values.some((v) => v.labels.reason === 'heartbeat_timeout' && v.value === 1));
});

t.test('a client that pings stays connected, even while only the server talks', async (t) => {
  const { ws } = await testServer(t, { ...TIMING, model: 'mock', mockTokens: 100, mockTokenDelayMs: 10 });
  const c = await TestClient.connect(ws, 'json');
  t.teardown(() => c.close());
  await c.hello();
  const timer = setInterval(() => c.send({ t: 'ping' }), 150);
  t.teardown(() => clearInterval(timer));
  const done = await c.chat('long', 'gufeng-jianke', 'talk for a while', 5000);
  t.equal(done.t, 'done');
  await sleep(600);
  t.equal(c.closeCode, undefined, 'still open after more than the idle timeout');
});

t.test('receiving a stream does not count as the client being alive', async (t) => {
  const { ws } = await testServer(t, { ...TIMING, model: 'mock', mockTokens: 200, mockTokenDelayMs: 10 });
  const c = await TestClient.connect(ws);
  await c.hello();
  c.send({ t: 'chat', id: 'x', character: 'gufeng-jianke', text: 'go on' });
  await c.closed();
  t.equal(c.closeCode, 4408);
  t.ok(c.frames.filter((f) => f.t === 'token').length > 10, 'frames were flowing when it was closed');
});

t.test('WebSocket protocol pings count as activity', async (t) => {
  const { ws } = await testServer(t, TIMING);
  const c = await TestClient.connect(ws);
  t.teardown(() => c.close());
  await c.hello();
  const timer = setInterval(() => c.ws.ping(), 150);
  t.teardown(() => clearInterval(timer));
  await sleep(900);
  t.equal(c.closeCode, undefined);
});

t.test('pings do not keep a connection that never sends hello: 4408 ERR_HELLO_TIMEOUT', async (t) => {
  const { ws, server } = await testServer(t, { ...TIMING, helloTimeoutMs: 1500, apiKeys: ['k1'] });
  const idle = await TestClient.connect(ws);
  const late = await TestClient.connect(ws);
  t.teardown(() => late.close());
  const timer = setInterval(() => {
    idle.send({ t: 'ping' });
    late.send({ t: 'ping' });
  }, 100);
  t.teardown(() => clearInterval(timer));
  t.equal((await late.hello({ token: 'k1' })).t, 'welcome', 'a hello in time');
  await idle.closed();
  t.equal(idle.closeCode, 4408);
  t.equal(idle.closeReason, 'ERR_HELLO_TIMEOUT');
  t.ok(idle.frames.filter((f) => f.t === 'pong').length >= 3, 'it was pinging all along');
  t.equal(idle.frames.at(-1)!.code, 'ERR_HELLO_TIMEOUT');
  await sleep(300);
  t.equal(late.closeCode, undefined, 'the connection that sent hello stays open past the hello timeout');
  const closed = await server.metrics.wsClosed.get();
  t.ok(closed.values.some((v) => v.labels.reason === 'hello_timeout' && v.value === 1));
});
