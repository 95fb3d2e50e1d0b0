/**
 * The sidecar's self-rendered metric families: valid Prometheus text (checked
 * by promtool, the Prometheus project's own linter), cumulative buckets on
 * the fixed log2 set, bounded labels.
 */
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { silentLogger } from '../../src/log.js';
import { parseBpftraceLine } from '../../src/sidecar/bpftrace-json.js';
import { LOG2_BUCKETS_SECONDS } from '../../src/sidecar/buckets.js';
import type { Capabilities } from '../../src/sidecar/capabilities.js';
import { DeltaCounter, Log2Histogram } from '../../src/sidecar/exposition.js';
import { PROGRAMS } from '../../src/sidecar/programs.js';
import { SIDECAR_METRIC, Sidecar } from '../../src/sidecar/sidecar.js';

t.test('a histogram renders cumulative buckets on the fixed edges, +Inf, _sum and _count', async (t) => {
  const h = new Log2Histogram('x_seconds', 'help text', ['port'] as const);
  h.addHist({ port: '80' }, [{ min: 16, max: 31, count: 2 }, { min: 32, max: 63, count: 0 }, { min: 64, max: 127, count: 1 }]);
  h.addSumMicros({ port: '80' }, 140);
  h.observe({ port: '80' }, 100); // beyond the last edge
  const lines = h.render().trim().split('\n');
  t.equal(lines[0], '# HELP x_seconds help text');
  t.equal(lines[1], '# TYPE x_seconds histogram');
  const buckets = lines.filter((l) => l.startsWith('x_seconds_bucket'));
  t.equal(buckets.length, LOG2_BUCKETS_SECONDS.length + 1);
  t.equal(buckets[5], 'x_seconds_bucket{port="80",le="0.000032"} 2');
  t.equal(buckets[7], 'x_seconds_bucket{port="80",le="0.000128"} 3');
  t.equal(buckets.at(-2), 'x_seconds_bucket{port="80",le="33.554432"} 3');
  t.equal(buckets.at(-1), 'x_seconds_bucket{port="80",le="+Inf"} 4');
  t.ok(lines.includes('x_seconds_sum{port="80"} 100.00014'));
  t.ok(lines.includes('x_seconds_count{port="80"} 4'));
  const values = buckets.map((l) => Number(l.split(' ').at(-1)));
  t.same(values, [...values].sort((a, b) => a - b), 'buckets never decrease');
});

t.test('counters take deltas and ignore non-positive ones; label values are escaped', async (t) => {
  const c = new DeltaCounter('y_total', 'help', ['reason'] as const);
  c.add({ reason: 'a"b\\c\nd' }, 2);
  c.add({ reason: 'a"b\\c\nd' }, 0);
  c.add({ reason: 'a"b\\c\nd' }, -5);
  t.equal(c.value({ reason: 'a"b\\c\nd' }), 2);
  t.match(c.render(), 'y_total{reason="a\\"b\\\\c\\nd"} 2');
});

const promtool = spawnSync('promtool', ['--version']).status === 0;

