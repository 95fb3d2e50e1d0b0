/**
 * Two npcd processes sharing one real redis-server (and, for the resume, a
 * real three-master Redis Cluster): a session moves between them. A client resumes on the other node while a reply streams (it follows
 * the reply), and after the node generating the reply is killed with SIGKILL
 * (the frames it stored are replayed once, the reply ends with
 * ERR_GENERATION_INTERRUPTED, and every acknowledged turn is still there).
 */
import t, { type Test } from 'tap';
import { startCli } from '../helpers/child.js';
import { RedisServer, requireRedis, startRedisCluster } from '../helpers/redis.js';
import { checkSeqs, messages, node, wsUrl } from '../helpers/scaleout.js';
import { waitFor } from '../helpers/wait.js';
import { TestClient } from '../helpers/ws-client.js';

requireRedis();

const CHARACTER = 'tavern-keeper';

/** A client on node A resumes on node B while its reply streams there, and goes on on node B. */
async function resumeElsewhere(t: Test, redisUrl: string): Promise<void> {
  const [a, b] = await Promise.all([node(t, redisUrl), node(t, redisUrl)]);
  t.not(a.logs.find((l) => l.node)?.node, b.logs.find((l) => l.node)?.node, 'the nodes have different ids');

  const c1 = await TestClient.connect(wsUrl(a));
  const welcome = await c1.hello();
  const session = welcome.session as string;
  const first = await c1.chat('m1', CHARACTER, 'Good evening, Mara.', 15_000);
  t.equal(first.t, 'done', 'first reply on node A');

  c1.send({ t: 'chat', id: 'm2', character: CHARACTER, text: 'Tell me about the harbour.' });
  await c1.waitFor((f) => f.t === 'token' && f.id === 'm2', 5_000);
  await waitFor(() => c1.framesFor('m2').length >= 20, 10_000, '20 frames of the second reply');
  c1.terminate();
  const seen = c1.streamFrames();
  const last = seen[seen.length - 1]!.seq as number;

  const c2 = await TestClient.connect(wsUrl(b));
  const w2 = await c2.hello({ session, resume: last });
  t.equal(w2.t, 'welcome', 'node B opens the session');
  t.equal(w2.resumed, true, 'and resumes it: no gap');
  const done = await c2.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === 'm2', 20_000);
  t.equal(done.t, 'done', 'the reply generated on node A ends on node B');
  checkSeqs(t, [...seen, ...c2.streamFrames()], 1, 'node A then node B');
  const tokens = [...seen, ...c2.streamFrames()].filter((f) => f.t === 'token' && f.id === 'm2').map((f) => f.text as string);
  t.equal(tokens.join(''), done.text, 'the tokens seen on both nodes make up the reply, once each');

  const third = await c2.chat('m3', CHARACTER, 'And the lighthouse?', 15_000);
  t.equal(third.t, 'done', 'the conversation goes on on node B');
  t.equal(third.seq, c2.streamFrames().at(-1)!.seq, 'its frames continue the same stream');
  const history = await messages(a, session);
  t.same(
    history.map((m) => `${m.role}:${m.id}`),
    ['user:m1', 'assistant:m1', 'user:m2', 'assistant:m2', 'user:m3', 'assistant:m3'],
    'node A sees the turns node B served',
  );
  await c2.close();
}

t.test('a client resumes on another node while its reply streams, and goes on there', async (t) => {
  const redis = await RedisServer.start(t);
  await resumeElsewhere(t, redis.url);
});

t.test('the same with the nodes on a three-master Redis Cluster', async (t) => {
  const cluster = await startRedisCluster(t);
  await resumeElsewhere(t, cluster.seeds.join(','));
});

