import { Cluster } from 'ioredis';
import t from 'tap';
import { RedisMemoryStore, sessionKeys } from '../../src/memory/redis.js';
import { redisHarness, startRedisCluster } from '../helpers/redis.js';
import { frame, header, lease, memory, runStoreSuite, sid, turn } from './store-suite.js';

t.test('the MemoryStore suite on a three-master Redis Cluster', async (t) => {
  const { seeds } = await startRedisCluster(t);
  const inspect = new Cluster(seeds.map((s) => ({ host: '127.0.0.1', port: Number(s.split(':')[1]) })));
  t.teardown(() => inspect.disconnect());
  const h = redisHarness(t, { redis: [...seeds] }, inspect);
  t.equal(h.store.kind, 'redis-cluster');
  t.equal(h.store.shared, true);
  runStoreSuite(t, h);

  t.test('all keys of a session share one slot; sessions spread over the masters', async (t) => {
    const { store } = h;
    const ids = [...Array.from({ length: 60 }, (_, i) => `spread-${i}`), `}{odd%-${sid('x')}`, '}'];
    for (const id of ids) {
      await store.save(header(id), 600);
      await store.appendTurns(id, [turn(1)], 10, 600);
      await store.addMemories(id, [memory(1)], 10, 600);
      await store.appendFrames(id, [frame(1)], 10, 600);
      await store.claimGeneration(id, lease('node-a'), 30_000);
    }
    for (const id of ids) {
      const keys = Object.values(sessionKeys(id));
      const slots = new Set(await Promise.all(keys.map((k) => inspect.cluster('KEYSLOT', k))));
      t.equal(slots.size, 1, `${JSON.stringify(id)}: its ${keys.length} keys hash to one slot`);
    }
    t.same(await store.load('}'), { ...header('}'), turns: [turn(1)] }, 'an id that would empty the hash tag works');

    // Which master holds the keys of each session.
    const masters = inspect.nodes('master');
    t.equal(masters.length, 3);
    const holder = new Map<string, Set<number>>();
    for (const [n, node] of masters.entries()) {
      for (const key of await node.keys('npcd:{spread-*')) {
        const id = key.slice('npcd:{'.length, key.indexOf('}'));
        holder.set(id, (holder.get(id) ?? new Set()).add(n));
      }
    }
    t.equal(holder.size, 60, 'every session was found');
    t.ok([...holder.values()].every((nodes) => nodes.size === 1), 'each session lives on one master');
    const perMaster = [0, 1, 2].map((n) => [...holder.values()].filter((nodes) => nodes.has(n)).length);
    t.ok(perMaster.every((count) => count > 0), `sessions spread over all three masters (${perMaster.join(', ')})`);
  });

  t.test('a single seed node with cluster: true finds the whole cluster', async (t) => {
    const store = new RedisMemoryStore({ redis: seeds[0]!, cluster: true });
    t.teardown(() => store.close());
    t.equal(store.kind, 'redis-cluster');
    for (let i = 0; i < 10; i++) {
      const id = `seed-${i}`;
      await store.save(header(id), 600);
      t.same(await store.load(id), header(id));
    }
  });
});
