/**
 * The bpftrace JSON reader and the sidecar's accumulation of its records,
 * on output recorded from real bpftrace 0.17 runs (bpf/samples/) and on
 * crafted edge cases.
 */
import { readFileSync } from 'node:fs';
import t from 'tap';
import { silentLogger } from '../../src/log.js';
import { type BpftraceRecord, BpftraceParseError, parseBpftraceLine } from '../../src/sidecar/bpftrace-json.js';
import { LOG2_BUCKETS_SECONDS } from '../../src/sidecar/buckets.js';
import type { Capabilities } from '../../src/sidecar/capabilities.js';
import { histBucketIndex } from '../../src/sidecar/exposition.js';
import { Sidecar } from '../../src/sidecar/sidecar.js';

const SAMPLES = new URL('../../bpf/samples/', import.meta.url);

function records(file: string): BpftraceRecord[] {
  return readFileSync(new URL(file, SAMPLES), 'utf8').split('\n').flatMap(parseBpftraceLine);
}

function sidecar(ports: number[]): Sidecar {
  return new Sidecar(
    { ports, netns: 0, intervalS: 5, bpftrace: 'bpftrace', bpfDir: '', socketRtt: true, metricsHost: '127.0.0.1', metricsPort: 0 },
    {} as Capabilities,
    { run: [], skipped: [], notes: [], blockers: [] },
    silentLogger,
  );
}

t.test('every record shape of bpftrace 0.17, blank lines included', async (t) => {
  const all = records('json-shapes.json');
  const byName = new Map(all.filter((r) => 'name' in r).map((r) => [(r as { name: string }).name, r]));
  t.same(all[0], { type: 'printf', text: 'printf record, 42 text\n' });
  t.ok(all.some((r) => r.type === 'time'));
  t.same(byName.get('@count2'), { type: 'map', name: '@count2', entries: [{ keys: ['out', '6379'], value: 1 }, { keys: ['in', '8080'], value: 2 }] }, 'multi-key map');
  t.same(byName.get('@scalar_count'), { type: 'map', name: '@scalar_count', entries: [{ keys: [], value: 1 }] }, 'map without keys');
  t.same(byName.get('@neg1'), { type: 'map', name: '@neg1', entries: [{ keys: ['1'], value: -3 }] });
  t.same(byName.get('@hist0'), { type: 'hist', name: '@hist0', entries: [{ keys: [], value: [{ min: 4, max: 7, count: 1 }] }] }, 'hist without keys');
  const hist2 = byName.get('@hist2') as Extract<BpftraceRecord, { type: 'hist' }>;
  t.same(hist2.entries.map((e) => e.keys), [['out', '6379'], ['in', '8080']]);
  t.equal(hist2.entries[1]!.value.length, 8, 'zero-count buckets between the lowest and highest are kept');
  t.same(byName.get('@stats2'), { type: 'stats', name: '@stats2', entries: [{ keys: ['in', '8080'], value: { count: 2, average: 15, total: 31 } }] });
  t.same(byName.get('@stats0'), { type: 'stats', name: '@stats0', entries: [{ keys: [], value: { count: 1, average: 5, total: 5 } }] });
  t.same(byName.get('@avg0'), { type: 'stats', name: '@avg0', entries: [{ keys: [], value: { count: 0, average: 7, total: 0 } }] }, 'avg() has only the average');
  t.same((byName.get('@comma_key') as Extract<BpftraceRecord, { type: 'map' }>).entries[0]!.keys, ['a', 'b'], 'a comma inside a string key cannot be told apart (the programs use none)');
});

t.test('lines that are not bpftrace records fail with ERR_SIDECAR_OUTPUT and keep the line', async (t) => {
  for (const line of ['Attaching 3 probes...', '{"type":"map","data":{"x":1}}', '{"data":1}', '[1,2]', '{"type":"hist","data":{"@h":{"k":[{"min":1}]}}}', '{"type":"printf","data":7}']) {
    const err = t.throws(() => parseBpftraceLine(line)) as BpftraceParseError;
    t.ok(err instanceof BpftraceParseError, line);
    t.equal(err.code, 'ERR_SIDECAR_OUTPUT');
    t.equal(err.line, line);
  }
  t.same(parseBpftraceLine('   '), []);
  t.same(parseBpftraceLine('{"type":"attached_probes","data":{"probes":4}}'), [{ type: 'attached_probes', probes: 4 }]);
  t.same(parseBpftraceLine('{"type":"lost_events","data":{"events":12}}'), [{ type: 'lost_events', events: 12 }]);
  t.same(parseBpftraceLine('{"type":"syscall","data":"x"}'), [{ type: 'other', kind: 'syscall', data: 'x' }], 'unknown record kinds pass as "other"');
});

