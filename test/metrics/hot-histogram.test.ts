/** HotHistogram exposes exactly what prom-client's Histogram does for the same observations. */
import { Histogram, Registry } from 'prom-client';
import t from 'tap';
import { HotHistogram } from '../../src/metrics/metrics.js';

t.test('same exposition as a prom-client Histogram', async (t) => {
  const buckets = [0.0001, 0.001, 0.01, 0.1, 1, 5];
  const hot = new Registry();
  const ref = new Registry();
  const h = new HotHistogram({ name: 'gap_seconds', help: 'gaps', labelNames: ['provider'] as const, buckets, registers: [hot] });
  const r = new Histogram({ name: 'gap_seconds', help: 'gaps', labelNames: ['provider'] as const, buckets, registers: [ref] });
  const values = [0, 0.00005, 0.0001, 0.0002, 0.001, 0.05, 0.1, 0.9, 1, 4.99, 5, 7, 120];
  for (const provider of ['a', 'b']) {
    const cell = h.cell({ provider });
    for (const v of values) {
      cell.observe(provider === 'a' ? v : v * 2);
      r.observe({ provider }, provider === 'a' ? v : v * 2);
    }
  }
  t.equal(await hot.metrics(), await ref.metrics());
  t.equal(h.cell({ provider: 'a' }), h.cell({ provider: 'a' }), 'one cell per label set');
  hot.resetMetrics();
  t.match(await hot.metrics(), /gap_seconds_count\{provider="a"\} 0/);
});