t.test('node A is killed with SIGKILL in the middle of a reply; the client resumes on node B', async (t) => {
  const redis = await RedisServer.start(t);
  const [a, b] = await Promise.all([node(t, redis.url), node(t, redis.url)]);

  const c1 = await TestClient.connect(wsUrl(a));
  const session = (await c1.hello()).session as string;
  const acknowledged = await c1.chat('m1', CHARACTER, 'A room for the night, please.', 15_000);
  t.equal(acknowledged.t, 'done', 'first turn acknowledged (done) on node A');

  c1.send({ t: 'chat', id: 'm2', character: CHARACTER, text: 'What news from the docks?' });
  await c1.waitFor((f) => f.t === 'start' && f.id === 'm2', 5_000);
  await waitFor(() => c1.framesFor('m2').length >= 30, 10_000, '30 frames of the second reply');
  a.child.kill('SIGKILL');
  const exit = await a.exited;
  t.equal(exit.signal, 'SIGKILL', 'node A died');
  // What the client had received before the socket went; a frame in flight may still arrive.
  await c1.closed();
  const seen = c1.streamFrames();
  const last = seen.at(-1)!.seq as number;
  t.notOk(seen.some((f) => (f.t === 'done' || f.t === 'error') && f.id === 'm2'), 'the reply had not ended');

  const c2 = await TestClient.connect(wsUrl(b));
  const started = Date.now();
  const w2 = await c2.hello({ session, resume: last });
  t.equal(w2.resumed, true, 'node B resumes the session without a gap');
  const end = await c2.waitFor((f) => (f.t === 'done' || f.t === 'error') && f.id === 'm2', 15_000);
  t.equal(end.t, 'error', 'the reply ends with an error');
  t.equal(end.code, 'ERR_GENERATION_INTERRUPTED', 'ERR_GENERATION_INTERRUPTED');
  t.ok(Date.now() - started < 10_000, 'within a few lease times');
  const after = c2.streamFrames();
  checkSeqs(t, [...seen, ...after], 1, 'frames from node A, then the replay and the end from node B');
  t.notOk(
    after.some((f) => f.t === 'token' && f.id === 'm2' && seen.some((s) => s.seq === f.seq)),
    'no frame the client saw is sent again',
  );

  const history = await messages(b, session);
  t.same(
    history.map((m) => `${m.role}:${m.id}`),
    ['user:m1', 'assistant:m1', 'user:m2'],
    'acknowledged turns are all there: the first exchange, and the message whose reply had started',
  );
  t.equal(history[1]!.text, acknowledged.text, 'the acknowledged reply is intact');

  const retry = await c2.chat('m2-again', CHARACTER, 'What news from the docks?', 15_000);
  t.equal(retry.t, 'done', 'the client sends the message again and gets a reply on node B');
  checkSeqs(t, [...seen, ...c2.streamFrames()], 1, 'the whole stream');

  // A third node started later sees the same session.
  const c = await node(t, redis.url);
  const c3 = await TestClient.connect(wsUrl(c));
  const w3 = await c3.hello({ session, resume: 0 });
  t.equal(w3.seq, c2.streamFrames().at(-1)!.seq, 'a new node opens the session at the same seq');
  await c3.waitFor((f) => f.t === 'done' && f.id === 'm2-again', 5_000);
  const replayed = c3.streamFrames();
  const all = [...seen, ...c2.streamFrames()];
  t.same(
    replayed.map((f) => [f.seq, f.t, f.id]),
    all.slice(all.length - replayed.length).map((f) => [f.seq, f.t, f.id]),
    'and replays the same frames',
  );
  await Promise.all([c2.close(), c3.close()]);
});

t.test('a session used on two nodes in turn: each reply follows the other node\'s frames, none reuses a seq', async (t) => {
  const redis = await RedisServer.start(t);
  const [a, b] = await Promise.all([
    startCli(t, ['--model', 'mock', '--mock-tokens', '8', '--redis', redis.url]),
    startCli(t, ['--model', 'mock', '--mock-tokens', '8', '--redis', redis.url]),
  ]);
  const x = await TestClient.connect(wsUrl(a));
  const y = await TestClient.connect(wsUrl(b));
  t.teardown(() => Promise.all([x.close(), y.close()]));
  const session = (await x.hello()).session as string;
  const first = await x.chat('x1', CHARACTER, 'Hello from node A.', 10_000);
  t.equal(first.t, 'done');
  // Node B opens the session only now, and replies while node A is idle.
  await y.hello({ session });
  const second = await y.chat('y1', CHARACTER, 'Hello from node B.', 10_000);
  t.equal(second.t, 'done');
  // Node A has not seen y1: its next reply must come after it, not reuse its seqs.
  const third = await x.chat('x2', CHARACTER, 'Back on node A.', 10_000);
  t.equal(third.t, 'done');
  const x2 = x.framesFor('x2');
  t.equal(x2[0]!.t, 'start');
  t.equal(x2[0]!.seq, (second.seq as number) + 1, `x2 starts right after y1's done (seq ${second.seq})`);
  // A third client resuming on node B from there sees x2, not y1 again.
  const z = await TestClient.connect(wsUrl(b));
  t.teardown(() => z.close());
  await z.hello({ session, resume: second.seq });
  const end = await z.waitFor((f) => f.t === 'done', 10_000);
  t.equal(end.id, 'x2', 'the stream after y1 holds x2');
  t.same((await messages(b, session)).map((m) => `${m.role}:${m.id}`), ['user:x1', 'assistant:x1', 'user:y1', 'assistant:y1', 'user:x2', 'assistant:x2']);
});
