import { Redis } from 'ioredis';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { createMemoryStore } from '../../src/memory/index.js';
import { parseAddress, reconnectDelayMs, RedisMemoryStore, sessionKeys } from '../../src/memory/redis.js';
import type { MemoryStore, StoreStatus } from '../../src/memory/store.js';
import { freeServicePorts } from '../helpers/sidecar-process.js';
import { redisHarness, RedisServer, startRedisCluster } from '../helpers/redis.js';
import { waitFor } from '../helpers/wait.js';
import { frame, header, lease, memory, runStoreSuite, sid, turn } from './store-suite.js';

function inspector(t: Test, server: RedisServer): Redis {
  const client = new Redis({ host: '127.0.0.1', port: server.port });
  t.teardown(() => client.disconnect());
  return client;
}

/** Every MemoryStore method, called once on `store` for session `s`. */
function everyCall(store: MemoryStore, s: string): [string, () => Promise<unknown>][] {
  return [
    ['load', () => store.load(s)],
    ['save', () => store.save(header(s), 600)],
    ['appendTurns', () => store.appendTurns(s, [turn(1)], 10, 600)],
    ['delete', () => store.delete(s)],
    ['addMemories', () => store.addMemories(s, [memory(1)], 10, 600)],
    ['memories', () => store.memories(s, 0)],
    ['appendFrames', () => store.appendFrames(s, [frame(1)], 10, 600)],
    ['framesSince', () => store.framesSince(s, 0)],
    ['claimGeneration', () => store.claimGeneration(s, lease('n'), 1000)],
    ['renewGeneration', () => store.renewGeneration(s, lease('n'), 1000)],
    ['releaseGeneration', () => store.releaseGeneration(s, lease('n'))],
    ['generation', () => store.generation(s)],
  ];
}

/** Calls every method at once; each must reject with ERR_STORE_UNAVAILABLE naming it, within `withinMs`. */
async function expectAllUnavailable(t: Test, store: MemoryStore, withinMs: number): Promise<void> {
  const s = sid('down');
  const results = await Promise.all(
    everyCall(store, s).map(async ([what, call]) => {
      const started = Date.now();
      try {
        await call();
        return { what, err: undefined, ms: Date.now() - started };
      } catch (err) {
        return { what, err: err as { code?: string; message?: string; cause?: unknown }, ms: Date.now() - started };
      }
    }),
  );
  for (const { what, err, ms } of results) {
    t.equal(err?.code, 'ERR_STORE_UNAVAILABLE', `${what} rejects with ERR_STORE_UNAVAILABLE`);
    t.match(err?.message, new RegExp(`^redis ${what}: \\S`), `${what}: the message names the call and the cause (${err?.message})`);
    t.ok(err?.cause instanceof Error, `${what}: the cause is kept`);
    t.ok(ms < withinMs, `${what} rejected in ${ms} ms (< ${withinMs} ms)`);
  }
}

t.test('the MemoryStore suite on one Redis server', async (t) => {
  const server = await RedisServer.start(t);
  const h = redisHarness(t, { redis: server.url }, inspector(t, server));
  t.equal(h.store.kind, 'redis');
  t.equal(h.store.shared, true);
  runStoreSuite(t, h);
});

t.test('the key layout', async (t) => {
  const server = await RedisServer.start(t);
  const redis = inspector(t, server);
  const { store } = redisHarness(t, { redis: server.url }, redis);
  const s = sid('layout');
  await store.save(header(s), 600);
  await store.appendTurns(s, [turn(1), turn(2)], 10, 600);
  await store.addMemories(s, [memory(1), memory(2)], 10, 600);
  await store.appendFrames(s, [frame(1), frame(2)], 10, 600);
  await store.claimGeneration(s, lease('node-a'), 30_000);

  const base = `npcd:{${s}}:`;
  t.same((await redis.keys(`${base}*`)).sort(), ['gen', 'h', 'mem', 'stream', 'turns'].map((k) => base + k), 'five keys under the session hash tag');
  t.same(sessionKeys(s), { h: `${base}h`, turns: `${base}turns`, mem: `${base}mem`, stream: `${base}stream`, gen: `${base}gen` });
  t.equal(await redis.type(`${base}h`), 'hash');
  t.equal(await redis.type(`${base}turns`), 'list');
  t.equal(await redis.type(`${base}mem`), 'hash');
  t.equal(await redis.type(`${base}stream`), 'stream');
  t.equal(await redis.type(`${base}gen`), 'string');
  t.same((await redis.hkeys(`${base}h`)).sort(), ['data', 'mem']);
  t.equal(await redis.hget(`${base}h`, 'mem'), '2', 'the last memory id');
  t.same((await redis.hkeys(`${base}mem`)).sort(), ['1', '2'], 'memory ids as fields');
  t.equal(await redis.llen(`${base}turns`), 2);
  t.same((await redis.xrange(`${base}stream`, '-', '+')).map(([id]) => id), ['0-1', '0-2'], 'stream entry ids carry the seq');
  t.same(JSON.parse((await redis.get(`${base}gen`))!), lease('node-a'));
  const gen = await redis.pttl(`${base}gen`);
  t.ok(gen > 25_000 && gen <= 30_000, `the lease key expires with the lease (${gen} ms)`);

  const odd = `%{}}x{${s}`;
  await store.save(header(odd), 600);
  t.same(await store.load(odd), header(odd), 'ids with %, { and } work');
  t.same(await redis.keys(`npcd:{%25%7B%7D%7Dx%7B${s}}:*`), [sessionKeys(odd).h], 'encoded into the hash tag');
  t.not(sessionKeys('%7B').h, sessionKeys('{').h, 'the encoding is one to one');

  const prefixed = new RedisMemoryStore({ redis: server.url, keyPrefix: 'other:' });
  t.teardown(() => prefixed.close());
  await prefixed.save(header(s), 600);
  t.same(await redis.keys(`other:*`), [`other:{${s}}:h`], 'keyPrefix');
  t.not(await prefixed.load(s), undefined);
});

