/**
 * Two npcd processes sharing one real redis-server (and, for the resume, a
 * real three-master Redis Cluster): a session moves between them. A client resumes on the other node while a reply streams (it follows
 * the reply), and after the node generating the reply is killed with SIGKILL
 * (the frames it stored are replayed once, the reply ends with
 * ERR_GENERATION_INTERRUPTED, and every acknowledged turn is still there).
 */
import t, { type Test } from 'tap';
import { startCli, type ServerProcess } from '../helpers/child.js';
import { RedisServer, requireRedis, startRedisCluster } from '../helpers/redis.js';
import { getJson, postJson } from '../helpers/server.js';
import { waitFor } from '../helpers/wait.js';
import { type Frame, TestClient } from '../helpers/ws-client.js';

requireRedis();

const CHARACTER = 'tavern-keeper';
/** Long enough replies to kill a node in the middle of one: 400 tokens, 10 ms apart. */
const NODE_ARGS = ['--model', 'mock', '--mock-tokens', '400', '--mock-token-delay', '10ms', '--generation-lease', '1s', '--orphan-grace', '30s', '--log-level', 'info'];

async function node(t: Test, redisUrl: string): Promise<ServerProcess> {
  return startCli(t, [...NODE_ARGS, '--redis', redisUrl]);
}

const wsUrl = (n: ServerProcess) => `ws://127.0.0.1:${n.port}/v1/ws`;

/** Seqs of stream frames must run 1, 2, 3, … with none twice and none missing. */
function checkSeqs(t: Test, frames: Frame[], from: number, what: string): void {
  const seqs = frames.map((f) => f.seq as number);
  const expected = seqs.map((_, i) => from + i);
  t.same(seqs, expected, `${what}: seqs ${from}..${from + seqs.length - 1}, each once, none missing`);
}

async function messages(n: ServerProcess, session: string): Promise<{ role: string; id: string; text: string }[]> {
  const r = await getJson(`http://127.0.0.1:${n.port}/v1/sessions/${session}/messages`);
  if (r.status !== 200) throw new Error(`messages: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body as { messages: { role: string; id: string; text: string }[] }).messages;
}

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

t.test('a chat on node B while node A generates is refused to its sender, without a seq; the stream keeps node A\'s seqs', async (t) => {
  const redis = await RedisServer.start(t);
  const [a, b] = await Promise.all([node(t, redis.url), node(t, redis.url)]);
  const x = await TestClient.connect(wsUrl(a));
  const y = await TestClient.connect(wsUrl(b));
  t.teardown(() => Promise.all([x.close(), y.close()]));
  const session = (await x.hello()).session as string;
  // Node B opens the session while nobody generates: it does not follow anything yet.
  await y.hello({ session });
  x.send({ t: 'chat', id: 'x1', character: CHARACTER, text: 'A long story, please.' });
  await x.waitFor((f) => f.t === 'token' && f.id === 'x1', 5_000);
  // Node B only learns of the reply when it tries to take the session's lease.
  y.send({ t: 'chat', id: 'y1', character: CHARACTER, text: 'Me too!' });
  const refused = await y.waitFor((f) => f.t === 'error' && f.id === 'y1', 5_000);
  t.match(refused, { code: 'ERR_SESSION_BUSY' });
  t.notOk('seq' in refused, 'the refusal is not a frame of the stream (node B does not number frames while node A does)');
  // Node B now follows node A's reply; a chat meanwhile is refused the same way.
  await y.waitFor((f) => f.t === 'token' && f.id === 'x1', 5_000);
  y.send({ t: 'chat', id: 'y2', character: CHARACTER, text: 'Still me.' });
  const again = await y.waitFor((f) => f.t === 'error' && f.id === 'y2', 5_000);
  t.match(again, { code: 'ERR_SESSION_BUSY' });
  t.notOk('seq' in again, 'no seq either');
  t.match((await getJson(`http://127.0.0.1:${b.port}/v1/sessions/${session}`)).body, { generating: 'x1' }, 'node B shows the reply node A generates');
  const http = await postJson(`http://127.0.0.1:${b.port}/v1/chat`, { session_id: session, character: CHARACTER, message: 'Over HTTP.' });
  t.match(http, { status: 409, body: { error: { code: 'ERR_SESSION_BUSY' } } }, 'and an HTTP chat there is refused too');
  const done = await x.waitFor((f) => f.t === 'done' && f.id === 'x1', 20_000);
  const followed = await y.waitFor((f) => f.t === 'done' && f.id === 'x1', 10_000);
  t.equal(followed.seq, done.seq, 'node B forwarded node A\'s reply to its end');
  checkSeqs(t, x.streamFrames(), 1, 'node A\'s client');
  // The stored stream, replayed from the start on node B: node A's reply, nothing of node B's.
  const z = await TestClient.connect(wsUrl(b));
  t.teardown(() => z.close());
  await z.hello({ session, resume: 0 });
  await z.waitFor((f) => f.t === 'done' && f.id === 'x1', 10_000);
  checkSeqs(t, z.streamFrames(), 1, 'the stored stream');
  t.same(z.streamFrames().filter((f) => f.id !== 'x1'), [], 'holds no frame of node B\'s refused chats');
  t.same((await messages(b, session)).map((m) => `${m.role}:${m.id}`), ['user:x1', 'assistant:x1']);
});
