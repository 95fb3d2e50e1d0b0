import t from 'tap';
import { fnv1a, mulberry32, pick } from '../../src/text/random.js';

/** The published mulberry32 (Tommy Ettinger), written independently as a reference. */
function referenceMulberry32(seed: number): () => number {
  let a = seed | 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const draw = (rng: () => number, n: number) => Array.from({ length: n }, () => rng());

t.test('mulberry32 matches the reference implementation', async (t) => {
  for (const seed of [0, 1, 42, 0x7fffffff, 0x80000000, 0xffffffff, 123456789]) {
    t.same(draw(mulberry32(seed), 1000), draw(referenceMulberry32(seed), 1000), `seed ${seed}`);
  }
});

t.test('mulberry32 is deterministic per seed', async (t) => {
  t.same(draw(mulberry32(7), 50), draw(mulberry32(7), 50));
  t.notSame(draw(mulberry32(7), 5), draw(mulberry32(8), 5), 'neighbouring seeds differ');
  t.same(draw(mulberry32(-1), 5), draw(mulberry32(0xffffffff), 5), 'seeds are taken as unsigned 32-bit');
  t.same(draw(mulberry32(2 ** 32 + 5), 5), draw(mulberry32(5), 5), 'seeds wrap at 2^32');
  const seen = new Set(Array.from({ length: 100 }, (_, s) => mulberry32(s)()));
  t.equal(seen.size, 100, 'the first value of 100 seeds are all different');
});

t.test('mulberry32 values are in [0, 1) and spread out', async (t) => {
  const values = draw(mulberry32(2024), 20000);
  t.ok(values.every((v) => v >= 0 && v < 1), 'every value in [0, 1)');
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  t.ok(Math.abs(mean - 0.5) < 0.01, `mean ${mean.toFixed(4)} is about 0.5`);
  const buckets = new Array<number>(10).fill(0);
  for (const v of values) buckets[Math.floor(v * 10)]!++;
  t.ok(buckets.every((b) => b > 1800 && b < 2200), `deciles are even: ${buckets.join(' ')}`);
});

t.test('fnv1a', async (t) => {
  // Standard FNV-1a 32-bit test vectors (ASCII: code units equal bytes).
  t.equal(fnv1a(''), 0x811c9dc5);
  t.equal(fnv1a('a'), 0xe40c292c);
  t.equal(fnv1a('foobar'), 0xbf9cf968);
  t.equal(fnv1a('a', 0), Math.imul(0x61, 0x01000193) >>> 0, 'a custom seed');
  t.not(fnv1a('sess\u00001\u0000hi'), fnv1a('sess\u00002\u0000hi'));
  const h = fnv1a('古风剑客你好');
  t.ok(Number.isInteger(h) && h >= 0 && h <= 0xffffffff, 'an unsigned 32-bit integer');
  t.equal(fnv1a('古风剑客你好'), h, 'deterministic');
});

t.test('pick', async (t) => {
  const items = ['a', 'b', 'c', 'd'];
  t.equal(pick(items, () => 0), 'a');
  t.equal(pick(items, () => 0.2499), 'a');
  t.equal(pick(items, () => 0.25), 'b');
  t.equal(pick(items, () => 0.9999999), 'd');
  const rng = mulberry32(9);
  const counts = new Map<string, number>();
  for (let i = 0; i < 4000; i++) {
    const x = pick(items, rng);
    counts.set(x, (counts.get(x) ?? 0) + 1);
  }
  t.same([...counts.keys()].sort(), items, 'every item is picked');
});