t.test('Redis down: every call fails fast; restarted: the same store works again', async (t) => {
  const server = await RedisServer.start(t);
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const store = new RedisMemoryStore({ redis: server.url, commandTimeoutMs: 1_000, logger });
  const patient = new RedisMemoryStore({ redis: server.url, commandTimeoutMs: 10_000 });
  t.teardown(() => Promise.all([store.close(), patient.close()]));
  const statuses: StoreStatus[] = [];
  store.onStatus((status) => statuses.push(status));
  await waitFor(() => store.status === 'ready' && patient.status === 'ready', 5_000, 'stores ready');
  const s = sid('outage');
  await store.save(header(s), 600);

  await server.stop();
  await waitFor(() => store.status === 'down', 5_000, 'status down');
  t.same(statuses, ['ready', 'down'], 'the connection, then the outage, are reported');
  await expectAllUnavailable(t, store, 5_000);
  const started = Date.now();
  await t.rejects(store.load(s), { code: 'ERR_STORE_UNAVAILABLE', message: /^redis load: not connected/ });
  t.ok(Date.now() - started < 1_500, 'a call waits at most about commandTimeoutMs');
  // Down for a whole commandTimeoutMs by now: the next calls do not wait it out again, one after the other.
  const next = Date.now();
  await t.rejects(store.load(s), { code: 'ERR_STORE_UNAVAILABLE', message: /^redis load: not connected for \d+ ms/ });
  await t.rejects(store.appendFrames(s, [frame(1)], 10, 600), { code: 'ERR_STORE_UNAVAILABLE' });
  t.ok(Date.now() - next < 500, `two calls failed at once (${Date.now() - next} ms), not after a timeout each`);
  // Several reconnect attempts fail meanwhile (100, 200, 400, 800 ms apart).
  await new Promise((r) => setTimeout(r, 1_600));
  const warnings = logs.filter((l) => l.msg === 'redis unreachable; reconnecting');
  t.equal(warnings.length, 1, 'one warning per outage, not one per retry');

  const waiting = patient.save(header(`${s}-patient`), 600); // waits for the connection
  await server.start();
  await waitFor(() => store.status === 'ready', 10_000, 'status ready again');
  t.same(statuses, ['ready', 'down', 'ready'], 'the recovery is reported');
  t.ok(logs.some((l) => l.msg === 'redis reachable again' && typeof l.downMs === 'number'), 'the recovery is logged with the outage length');

  await store.save(header(s), 600);
  t.same(await store.load(s), header(s), 'the same store instance works again');
  await waiting;
  t.same(await store.load(`${s}-patient`), header(`${s}-patient`), 'a call made while down went through once Redis was back');
});

t.test('a hung Redis (the connection stands, nothing answers) is reported down, and back when it answers again', async (t) => {
  const server = await RedisServer.start(t);
  const store = new RedisMemoryStore({ redis: server.url, commandTimeoutMs: 500 });
  t.teardown(() => store.close());
  await waitFor(() => store.status === 'ready', 5_000, 'store ready');
  const s = sid('hung');
  await store.save(header(s), 600);
  server.signal('SIGSTOP');
  t.teardown(() => server.signal('SIGCONT'));
  await waitFor(() => store.status === 'down', 5_000, 'the probe finds it down');
  await new Promise((r) => setTimeout(r, 600)); // down for a whole timeout
  const started = Date.now();
  await t.rejects(store.load(s), { code: 'ERR_STORE_UNAVAILABLE', message: /not answering for \d+ ms/ });
  t.ok(Date.now() - started < 300, 'calls fail at once instead of each waiting out the timeout');
  server.signal('SIGCONT');
  await waitFor(() => store.status === 'ready', 5_000, 'ready again once it answers');
  t.same(await store.load(s), header(s));
});

