import t from 'tap';
import { startCli } from '../helpers/child.js';
import { TestClient } from '../helpers/ws-client.js';

t.test('SIGTERM lets in-flight replies finish, then closes connections with 1001', async (t) => {
  const p = await startCli(t, ['--model', 'mock', '--mock-tokens', '20', '--mock-token-delay', '40ms', '--shutdown-timeout', '5s']);
  const url = `ws://127.0.0.1:${p.port}/v1/ws`;
  const c = await TestClient.connect(url);
  await c.hello();
  // An HTTP request in flight too.
  const httpReply = fetch(`http://127.0.0.1:${p.port}/v1/chat`, { method: 'POST', body: JSON.stringify({ character: 'gufeng-jianke', message: 'hi' }) });
  c.send({ t: 'chat', id: 'inflight', character: 'gufeng-jianke', text: 'a story' });
  await c.waitFor((f) => f.t === 'token');
  await new Promise((r) => setTimeout(r, 50));
  const t0 = Date.now();
  p.child.kill('SIGTERM');

  await new Promise((r) => setTimeout(r, 100));
  await t.rejects(TestClient.connect(url), 'new connections are refused while draining');

  const done = await c.waitFor((f) => f.t === 'done' && f.id === 'inflight', 5000);
  t.equal(done.finish, 'stop', 'the reply in flight finished');
  t.equal(c.framesFor('inflight').filter((f) => f.t === 'token').length, 20);
  const res = await httpReply;
  t.equal(res.status, 200, 'the HTTP request in flight got its reply');
  await c.closed();
  t.equal(c.closeCode, 1001);
  t.equal(c.frames.at(-1)!.code, 'ERR_SHUTTING_DOWN');
  const { code } = await p.exited;
  t.equal(code, 0, 'exit code 0');
  t.ok(Date.now() - t0 < 4000, 'did not wait for the deadline');
  t.ok(p.logs.some((l) => l.msg === 'shutdown complete'));
});

t.test('replies still running at the deadline are cancelled', async (t) => {
  const p = await startCli(t, ['--model', 'mock', '--mock-tokens', '1000', '--mock-token-delay', '20ms', '--max-reply-tokens', '1000', '--shutdown-timeout', '300ms']);
  const c = await TestClient.connect(`ws://127.0.0.1:${p.port}/v1/ws`);
  await c.hello();
  c.send({ t: 'chat', id: 'slow', character: 'gufeng-jianke', text: 'a very long story' });
  await c.waitFor((f) => f.t === 'token');
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  const done = await c.waitFor((f) => f.t === 'done', 5000);
  t.equal(done.finish, 'cancelled');
  const waited = Date.now() - t0;
  t.ok(waited >= 250 && waited < 2000, `cancelled at the deadline (${waited} ms)`);
  await c.closed();
  t.equal(c.closeCode, 1001);
  t.equal((await p.exited).code, 0);
});

t.test('SIGTERM with nothing in flight exits at once', async (t) => {
  const p = await startCli(t, []);
  const t0 = Date.now();
  p.child.kill('SIGTERM');
  t.equal((await p.exited).code, 0);
  t.ok(Date.now() - t0 < 1500);
});
