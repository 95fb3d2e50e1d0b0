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

/** The last value each key had in a recorded file: the programs print totals since they started. */
function lastTotals(recs: BpftraceRecord[], name: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const r of recs) if (r.type !== 'printf' && 'name' in r && r.name === name) for (const e of r.entries) out.set(e.keys.join(','), e.value);
  return out;
}

const histCount = (v: unknown) => (v as { count: number }[]).reduce((n, b) => n + b.count, 0);

t.test('recorded tcp-srtt output: totals become cumulative histograms with sums, per-socket RTTs by cookie', async (t) => {
  const s = sidecar([8080, 9090]);
  const recs = records('tcp-srtt.json');
  for (const r of recs) s.ingest('tcp-srtt', r);
  const hists = lastTotals(recs, '@tcp_srtt_us');
  const stats = lastTotals(recs, '@tcp_srtt_us_stats');
  t.ok(hists.size >= 4, 'both directions of both ports were recorded');
  for (const [key, value] of hists) {
    const [dir, port] = key.split(',') as [string, string];
    const snap = s.srtt.snapshot({ direction: dir === 'in' ? 'inbound' : 'outbound', port })!;
    t.equal(snap.count, histCount(value), `${key}: count is the last total, not the sum of prints`);
    t.ok(Math.abs(snap.sum - (stats.get(key) as { total: number }).total / 1e6) < 1e-9, `${key}: sum in seconds`);
    t.equal(snap.cumulative.at(-1), snap.count, `${key}: the +Inf bucket holds every sample`);
  }
  const text = await s.metrics();
  t.ok(text.includes(`npcd_tcp_srtt_seconds_count{direction="outbound",port="8080"} ${histCount(hists.get('out,8080'))}\n`));
  const socks = lastTotals(recs, '@tcp_srtt_sock_us');
  const [cookieKey, srtt] = [...socks].at(-1)!;
  const [cookie, port] = cookieKey.split(',');
  const sock = s.sockets().find((x) => x.cookie === BigInt(cookie!).toString(16));
  t.same({ port: sock?.port, srttUs: sock?.srttUs }, { port: Number(port), srttUs: srtt }, 'a socket keeps its latest srtt, by cookie in hex as ss prints it');
  t.same(Object.keys(sock!).sort(), ['at', 'cookie', 'port', 'srttUs']);
  // Seen recently: a minute (more than three intervals of 5 s) without a segment, and a socket is gone.
  const now = Date.now();
  t.ok(s.sockets(now + 59_000).length > 0, 'still listed after 59 s');
  t.same(s.sockets(now + 61_000), [], 'gone after a minute unseen');
});

t.test('recorded tcp-connect output: durations, failures by reason, handshake RTT in both directions', async (t) => {
  const s = sidecar([8080, 9090, 9999, 18080, 18081]);
  const recs = records('tcp-connect.json');
  for (const r of recs) s.ingest('tcp-connect', r);
  const lat = lastTotals(recs, '@tcp_connect_latency_us');
  t.equal(s.connectDuration.snapshot({ port: '8080' })?.count, histCount(lat.get('8080')));
  t.equal(s.connectDuration.snapshot({ port: '8080' })?.count, 2, 'curl to the veth server, and the bulk download');
  const failures = lastTotals(recs, '@tcp_connect_failures');
  t.equal(s.connectFailures.value({ port: '9999', reason: 'refused' }), failures.get('9999,111'));
  t.equal(s.connectFailures.value({ port: '9999', reason: 'refused' }), 2, 'IPv4 and IPv6 refused');
  t.equal(s.connectFailures.value({ port: '9999', reason: 'aborted' }), 1);
  t.equal(s.connectFailures.value({ port: '9090', reason: 'timeout' }), 1);
  const hs = lastTotals(recs, '@tcp_handshake_rtt_us');
  t.equal(s.handshakeRtt.snapshot({ direction: 'inbound', port: '8080' })?.count, histCount(hs.get('in,8080')));
  t.equal(s.handshakeRtt.snapshot({ direction: 'outbound', port: '18081' })?.count, 1);
});

t.test('recorded tcp-retrans output: totals, not the sum of prints; failed attempts by kind', async (t) => {
  const s = sidecar([8080, 9090]);
  const recs = records('tcp-retrans.json');
  for (const r of recs) s.ingest('tcp-retrans', r);
  const totals = lastTotals(recs, '@tcp_retransmits');
  t.ok((totals.get('in,8080') as number) > 0);
  t.equal(s.retransmits.value({ direction: 'inbound', port: '8080' }), totals.get('in,8080'));
  t.equal(s.retransmits.value({ direction: 'outbound', port: '9090' }), totals.get('out,9090'));
  t.equal(s.retransmitErrors.value({ direction: 'inbound', port: '8080', kind: 'dropped' }), lastTotals(recs, '@tcp_retransmit_errors').get('in,8080,1'));
});

t.test('a program that starts again counts from zero: totals below the last ones are new counts', async (t) => {
  const s = sidecar([8080]);
  const line = (n: number) => parseBpftraceLine(`{"type": "map", "data": {"@tcp_retransmits": {"in,8080": ${n}}}}`)[0]!;
  for (const n of [5, 9, 9, 2, 6]) s.ingest('tcp-retrans', line(n));
  t.equal(s.retransmits.value({ direction: 'inbound', port: '8080' }), 9 + 6, '9 in the first run, 6 in the second');
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