t.test('a Redis Cluster with a master down is reported down', async (t) => {
  const cluster = await startRedisCluster(t);
  const store = new RedisMemoryStore({ redis: cluster.seeds, commandTimeoutMs: 1_000 });
  t.teardown(() => store.close());
  await waitFor(() => store.status === 'ready', 10_000, 'store ready');
  await cluster.nodes[0]!.stop();
  // The other masters mark it failed after the cluster's node timeout (5 s here): cluster_state:fail.
  await waitFor(() => store.status === 'down', 20_000, 'down once the cluster cannot serve every slot');
  t.pass('reported down');
});

t.test('Redis unreachable from the start', async (t) => {
  const [port] = await freeServicePorts(1);
  const store = new RedisMemoryStore({ redis: `redis://127.0.0.1:${port}`, commandTimeoutMs: 500 });
  t.equal(store.status, 'connecting');
  await expectAllUnavailable(t, store, 2_000);
  t.equal(store.status, 'down');
  const started = Date.now();
  await store.close();
  t.ok(Date.now() - started < 1_000, 'close does not wait for a connection');
  await t.rejects(store.load('s'), { code: 'ERR_STORE_UNAVAILABLE', message: /store closed/ });
});

t.test('close quits cleanly after the calls in flight', async (t) => {
  const server = await RedisServer.start(t);
  const redis = inspector(t, server);
  const store = new RedisMemoryStore({ redis: server.url });
  const s = sid('close');
  await store.save(header(s), 600);
  const writes = Array.from({ length: 20 }, (_, i) => store.appendTurns(s, [turn(i)], 100, 600));
  await Promise.all([...writes, store.close()]);
  t.equal(await redis.llen(sessionKeys(s).turns), 20, 'every write sent before close was applied');
  t.equal(store.client.status, 'end');
});

t.test('options are checked', async (t) => {
  const bad: [string, ConstructorParameters<typeof RedisMemoryStore>[0], RegExp][] = [
    ['no address', { redis: '' }, /at least one/],
    ['no address in a list', { redis: [' '] }, /at least one/],
    ['another scheme', { redis: 'http://127.0.0.1:1' }, /redis:\/\/ or rediss:\/\//],
    ['not a URL', { redis: 'redis://[bad' }, /not a redis/],
    ['a db that is not a number', { redis: 'redis://127.0.0.1:1/abc' }, /database number/],
    ['a db on a Cluster', { redis: ['redis://127.0.0.1:1/2', '127.0.0.1:2'] }, /only database 0/],
    ['TLS and not', { redis: ['rediss://127.0.0.1:1', 'redis://127.0.0.1:2'] }, /mixes/],
    ['several addresses, not a Cluster', { redis: '127.0.0.1:1,127.0.0.1:2', cluster: false }, /several addresses/],
    ['a prefix with a brace', { redis: '127.0.0.1:1', keyPrefix: 'a{' }, /keyPrefix/],
    ['commandTimeoutMs 0', { redis: '127.0.0.1:1', commandTimeoutMs: 0 }, /options\.commandTimeoutMs/],
    ['connectTimeoutMs 1.5', { redis: '127.0.0.1:1', connectTimeoutMs: 1.5 }, /options\.connectTimeoutMs/],
  ];
  for (const [what, options, message] of bad) t.throws(() => new RedisMemoryStore(options), { code: 'ERR_CONFIG_INVALID', message }, what);
  t.throws(() => new RedisMemoryStore({ redis: 'redis://user:hunter2@127.0.0.1:1/x' }), { message: /^(?!.*hunter2)/ }, 'a password never reaches the message');
});

t.test('addresses', async (t) => {
  t.same(parseAddress('127.0.0.1:7000'), { host: '127.0.0.1', port: 7000, db: 0, username: undefined, password: undefined, tls: false });
  t.same(parseAddress('redis://cache.internal/3'), { host: 'cache.internal', port: 6379, db: 3, username: undefined, password: undefined, tls: false });
  t.same(parseAddress('rediss://app:p%40ss@cache:6380'), { host: 'cache', port: 6380, db: 0, username: 'app', password: 'p@ss', tls: true });
  t.same(parseAddress('redis://:secret@[::1]:6390'), { host: '::1', port: 6390, db: 0, username: undefined, password: 'secret', tls: false });
});

t.test('reconnect backoff: 100 ms doubling to 2 s', async (t) => {
  t.same([1, 2, 3, 4, 5, 6, 7, 1_000].map(reconnectDelayMs), [100, 200, 400, 800, 1_600, 2_000, 2_000, 2_000]);
});

t.test('a bad --redis or --redis-prefix is named by its flag', async (t) => {
  t.throws(() => createMemoryStore({ redis: 'redis://h:1/x', budgetBytes: 1 << 20 }), { code: 'ERR_CONFIG_INVALID', message: /^--redis: "redis:\/\/h:1\/x": the path must be a database number/ });
  t.throws(() => createMemoryStore({ redis: 'redis://127.0.0.1:1', prefix: 'a{b', budgetBytes: 1 << 20 }), { code: 'ERR_CONFIG_INVALID', message: /^--redis-prefix must be a string without \{ or \}/ });
});
