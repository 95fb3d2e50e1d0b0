/**
 * Two npcd processes sharing one real redis-server: a chat on the node that
 * does not hold the session's generation lease is refused to its sender
 * alone, and the shared stream keeps the generating node's seqs.
 */
import t from 'tap';
import { checkSeqs, messages, node, wsUrl } from '../helpers/scaleout.js';
import { RedisServer, requireRedis } from '../helpers/redis.js';
import { getJson, postJson } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

requireRedis();

const CHARACTER = 'tavern-keeper';

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