t.test('the whole /metrics page passes promtool check metrics', { skip: promtool ? false : 'promtool is not installed (apt install prometheus)' }, async (t) => {
  const s = new Sidecar(
    { ports: [8080, 6379], netns: 0, intervalS: 5, bpftrace: 'bpftrace', bpfDir: '', socketRtt: true, metricsHost: '127.0.0.1', metricsPort: 0, advice: async () => ({ advice: [{ id: 'notsent-lowat', severity: 'recommend' }] }) },
    {} as Capabilities,
    { run: [], skipped: [], notes: [], blockers: [] },
    silentLogger,
  );
  for (const line of [
    '{"type": "hist", "data": {"@tcp_srtt_us": {"in,8080": [{"min": 16, "max": 31, "count": 3}], "out,6379": [{"min": 256, "max": 511, "count": 1}]}}}',
    '{"type": "stats", "data": {"@tcp_srtt_us_stats": {"in,8080": {"count": 3, "average": 20, "total": 60}, "out,6379": {"count": 1, "average": 300, "total": 300}}}}',
    '{"type": "hist", "data": {"@tcp_connect_latency_us": {"6379": [{"min": 64, "max": 127, "count": 2}]}}}',
    '{"type": "stats", "data": {"@tcp_connect_latency_us_stats": {"6379": {"count": 2, "average": 100, "total": 200}}}}',
    '{"type": "hist", "data": {"@tcp_handshake_rtt_us": {"in,8080": [{"min": 16, "max": 31, "count": 1}]}}}',
    '{"type": "map", "data": {"@tcp_connect_failures": {"6379,111": 1, "6379,113": 2, "6379,99": 1}}}',
    '{"type": "map", "data": {"@tcp_retransmits": {"in,8080": 4}}}',
    '{"type": "map", "data": {"@tcp_retransmit_errors": {"in,8080,-16": 1, "in,8080,1": 2}}}',
    '{"type": "map", "data": {"@tcp_synack_retransmits": {"8080": 1}}}',
  ]) {
    for (const r of parseBpftraceLine(line)) s.ingest('test', r);
  }
  await s.advice(0);
  const text = await s.metrics();
  for (const name of Object.values(SIDECAR_METRIC)) t.ok(text.includes(`# TYPE ${name} `), `${name} is declared`);
  t.match(text, 'npcd_tcp_connect_failures_total{port="6379",reason="unreachable"} 2');
  t.match(text, 'npcd_tcp_connect_failures_total{port="6379",reason="other"} 1');
  t.match(text, 'npcd_tcp_retransmit_errors_total{direction="inbound",port="8080",kind="not_sent"} 1');
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(r.status, 0, `promtool check metrics passes the whole page, process metrics included\n${r.stdout}${r.stderr}`);
});

t.test('the advisor behind /advice feeds npcd_tcp_advice, one series per check, computed once at a time', async (t) => {
  let calls = 0;
  const s = new Sidecar(
    {
      ports: [8080],
      netns: 0,
      intervalS: 5,
      bpftrace: 'bpftrace',
      bpfDir: '',
      socketRtt: true,
      metricsHost: '127.0.0.1',
      metricsPort: 0,
      advice: async () => {
        calls++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return { advice: [{ id: 'notsent-lowat', severity: 'recommend' }, { id: 'tcp-rmem-max', severity: 'ok' }] };
      },
    },
    {} as Capabilities,
    { run: [], skipped: [], notes: [], blockers: [] },
    silentLogger,
  );
  t.notMatch(await s.metrics(), /npcd_tcp_advice\{/, 'no series before the first advice');
  const [a, b] = await Promise.all([s.advice(0), s.advice(0)]);
  t.equal(calls, 1, 'concurrent requests share one computation');
  t.equal(a, b);
  await s.advice(60_000);
  t.equal(calls, 1, 'a fresh report is reused');
  const text = await s.metrics();
  t.match(text, 'npcd_tcp_advice{id="notsent-lowat",severity="recommend"} 1');
  t.match(text, 'npcd_tcp_advice{id="tcp-rmem-max",severity="ok"} 1');
});

t.test('a metrics port that cannot be bound fails start() before any program is attached', async (t) => {
  const taken = createServer();
  await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
  t.teardown(() => taken.close());
  const port = (taken.address() as AddressInfo).port;
  const s = new Sidecar(
    // A bpftrace that would fail loudly if it were ever started.
    { ports: [8080], netns: 0, intervalS: 5, bpftrace: '/nonexistent/bpftrace', bpfDir: '', socketRtt: false, metricsHost: '127.0.0.1', metricsPort: port },
    {} as Capabilities,
    { run: [PROGRAMS[0]!], skipped: [], notes: [], blockers: [] },
    silentLogger,
  );
  await t.rejects(s.start(), { code: 'EADDRINUSE' });
  t.equal(s.runners.length, 0, 'no bpftrace program was started');
  await s.stop();
});