t.test('hist() buckets land under the first log2 edge at or above their maximum', async (t) => {
  const le = (b: { min?: number; max?: number; count: number }) => {
    const i = histBucketIndex(b);
    return i === LOG2_BUCKETS_SECONDS.length ? Infinity : LOG2_BUCKETS_SECONDS[i]! * 1e6;
  };
  t.equal(le({ min: 0, max: 0, count: 1 }), 1);
  t.equal(le({ min: 1, max: 1, count: 1 }), 1);
  t.equal(Math.round(le({ min: 2, max: 3, count: 1 })), 4);
  t.equal(Math.round(le({ min: 16, max: 31, count: 1 })), 32);
  t.equal(Math.round(le({ min: 32768, max: 65535, count: 1 })), 65536);
  t.equal(le({ max: -1, count: 1 }), 1, 'negative values count in the first bucket');
  t.equal(le({ min: 1073741824, max: 2147483647, count: 1 }), Infinity, 'beyond 2^25 µs');
  t.equal(le({ min: -2147483648, max: 0, count: 1 }), Infinity, "bpftrace's overflow bucket");
  t.equal(le({ min: 30, count: 1 }), Infinity, "lhist's overflow bucket");
});

t.test('recorded tcp-srtt output accumulates into cumulative histograms with sums, and per-socket RTTs by cookie', async (t) => {
  const s = sidecar([8080, 9090]);
  const recs = records('tcp-srtt.json');
  for (const r of recs) s.ingest('tcp-srtt', r);
  // Expected totals straight from the raw records: every interval's delta adds up.
  const raw = (name: string, key: string) =>
    recs.flatMap((r) => (r.type !== 'printf' && 'name' in r && r.name === name ? r.entries.filter((e) => e.keys.join(',') === key) : []));
  const countOf = (key: string) => raw('@tcp_srtt_us', key).reduce((n, e) => n + (e.value as { count: number }[]).reduce((m, b) => m + b.count, 0), 0);
  const sumOf = (key: string) => raw('@tcp_srtt_us_stats', key).reduce((n, e) => n + (e.value as { total: number }).total, 0);
  for (const [dir, key] of [['inbound', 'in,9090'], ['inbound', 'in,8080'], ['outbound', 'out,8080'], ['outbound', 'out,9090']] as const) {
    const snap = s.srtt.snapshot({ direction: dir, port: key.split(',')[1]! })!;
    t.equal(snap.count, countOf(key), `${key}: count`);
    t.ok(Math.abs(snap.sum - sumOf(key) / 1e6) < 1e-9, `${key}: sum in seconds`);
  }
  t.ok(countOf('out,8080') > 1, 'several intervals were recorded');
  // The first interval's out,8080 sample was in [16, 31] µs: it counts under le = 32 µs (index 5) and every edge above.
  const out8080 = s.srtt.snapshot({ direction: 'outbound', port: '8080' })!;
  t.ok(out8080.cumulative[5]! >= 1);
  t.equal(out8080.cumulative.at(-1), out8080.count, 'the +Inf bucket holds every sample');
  const text = await s.metrics();
  t.ok(text.includes(`npcd_tcp_srtt_seconds_count{direction="outbound",port="8080"} ${countOf('out,8080')}\n`));
  const last = raw('@tcp_srtt_sock_us', '18998,9090').at(-1)!.value as number;
  const sock = s.sockets().find((x) => x.cookie === (18998).toString(16));
  t.same({ port: sock?.port, srttUs: sock?.srttUs }, { port: 9090, srttUs: last }, 'cookie 18998 (sk:4a36 in ss) keeps its latest srtt');
});

t.test('recorded tcp-connect output: durations, failures by reason, handshake RTT in both directions', async (t) => {
  const s = sidecar([8080, 9090, 9999, 18080, 18081]);
  for (const r of records('tcp-connect.json')) s.ingest('tcp-connect', r);
  t.equal(s.connectDuration.snapshot({ port: '8080' })?.count, 2);
  t.equal(s.connectFailures.value({ port: '9999', reason: 'refused' }), 2);
  t.equal(s.connectFailures.value({ port: '9999', reason: 'aborted' }), 1);
  t.equal(s.connectFailures.value({ port: '9090', reason: 'timeout' }), 1);
  t.equal(s.handshakeRtt.snapshot({ direction: 'inbound', port: '8080' })?.count, 2);
  t.equal(s.handshakeRtt.snapshot({ direction: 'outbound', port: '18081' })?.count, 1);
});

t.test('recorded tcp-retrans output: deltas add up; failed attempts by kind', async (t) => {
  const s = sidecar([8080, 9090]);
  for (const r of records('tcp-retrans.json')) s.ingest('tcp-retrans', r);
  t.equal(s.retransmits.value({ direction: 'inbound', port: '8080' }), 103 + 23 + 57 + 10);
  t.equal(s.retransmits.value({ direction: 'outbound', port: '9090' }), 2);
  t.equal(s.retransmitErrors.value({ direction: 'inbound', port: '8080', kind: 'dropped' }), 18);
});

t.test('keys outside the watched ports never become label values', async (t) => {
  const s = sidecar([8080]);
  s.ingest('tcp-srtt', parseBpftraceLine('{"type": "hist", "data": {"@tcp_srtt_us": {"in,41234": [{"min": 16, "max": 31, "count": 1}], "sideways,8080": [{"min": 16, "max": 31, "count": 1}]}}}')[0]!);
  s.ingest('tcp-retrans', parseBpftraceLine('{"type": "map", "data": {"@unknown_map": {"in,8080": 1}}}')[0]!);
  const text = await s.metrics();
  t.notMatch(text, /41234|sideways/);
  t.match(text, /npcd_sidecar_output_errors_total\{program="tcp-srtt"\} 2/);
  t.match(text, /npcd_sidecar_output_errors_total\{program="tcp-retrans"\} 1/);
});
