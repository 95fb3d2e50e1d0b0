/**
 * Redis restarted while npcd is under load: turns fail fast with
 * ERR_STORE_UNAVAILABLE while it is down, /readyz and npcd_store_up say so,
 * the process stays up, and once Redis is back every client's turns succeed
 * again without restarting npcd. Redis runs with AOF (as docs/memory.md
 * advises), so sessions and their history survive the restart.
 */
import t from 'tap';
import { startCli, type ServerProcess } from '../helpers/child.js';
import { RedisServer, requireRedis } from '../helpers/redis.js';
import { getJson } from '../helpers/server.js';
import { parsePrometheus, select } from '../helpers/sidecar-process.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

requireRedis();

const CHARACTER = 'tavern-keeper';
const CLIENTS = 10;

interface Outcome {
  at: number;
  ok: boolean;
  code?: string;
}

async function metric(n: ServerProcess, name: string): Promise<number | undefined> {
  const res = await fetch(`http://127.0.0.1:${n.port}/metrics`);
  return select(parsePrometheus(await res.text()), name)[0]?.value;
}

t.test('Redis restarted under load: npcd recovers without a restart', async (t) => {
  const redis = await RedisServer.start(t, ['--appendonly', 'yes', '--appendfsync', 'always']);
  const npcd = await startCli(t, ['--model', 'mock', '--mock-tokens', '16', '--mock-token-delay', '2ms', '--redis', redis.url, '--redis-timeout', '500ms']);
  const url = `ws://127.0.0.1:${npcd.port}/v1/ws`;
  t.equal((await getJson(`http://127.0.0.1:${npcd.port}/readyz`)).status, 200, 'ready with Redis up');
  t.equal(await metric(npcd, 'npcd_store_up'), 1, 'npcd_store_up 1');

  const clients = await Promise.all(Array.from({ length: CLIENTS }, () => TestClient.connect(url)));
  const sessions = await Promise.all(clients.map(async (c) => (await c.hello()).session as string));
  const outcomes: Outcome[][] = clients.map(() => []);
  let running = true;
  const loops = clients.map(async (c, i) => {
    for (let n = 0; running; n++) {
      const end = await c.chat(`c${i}-m${n}`, CHARACTER, `Turn ${n} from client ${i}.`, 10_000);
      outcomes[i]!.push({ at: Date.now(), ok: end.t === 'done', code: end.code as string | undefined });
      if (end.t !== 'done') await new Promise((r) => setTimeout(r, 20));
    }
  });
  const okSince = (i: number, since: number) => outcomes[i]!.filter((o) => o.ok && o.at > since).length;

  await waitFor(() => outcomes.every((_, i) => okSince(i, 0) >= 3), 10_000, 'three turns per client before the restart');
  await redis.stop();
  const down = Date.now();
  await waitFor(() => outcomes.every((o) => o.some((x) => !x.ok && x.at > down)), 10_000, 'every client seeing a failed turn while Redis is down');
  const failures = outcomes.flat().filter((o) => !o.ok && o.at > down);
  t.same([...new Set(failures.map((o) => o.code))], ['ERR_STORE_UNAVAILABLE'], 'turns fail with ERR_STORE_UNAVAILABLE, nothing else');
  const ready = await getJson(`http://127.0.0.1:${npcd.port}/readyz`);
  t.equal(ready.status, 503, '/readyz answers 503 while Redis is down');
  t.match(JSON.stringify(ready.body), /store_unavailable/, 'naming the store');
  t.equal(await metric(npcd, 'npcd_store_up'), 0, 'npcd_store_up 0');
  const newcomer = await TestClient.connect(url);
  const refused = await newcomer.hello();
  t.equal(refused.code, 'ERR_STORE_UNAVAILABLE', 'a new session cannot be opened meanwhile');
  await newcomer.close();

  await redis.start();
  const up = Date.now();
  await waitFor(() => outcomes.every((_, i) => okSince(i, up) >= 3), 20_000, 'three successful turns per client after Redis is back');
  t.pass(`every client recovered (${outcomes.flat().filter((o) => o.ok && o.at > up).length} turns since)`);
  running = false;
  await Promise.all(loops);
  t.equal(npcd.child.exitCode, null, 'npcd never exited');
  t.equal((await getJson(`http://127.0.0.1:${npcd.port}/readyz`)).status, 200, 'ready again');
  t.equal(await metric(npcd, 'npcd_store_up'), 1, 'npcd_store_up 1 again');

  // What Redis holds now: every reply acknowledged with done. A reply whose write was cut off by the
  // restart ended with ERR_STORE_UNAVAILABLE, yet Redis may have applied the write (its outcome is
  // unknown): such a reply may be there too; no other may.
  for (let i = 0; i < CLIENTS; i++) {
    const r = await getJson(`http://127.0.0.1:${npcd.port}/v1/sessions/${sessions[i]}/messages?limit=1000`);
    const ids = (r.body as { messages: { role: string; id: string }[] }).messages.filter((m) => m.role === 'assistant').map((m) => m.id);
    const frames = clients[i]!.frames;
    const acknowledged = frames.filter((f) => f.t === 'done').map((f) => f.id as string);
    const unknown = new Set(frames.filter((f) => f.t === 'error' && f.code === 'ERR_STORE_UNAVAILABLE' && frames.some((s) => s.t === 'start' && s.id === f.id)).map((f) => f.id as string));
    t.same(ids.filter((id) => !unknown.has(id)), acknowledged, `client ${i}: every reply acknowledged with done is in the history, in order, and no reply that failed otherwise`);
  }
  const fresh = await TestClient.connect(url);
  t.equal((await fresh.hello()).t, 'welcome', 'new sessions open again');
  t.equal((await fresh.chat('x', CHARACTER, 'Hello?', 10_000)).t, 'done', 'and chat');
  await Promise.all([...clients, fresh].map((c) => c.close()));
});

t.test('a reply streaming while Redis restarts without its data goes on and ends with done (its lease is taken again)', async (t) => {
  const redis = await RedisServer.start(t);
  const npcd = await startCli(t, ['--model', 'mock', '--mock-tokens', '40', '--mock-token-delay', '100ms', '--redis', redis.url, '--redis-timeout', '300ms', '--generation-lease', '600ms']);
  const c = await TestClient.connect(`ws://127.0.0.1:${npcd.port}/v1/ws`);
  t.teardown(() => c.close());
  await c.hello();
  c.send({ t: 'chat', id: 'long', character: CHARACTER, text: 'A long story, please.' });
  await c.waitFor((f) => f.t === 'token' && (f.seq as number) >= 5, 5_000);
  await redis.stop();
  await new Promise((r) => setTimeout(r, 1_000));
  await redis.start();
  const end = await c.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === 'long', 15_000);
  t.equal(end.t, 'done', `the reply ended with done (${end.t === 'error' ? `${end.code}: ${end.message}` : 'ok'})`);
  t.equal(c.framesFor('long').filter((f) => f.t === 'token').length, 40, 'every token reached the client');
  t.ok(npcd.logs.some((l) => String(l.msg).startsWith('the generation lease was gone (Redis lost it); taken again')), 'the node says it took the lease again');
  t.notOk(npcd.logs.some((l) => String(l.msg).startsWith('lost the generation lease')), 'and never that it lost the reply');
});
