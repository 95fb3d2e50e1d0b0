import t, { type Test } from 'tap';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createConnection, createServer as createTcpServer, type Socket } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Advice,
  type SidecarMetrics,
  type SsSocket,
  advise,
  classifySocket,
  groupRtt,
  histogramQuantile,
  isLoopbackAddress,
  nextPowerOfTwo,
  observe,
  parseEndpoint,
  parsePrometheusText,
  parseRate,
  parseSs,
  readSidecarMetrics,
  sendBdpBytes,
  summarize,
} from '../../src/sidecar/advise.js';
import { runTcpAdvise } from '../../src/sidecar/advise-cli.js';
import { LOG2_BUCKETS_SECONDS } from '../../src/sidecar/buckets.js';
import type { BufferTriple, Feature, HostSettings, InterfaceQdisc, Setting } from '../../src/sidecar/host.js';

const FIX = fileURLToPath(new URL('../fixtures/sidecar/', import.meta.url));
const fix = (p: string) => join(FIX, p);
const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------
// ss

t.test('ss: real lines of an npcd-like host (IPv4, IPv6, v4-mapped, loopback, retransmits)', async (t) => {
  const { sockets, skipped } = parseSs(readFileSync(fix('ss-netns.txt'), 'utf8'));
  t.equal(sockets.length, 8);
  t.equal(skipped, 0);

  const redis = sockets[0]!;
  t.same(redis.local, { address: '10.232.1.1', port: 42068 });
  t.same(redis.peer, { address: '10.232.2.1', port: 6379 });
  t.equal(redis.sendQ, 6);
  t.equal(redis.cookie, '5b6e');
  t.equal(redis.congestion, 'reno');
  t.equal(redis.rttMs, 48.211);
  t.equal(redis.rttVarMs, 6.765);
  t.equal(redis.minRttMs, 0.085);
  t.equal(redis.rtoMs, 252);
  t.equal(redis.cwnd, 5);
  t.equal(redis.ssthresh, 5);
  t.equal(redis.mss, 1448);
  t.equal(redis.retransCurrent, 0);
  t.equal(redis.retransTotal, 1);
  t.equal(redis.bytesRetrans, 6);
  t.equal(redis.deliveryRateBps, 1050128);
  t.equal(redis.sendRateBps, 1201386);
  t.equal(redis.pacingRateBps, 1441648);
  t.equal(redis.lastSendMs, 16);
  t.equal(redis.appLimited, true);

  // The stream to a client: IPv4-mapped, retransmits, unsent bytes queued.
  const stream = sockets.find((s) => s.cookie === '5b73')!;
  t.same(stream.local, { address: '::ffff:10.232.1.1', port: 8080 });
  t.same(stream.peer, { address: '::ffff:10.232.2.1', port: 45856 });
  t.equal(stream.sendQ, 70952);
  t.equal(stream.retransTotal, 52);
  t.equal(stream.bytesRetrans, 75296);
  t.equal(stream.bytesSent, 2676360);
  t.equal(stream.dataSegsOut, 1849);
  t.equal(stream.notsent, 49232);
  t.equal(stream.appLimited, false);
  t.equal(stream.rttMs, 54.813);

  // The pooled upstream over IPv6.
  const ollama = sockets.find((s) => s.peer.port === 11434)!;
  t.same(ollama.local, { address: 'fd32:1::1', port: 42576 });
  t.same(ollama.peer, { address: 'fd32:2::1', port: 11434 });
  t.equal(ollama.rttMs, 590.034);
  t.equal(ollama.minRttMs, 36.483);
  t.equal(ollama.rcvSpace, 182784);
  t.equal(ollama.rcvRttMs, 49);
  t.equal(ollama.bytesReceived, 6811560);
  t.equal(ollama.retransTotal, 0, 'no retrans: field while nothing was retransmitted');

  const loops = sockets.filter((s) => isLoopbackAddress(s.local.address));
  t.same(loops.map((s) => s.local.address).sort(), ['127.0.0.1', '::1', '::1', '::ffff:127.0.0.1']);
  t.equal(sockets.filter((s) => s.local.address === '10.232.1.1').length, 2);
});

t.test('ss: bbr sockets on loopback, with and without -O', async (t) => {
  const one = parseSs(readFileSync(fix('ss-loopback.txt'), 'utf8'));
  t.equal(one.sockets.length, 4);
  t.ok(one.sockets.every((s) => s.congestion === 'bbr'), 'bbr:(...) is not taken for the algorithm');
  t.same(one.sockets[2]!.local, { address: '::1', port: 45483 });
  t.equal(one.sockets[0]!.minRttMs, 0.023);
  // Two lines per socket and a State column (ss without -O and without a state filter).
  const two = parseSs(readFileSync(fix('ss-loopback-twoline.txt'), 'utf8'));
  t.equal(two.skipped, 0);
  t.same(
    two.sockets.map((s) => [s.cookie, s.local.port, s.peer.port, s.rttMs, s.deliveryRateBps, s.congestion]),
    one.sockets.map((s) => [s.cookie, s.local.port, s.peer.port, s.rttMs, s.deliveryRateBps, s.congestion]),
  );
  t.equal(parseSs('State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\nnonsense\n').skipped, 1, 'a header is not counted');
});

t.test('ss: endpoints, rates, loopback, classification, BDP', async (t) => {
  t.same(parseEndpoint('[::1]:8080'), { address: '::1', port: 8080 });
  t.same(parseEndpoint('[fe80::1]%eth0:22'), { address: 'fe80::1', port: 22 });
  t.same(parseEndpoint('10.0.0.1%eth0:443'), { address: '10.0.0.1', port: 443 });
  t.same(parseEndpoint('[::ffff:10.232.1.1]:8080'), { address: '::ffff:10.232.1.1', port: 8080 });
  t.equal(parseEndpoint('*:*'), null);
  t.equal(parseEndpoint('ino:1234'), null);
  t.equal(parseRate('69747380282bps'), 69747380282);
  t.equal(parseRate('69.7Gbps'), 69.7e9);
  t.equal(parseRate('1.2Mbps'), 1.2e6);
  t.equal(parseRate('fast'), null);
  for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) t.ok(isLoopbackAddress(a), a);
  for (const a of ['10.0.0.1', 'fd32:1::1', '::ffff:10.0.0.1', '128.0.0.1']) t.notOk(isLoopbackAddress(a), a);

  const ports = new Set([8080, 6379]);
  t.same(classifySocket(sock({ local: '10.0.0.1:8080', peer: '10.0.0.2:50000' }), ports), { direction: 'inbound', port: 8080 });
  t.same(classifySocket(sock({ local: '10.0.0.1:40000', peer: '10.0.0.3:6379' }), ports), { direction: 'outbound', port: 6379 });
  t.same(classifySocket(sock({ local: '10.0.0.1:8080', peer: '10.0.0.3:6379' }), ports), { direction: 'inbound', port: 8080 }, 'inbound wins');
  t.equal(classifySocket(sock({ local: '10.0.0.1:40000', peer: '10.0.0.3:443' }), ports), null);

  // 400 Mbit/s × 50 ms = 2.5 MB; min RTT first, RTT when it is missing.
  t.equal(sendBdpBytes(sock({ deliveryRateBps: 400e6, minRttMs: 50, rttMs: 80 })), 2.5e6);
  t.equal(sendBdpBytes(sock({ deliveryRateBps: 400e6, minRttMs: null, rttMs: 80 })), 4e6);
  t.equal(sendBdpBytes(sock({ deliveryRateBps: null })), null);

  t.same(summarize([5, 1, 3, 2, 4]), { n: 5, p50: 3, p90: 5, max: 5 });
  t.same(summarize([1, 2]), { n: 2, p50: 1, p90: 2, max: 2 });
  t.same(summarize(Array.from({ length: 10 }, (_, i) => i + 1)), { n: 10, p50: 5, p90: 9, max: 10 });
  t.equal(summarize([]), null);
  t.equal(nextPowerOfTwo(10e6), 16 * MiB);
  t.equal(nextPowerOfTwo(4096), 4096);
});

// ---------------------------------------------------------------------------
// Prometheus text

/** An exposition of npcd_tcp_srtt_seconds over the sidecar's log2 buckets; counts per bucket index (not cumulative). */
function srttExposition(series: { direction: string; port: number; perBucket: Record<number, number>; inf?: number; sum: number }[]): string {
  const lines = ['# HELP npcd_tcp_srtt_seconds Smoothed RTT of TCP sockets.', '# TYPE npcd_tcp_srtt_seconds histogram'];
  for (const s of series) {
    const l = `direction="${s.direction}",port="${s.port}"`;
    let acc = 0;
    LOG2_BUCKETS_SECONDS.forEach((le, i) => {
      acc += s.perBucket[i] ?? 0;
      lines.push(`npcd_tcp_srtt_seconds_bucket{${l},le="${le}"} ${acc}`);
    });
    acc += s.inf ?? 0;
    lines.push(`npcd_tcp_srtt_seconds_bucket{${l},le="+Inf"} ${acc}`, `npcd_tcp_srtt_seconds_sum{${l}} ${s.sum}`, `npcd_tcp_srtt_seconds_count{${l}} ${acc}`);
  }
  return `${lines.join('\n')}\n`;
}

// Bucket index i holds (2^(i-1), 2^i] µs: 15 → (16.384 ms, 32.768 ms], 16 → (32.768, 65.536], 4 → (8, 16] µs.
const EXPOSITION =
  srttExposition([
    { direction: 'outbound', port: 6379, perBucket: { 15: 10, 16: 10 }, sum: 0.8 },
    { direction: 'inbound', port: 8080, perBucket: { 4: 4 }, sum: 0.00005 },
    { direction: 'out', port: 11434, perBucket: { 16: 1 }, inf: 1, sum: 40 },
  ]) +
  [
    '# HELP npcd_tcp_retransmits_total Retransmitted segments.',
    '# TYPE npcd_tcp_retransmits_total counter',
    'npcd_tcp_retransmits_total{direction="outbound",port="6379"} 7',
    'npcd_tcp_retransmits_total{direction="inbound",port="8080"} 3 1712345678000',
    'npcd_tcp_retransmits_total{direction="sideways",port="8080"} 99',
    'process_cpu_seconds_total 1.5',
    'weird_metric{path="a \\"quoted\\" } value"} 2',
    '',
  ].join('\n');

t.test('metrics: Prometheus text and histogram quantiles', async (t) => {
  const samples = parsePrometheusText(EXPOSITION);
  t.match(samples.find((s) => s.name === 'weird_metric'), { labels: { path: 'a "quoted" } value' }, value: 2 });
  t.match(samples.find((s) => s.name === 'npcd_tcp_retransmits_total' && s.labels.port === '8080'), { value: 3 }, 'timestamp ignored');
  t.equal(samples.filter((s) => s.name === 'npcd_tcp_srtt_seconds_bucket').length, 3 * (LOG2_BUCKETS_SECONDS.length + 1));

  const m = readSidecarMetrics(EXPOSITION);
  t.equal(m.srtt.length, 3);
  const redis = m.srtt.find((h) => h.port === 6379)!;
  t.equal(redis.direction, 'outbound');
  t.equal(redis.count, 20);
  t.equal(redis.sum, 0.8);
  t.equal(redis.buckets.at(-1)!.le, Infinity);
  // rank 10 ends the (16.384, 32.768] ms bucket; rank 18 is 8/10 into (32.768, 65.536] ms.
  t.equal(histogramQuantile(0.5, redis.buckets), 0.032768);
  t.equal(Math.round(histogramQuantile(0.9, redis.buckets)! * 1e9), Math.round((0.032768 + 0.032768 * 0.8) * 1e9));
  // Interpolation inside a bucket: rank 5 is half of the first bucket with counts.
  t.equal(Math.round(histogramQuantile(0.25, redis.buckets)! * 1e9), Math.round((0.016384 + 0.016384 * 0.5) * 1e9));
  // A rank in +Inf gives the largest finite edge; "out" reads as outbound.
  const ollama = m.srtt.find((h) => h.port === 11434)!;
  t.equal(ollama.direction, 'outbound');
  t.equal(histogramQuantile(0.99, ollama.buckets), LOG2_BUCKETS_SECONDS.at(-1));
  // The first bucket starts at 0.
  t.equal(histogramQuantile(0.5, [{ le: 0.001, count: 4 }, { le: Infinity, count: 4 }]), 0.0005);
  t.equal(histogramQuantile(0.5, [{ le: 0.001, count: 0 }, { le: Infinity, count: 0 }]), null, 'no observations');
  t.equal(histogramQuantile(0.5, [{ le: 0.001, count: 3 }]), null, 'no +Inf bucket');
  t.equal(histogramQuantile(1.5, redis.buckets), null);

  t.same(
    m.retransmits.map((r) => [r.direction, r.port, r.total]).sort(),
    [['inbound', 8080, 3], ['outbound', 6379, 7]],
    'unknown direction labels are ignored',
  );
});

t.test('observe: groups per direction and port, histogram RTT preferred over ss', async (t) => {
  const { sockets } = parseSs(readFileSync(fix('ss-netns.txt'), 'utf8'));
  const obs = observe([8080, 6379, 11434], sockets, readSidecarMetrics(EXPOSITION));
  t.same(
    obs.groups.map((g) => `${g.direction}:${g.port}`),
    ['inbound:8080', 'outbound:8080', 'outbound:6379', 'outbound:11434'],
  );
  const inbound = obs.groups[0]!;
  t.match(inbound.ss, { sockets: 3, loopbackSockets: 2, basis: 'non-loopback' });
  t.equal(inbound.ss!.rttMs!.p50, 54.813, 'loopback sockets left out of the summaries');
  t.equal(inbound.ss!.retransRatio, 75296 / 2676360);
  t.match(obs.groups[1]!.ss, { sockets: 2, loopbackSockets: 2, basis: 'loopback' });
  const redis = obs.groups[2]!;
  t.match(redis.ss, { sockets: 2, loopbackSockets: 0, idleOverRto: 1 });
  t.match(redis.metrics, { samples: 20, retransmits: 7 });
  t.equal(groupRtt(redis)!.p50Ms, 32.768);
  t.match(groupRtt(redis)!.source, /metrics, 20 samples/);
  t.equal(obs.sockets.length, 8);
  t.ok(obs.sockets.every((s) => typeof s.loopback === 'boolean' && 'sendBdpBytes' in s));

  const ssOnly = observe([6379], sockets, null);
  t.equal(ssOnly.groups.length, 1);
  t.equal(ssOnly.groups[0]!.metrics, null);
  t.match(groupRtt(ssOnly.groups[0]!), { p50Ms: 0.164, p90Ms: 48.211, source: 'ss, 2 sockets' });
  const none = observe([9999], sockets, null);
  t.same(none.groups, []);
});

// ---------------------------------------------------------------------------
// Rules, on crafted inputs

function setting<T>(name: string, value: T | null, raw?: string): Setting<T> {
  const path = `/proc/sys/${name.replaceAll('.', '/')}`;
  return value === null ? { name, path, value, raw: raw ?? null, error: 'missing' } : { name, path, value, raw: raw ?? String(value) };
}

function host(o: {
  rmem?: BufferTriple | null;
  wmem?: BufferTriple | null;
  ssai?: number | null;
  lowat?: number | null;
  cc?: string | null;
  qdisc?: string | null;
  rmemMax?: number | null;
  wmemMax?: number | null;
  bbr?: Feature['state'];
  fq?: Feature['state'];
  fqCodel?: Feature['state'];
  release?: string;
  interfaces?: InterfaceQdisc[];
} = {}): HostSettings {
  const v = <T>(x: T | undefined, d: T): T => (x === undefined ? d : x);
  return {
    root: '/',
    kernelRelease: setting('kernel.osrelease', v(o.release, '6.1.0')),
    tcpRmem: setting('net.ipv4.tcp_rmem', v(o.rmem, { min: 4096, default: 131072, max: 6291456 })),
    tcpWmem: setting('net.ipv4.tcp_wmem', v(o.wmem, { min: 4096, default: 16384, max: 4194304 })),
    slowStartAfterIdle: setting('net.ipv4.tcp_slow_start_after_idle', v(o.ssai, 1)),
    notsentLowat: setting('net.ipv4.tcp_notsent_lowat', v(o.lowat, 4294967295)),
    congestionControl: setting('net.ipv4.tcp_congestion_control', v(o.cc, 'cubic')),
    availableCongestionControl: setting('net.ipv4.tcp_available_congestion_control', ['reno', 'cubic']),
    allowedCongestionControl: setting('net.ipv4.tcp_allowed_congestion_control', ['reno', 'cubic']),
    defaultQdisc: setting('net.core.default_qdisc', v(o.qdisc, 'pfifo_fast')),
    rmemMax: setting('net.core.rmem_max', v(o.rmemMax, 212992)),
    wmemMax: setting('net.core.wmem_max', v(o.wmemMax, 212992)),
    bbr: { state: o.bbr ?? 'loadable', evidence: ['crafted'] },
    fq: { state: o.fq ?? 'loadable', evidence: ['crafted'] },
    fqCodel: { state: o.fqCodel ?? 'loadable', evidence: ['crafted'] },
    qdiscs: { source: 'file', interfaces: o.interfaces ?? [{ dev: 'lo', loopback: true, root: 'noqueue', children: [] }, { dev: 'eth0', loopback: false, root: 'pfifo_fast', children: [] }] },
  };
}

function sock(o: Partial<Omit<SsSocket, 'local' | 'peer'>> & { local?: string; peer?: string } = {}): SsSocket {
  const { local, peer, ...rest } = o;
  return {
    local: parseEndpoint(local ?? '10.0.0.1:40000')!,
    peer: parseEndpoint(peer ?? '10.0.0.2:6379')!,
    recvQ: 0,
    sendQ: 0,
    cookie: null,
    congestion: 'cubic',
    rttMs: 1,
    rttVarMs: 0.5,
    minRttMs: 1,
    rtoMs: 204,
    cwnd: 10,
    ssthresh: null,
    mss: 1448,
    deliveryRateBps: 1e6,
    sendRateBps: null,
    pacingRateBps: null,
    bytesSent: 10_000,
    bytesAcked: 10_000,
    bytesReceived: 10_000,
    bytesRetrans: null,
    retransCurrent: 0,
    retransTotal: 0,
    dataSegsOut: 10,
    rcvSpace: 14480,
    rcvRttMs: null,
    notsent: 0,
    lastSendMs: 100,
    appLimited: true,
    ...rest,
  };
}

const PORTS = [8080, 6379, 11434];
function hasLine(t: Test, lines: readonly string[], re: RegExp): void {
  t.ok(lines.some((l) => re.test(l)), `a line matches ${re}`, { found: lines });
}
const byId = (advice: Advice[], id: string): Advice => {
  const a = advice.find((x) => x.id === id);
  if (!a) throw new Error(`no advice ${id}`);
  return a;
};
const run = (h: HostSettings, sockets: SsSocket[] | null, metrics: SidecarMetrics | null = null) => advise(h, observe(PORTS, sockets, metrics));

t.test('every run judges every setting once, most urgent first', async (t) => {
  const all = run(host(), [sock()]);
  t.same(all.map((a) => a.id).sort(), ['congestion-control', 'core-rmem-max', 'core-wmem-max', 'default-qdisc', 'notsent-lowat', 'slow-start-after-idle', 'tcp-rmem-max', 'tcp-wmem-max']);
  const rank = { recommend: 0, consider: 1, unknown: 2, ok: 3 };
  for (let i = 1; i < all.length; i++) t.ok(rank[all[i - 1]!.severity] <= rank[all[i]!.severity], `${all[i - 1]!.id} before ${all[i]!.id}`);
  for (const a of all) {
    t.ok(a.reason.length > 0, `${a.id} has a reason`);
    if (a.severity === 'ok' || a.severity === 'unknown') t.same(a.commands, [], `${a.id}: no commands`);
  }
});

t.test('slow-start-after-idle', async (t) => {
  const pooled = [sock({ peer: '10.0.0.2:6379', rttMs: 24, minRttMs: 20, lastSendMs: 5000, rtoMs: 228 }), sock({ peer: '10.0.0.2:6379', rttMs: 18, lastSendMs: 10 })];
  const fires = byId(run(host(), pooled), 'slow-start-after-idle');
  t.equal(fires.severity, 'recommend');
  t.equal(fires.setting, 'net.ipv4.tcp_slow_start_after_idle');
  t.equal(fires.current, '1');
  t.equal(fires.recommended, '0');
  t.same(fires.commands, ['sysctl -w net.ipv4.tcp_slow_start_after_idle=0']);
  t.same(fires.persist, [{ file: '/etc/sysctl.d/90-npcd-tcp.conf', lines: ['net.ipv4.tcp_slow_start_after_idle = 0'] }]);
  t.match(fires.evidence, ['outbound :6379: rtt p50 18.0 ms, p90 24.0 ms (ss, 2 sockets); 1 of 2 sockets idle longer than their RTO; sockets use cubic 2']);
  t.match(fires.reason, /pooled upstream connection/);

  // Short paths: the restart costs little.
  t.equal(byId(run(host(), [sock({ rttMs: 2 })]), 'slow-start-after-idle').severity, 'ok');
  // Already 0.
  const zero = byId(run(host({ ssai: 0 }), pooled), 'slow-start-after-idle');
  t.equal(zero.severity, 'ok');
  t.match(zero.reason, /Already 0/);
  // Loopback does not count, and the evidence says so.
  const loop = byId(run(host(), [sock({ local: '127.0.0.1:40000', peer: '127.0.0.1:6379', rttMs: 30 })]), 'slow-start-after-idle');
  t.equal(loop.severity, 'ok');
  t.match(loop.evidence, [/outbound :6379: 1 loopback socket only, not used/]);
  // Nothing observed.
  t.match(byId(run(host(), null), 'slow-start-after-idle'), { severity: 'ok', reason: /No non-loopback connection/ });
  // Client streams count too.
  t.match(byId(run(host(), [sock({ local: '10.0.0.1:8080', peer: '192.0.2.7:51000', rttMs: 80 })]), 'slow-start-after-idle'), {
    severity: 'recommend',
    reason: /idle client connection/,
  });
  // The histogram wins over ss's snapshot.
  const hist = readSidecarMetrics(EXPOSITION);
  const viaMetrics = byId(run(host(), [sock({ peer: '10.0.0.2:6379', rttMs: 2 })], hist), 'slow-start-after-idle');
  t.equal(viaMetrics.severity, 'recommend');
  hasLine(t, viaMetrics.evidence, /^outbound :6379: rtt p50 32\.8 ms, p90 59\.0 ms \(metrics, 20 samples\); sockets use cubic 1$/);
  // A loopback connection open when ss looks (a local health check) does not hide the RTT the sidecar measured on every connection.
  const localNow = [sock({ local: '127.0.0.1:40000', peer: '127.0.0.1:6379', rttMs: 0.05 })];
  const withLocal = byId(run(host(), localNow, hist), 'slow-start-after-idle');
  t.equal(withLocal.severity, 'recommend', 'the samples still count');
  hasLine(t, withLocal.evidence, /^outbound :6379: rtt p50 32\.8 ms, p90 59\.0 ms \(metrics, 20 samples\)/);
  hasLine(t, withLocal.evidence, /^outbound :6379: 1 loopback socket only in ss, not used; the RTT above is the sidecar's, over every connection$/);
  t.notOk(withLocal.evidence.some((e) => e.includes('(loopback only)')), 'the RTT is not called loopback');
  // The same loopback socket without samples: nothing is known of real paths.
  t.equal(byId(run(host(), localNow), 'slow-start-after-idle').severity, 'ok');
  // bbr sockets skip the restart whatever the sysctl says (the kernel checks ca_ops->cong_control).
  const bbr = byId(run(host(), pooled.map((s) => ({ ...s, congestion: 'bbr' }))), 'slow-start-after-idle');
  t.match(bbr, { severity: 'ok', recommended: null, reason: /outbound :6379\) use bbr, which the kernel exempts/ });
  hasLine(t, bbr.evidence, /sockets use bbr 2$/);
  t.match(byId(run(host({ cc: 'bbr' }), pooled.map((s) => ({ ...s, congestion: null }))), 'slow-start-after-idle'), { severity: 'ok' }, 'the host default decides when ss names no algorithm');
  t.match(byId(run(host({ cc: 'bbr' }), pooled), 'slow-start-after-idle'), { severity: 'recommend' }, 'cubic sockets on a bbr host');
  // Unreadable.
  t.match(byId(run(host({ ssai: null }), pooled), 'slow-start-after-idle'), { severity: 'unknown', current: 'unknown', reason: /could not be read \(missing\)/ });
});

t.test('tcp-wmem-max and net.core.wmem_max: send BDP against the maxima', async (t) => {
  // 400 Mbit/s × 50 ms = 2.5 MB: 60 % of a 4 MiB tcp_wmem max.
  const fat = [sock({ local: '10.0.0.1:8080', peer: '198.51.100.9:50000', deliveryRateBps: 400e6, minRttMs: 50, rttMs: 60 })];
  const all = run(host(), fat);
  const w = byId(all, 'tcp-wmem-max');
  t.equal(w.severity, 'recommend');
  t.equal(w.current, '4096 16384 4194304');
  t.equal(w.recommended, '4096 16384 16777216', '4 × 2.5 MB rounded up to a power of two');
  t.same(w.commands, ['sysctl -w net.ipv4.tcp_wmem="4096 16384 16777216"']);
  t.same(w.persist, [{ file: '/etc/sysctl.d/90-npcd-tcp.conf', lines: ['net.ipv4.tcp_wmem = 4096 16384 16777216'] }]);
  t.match(w.evidence, [/^inbound :8080: send BDP .* max 2\.38 MiB over 1 socket = 59\.6 % of 4\.00 MiB \(max\)$/, 'net.ipv4.tcp_wmem max 4194304 B (4.00 MiB)']);
  const core = byId(all, 'core-wmem-max');
  t.equal(core.severity, 'consider');
  t.equal(core.recommended, '16777216');
  t.same(core.commands, ['sysctl -w net.core.wmem_max=16777216']);
  t.match(core.reason, /SO_SNDBUF/);

  // 1 MB of 4 MiB: fine; the core max (208 KiB) is still exceeded.
  const mid = run(host(), [sock({ deliveryRateBps: 160e6, minRttMs: 50 })]);
  t.equal(byId(mid, 'tcp-wmem-max').severity, 'ok');
  t.match(byId(mid, 'tcp-wmem-max').reason, /at most 50\.0 % of the 4\.00 MiB maximum/);
  t.equal(byId(mid, 'core-wmem-max').severity, 'consider');
  // Never recommends less than the current max.
  t.equal(byId(run(host({ wmem: { min: 4096, default: 16384, max: 64 * MiB } }), [sock({ deliveryRateBps: 8e9, minRttMs: 40 })]), 'tcp-wmem-max').recommended, '4096 16384 268435456');
  // Loopback throughput says nothing about paths.
  const loop = run(host(), [sock({ local: '127.0.0.1:8080', peer: '127.0.0.1:50000', deliveryRateBps: 40e9, minRttMs: 1 })]);
  t.equal(byId(loop, 'tcp-wmem-max').severity, 'ok');
  t.match(byId(loop, 'tcp-wmem-max').evidence, [/inbound :8080: 1 loopback socket only, not used/]);
  // p90 over 10 or more sockets: one outlier does not decide.
  const many = [...Array.from({ length: 9 }, () => sock({ deliveryRateBps: 8e6, minRttMs: 20 })), sock({ deliveryRateBps: 800e6, minRttMs: 50 })];
  t.equal(byId(run(host(), many), 'tcp-wmem-max').severity, 'ok');
  t.equal(byId(run(host(), many.slice(-3)), 'tcp-wmem-max').severity, 'recommend', 'max over fewer sockets');
  t.equal(byId(run(host({ wmem: null }), fat), 'tcp-wmem-max').severity, 'unknown');
});

t.test('tcp-rmem-max and net.core.rmem_max: receive BDP (rcv_space) against the maxima', async (t) => {
  const big = [sock({ peer: '203.0.113.5:11434', rcvSpace: 4 * MiB })];
  const r = byId(run(host(), big), 'tcp-rmem-max');
  t.equal(r.severity, 'recommend');
  t.equal(r.recommended, '4096 131072 16777216');
  t.match(r.evidence, [/^outbound :11434: receive BDP \(rcv_space\) .* = 66\.7 % of 6\.00 MiB \(max\)$/]);
  t.equal(byId(run(host(), big), 'core-rmem-max').severity, 'consider');
  const small = run(host({ rmemMax: 4 * MiB }), [sock({ rcvSpace: 64 * 1024 })]);
  t.equal(byId(small, 'tcp-rmem-max').severity, 'ok');
  t.equal(byId(small, 'core-rmem-max').severity, 'ok');
  t.match(byId(run(host(), null), 'tcp-rmem-max'), { severity: 'ok', reason: /No non-loopback socket/ });
});

t.test('congestion-control: bbr for long, fat or lossy paths when the kernel has it', async (t) => {
  const long = [sock({ peer: '203.0.113.5:11434', rttMs: 120, minRttMs: 90 })];
  const c = byId(run(host(), long), 'congestion-control');
  t.equal(c.severity, 'consider');
  t.equal(c.current, 'cubic');
  t.equal(c.recommended, 'bbr');
  t.same(c.commands, ['modprobe tcp_bbr', 'sysctl -w net.core.default_qdisc=fq', 'sysctl -w net.ipv4.tcp_congestion_control=bbr']);
  t.same(c.persist, [
    { file: '/etc/modules-load.d/npcd-tcp.conf', lines: ['tcp_bbr'] },
    { file: '/etc/sysctl.d/90-npcd-tcp.conf', lines: ['net.core.default_qdisc = fq', 'net.ipv4.tcp_congestion_control = bbr'] },
  ]);
  t.match(c.evidence, ['trigger: outbound :11434 rtt p90 120 ms > 50 ms']);
  t.match(c.reason, /BBR needs pacing: use it with fq .* internal pacing, which Linux has done since 4\.13/);
  // With fq picked, the qdisc advice follows it.
  t.equal(byId(run(host(), long), 'default-qdisc').recommended, 'fq');

  // High BDP.
  const fat = byId(run(host(), [sock({ deliveryRateBps: 1e9, minRttMs: 20 })]), 'congestion-control');
  t.match(fat, { severity: 'consider', evidence: [/^trigger: outbound :6379 send BDP max 2\.38 MiB > 1\.00 MiB$/] });
  // Lossy: 2 % of bytes retransmitted over enough segments.
  const lossy = [sock({ local: '10.0.0.1:8080', peer: '198.51.100.9:50000', bytesSent: 10e6, bytesRetrans: 200e3, dataSegsOut: 7000, retransTotal: 140 })];
  t.match(byId(run(host(), lossy), 'congestion-control'), { severity: 'consider', evidence: ['trigger: inbound :8080 retransmitted 2.00 % > 1.00 %'] });
  // The same ratio over a handful of segments is noise.
  const few = [sock({ bytesSent: 1000, bytesRetrans: 20, dataSegsOut: 5, retransTotal: 1 })];
  const noise = byId(run(host(), few), 'congestion-control');
  t.equal(noise.severity, 'ok');
  t.match(noise.evidence, [/retransmitted 2\.00 % .* too few segments to judge/]);
  // Calm paths, bbr already, no bbr in the kernel, loopback, not cubic, unreadable.
  t.match(byId(run(host(), [sock()]), 'congestion-control'), { severity: 'ok', reason: /cubic suits them/ });
  t.match(byId(run(host({ cc: 'bbr', bbr: 'in-use' }), long), 'congestion-control'), { severity: 'ok', reason: 'Already bbr.' });
  t.match(byId(run(host({ bbr: 'unavailable' }), long), 'congestion-control'), { severity: 'ok', recommended: null, reason: /this kernel has no bbr/ });
  const loop = byId(run(host(), [sock({ local: '[::1]:40000', peer: '[::1]:11434', rttMs: 300 })]), 'congestion-control');
  t.equal(loop.severity, 'ok');
  t.match(loop.evidence, [/outbound :11434: 1 loopback socket only, not used/]);
  t.match(byId(run(host({ cc: 'htcp' }), long), 'congestion-control'), { severity: 'ok', reason: /only judges/ });
  t.equal(byId(run(host({ cc: null }), long), 'congestion-control').severity, 'unknown');
  // bbr available (built in), fq not in the kernel: internal pacing, no qdisc command.
  const noFq = byId(run(host({ bbr: 'available', fq: 'unavailable' }), long), 'congestion-control');
  t.same(noFq.commands, ['sysctl -w net.ipv4.tcp_congestion_control=bbr']);
  t.match(noFq.reason, /fq is not in this kernel, so it relies on the TCP stack's internal pacing/);
  // Before 4.13 BBR needs fq.
  t.match(byId(run(host({ bbr: 'available', fq: 'unavailable', release: '4.9.0-8-amd64' }), long), 'congestion-control').reason, /predates TCP's internal pacing \(4\.13\): it needs fq/);
});

t.test('notsent-lowat', async (t) => {
  const stream = [sock({ local: '10.0.0.1:8080', peer: '198.51.100.9:50000', notsent: 49232, sendQ: 70952 })];
  const n = byId(run(host(), stream), 'notsent-lowat');
  t.equal(n.severity, 'recommend');
  t.equal(n.current, '4294967295 (no limit)');
  t.equal(n.recommended, '131072');
  t.same(n.commands, ['sysctl -w net.ipv4.tcp_notsent_lowat=131072']);
  t.match(n.reason, /backpressure/);
  t.match(n.reason, /16384/);
  t.match(n.evidence, ['inbound :8080: unsent bytes queued p50 48.1 KiB, max 48.1 KiB over 1 socket', 'net.ipv4.tcp_wmem max 4.00 MiB: how much a stream\'s socket can queue without a limit']);
  t.match(byId(run(host({ lowat: -1 }), stream), 'notsent-lowat'), { severity: 'recommend', current: '-1 (no limit)' });
  t.match(byId(run(host({ lowat: 131072 }), stream), 'notsent-lowat'), { severity: 'ok', recommended: null });
  t.match(byId(run(host({ lowat: 16384 }), stream), 'notsent-lowat'), { severity: 'ok' });
  t.match(byId(run(host({ lowat: 8 * MiB }), stream), 'notsent-lowat'), { severity: 'consider', recommended: '131072' });
  t.match(byId(run(host({ lowat: 0 }), stream), 'notsent-lowat'), { severity: 'consider', reason: /0 is not a value the kernel documents/ });
  t.equal(byId(run(host({ lowat: null }), stream), 'notsent-lowat').severity, 'unknown');
});

t.test('default-qdisc', async (t) => {
  const calm = [sock()];
  const mq: InterfaceQdisc[] = [
    { dev: 'lo', loopback: true, root: 'noqueue', children: [] },
    { dev: 'eth0', loopback: false, root: 'mq', children: ['pfifo_fast'] },
    { dev: 'eth1', loopback: false, root: 'pfifo_fast', children: [] },
  ];
  const q = byId(run(host({ interfaces: mq }), calm), 'default-qdisc');
  t.equal(q.severity, 'consider');
  t.equal(q.current, 'pfifo_fast');
  t.equal(q.recommended, 'fq_codel', 'fq_codel without bbr');
  t.same(q.commands, ['sysctl -w net.core.default_qdisc=fq_codel', 'tc qdisc del dev eth0 root   # re-attaches mq with fq_codel per queue', 'tc qdisc replace dev eth1 root fq_codel']);
  t.same(q.persist, [{ file: '/etc/sysctl.d/90-npcd-tcp.conf', lines: ['net.core.default_qdisc = fq_codel'] }]);
  t.match(q.evidence, ['eth0: root qdisc mq (per queue: pfifo_fast)', 'eth1: root qdisc pfifo_fast', 'fq: loadable (crafted)', 'fq_codel: loadable (crafted)']);
  // bbr in use: fq.
  t.equal(byId(run(host({ cc: 'bbr', bbr: 'in-use' }), calm), 'default-qdisc').recommended, 'fq');
  // Only fq_codel in the kernel.
  t.equal(byId(run(host({ cc: 'bbr', bbr: 'in-use', fq: 'unavailable' }), calm), 'default-qdisc').recommended, 'fq_codel');
  // Neither: nothing to switch to.
  t.match(byId(run(host({ fq: 'unavailable', fqCodel: 'unavailable' }), calm), 'default-qdisc'), { severity: 'ok', recommended: null, reason: /this kernel has neither/ });
  // fq set, but an interface still on pfifo_fast.
  const stale = byId(run(host({ qdisc: 'fq' }), calm), 'default-qdisc');
  t.match(stale, { severity: 'consider', recommended: 'fq', commands: ['tc qdisc replace dev eth0 root fq'], reason: /eth0 still uses a FIFO/ });
  t.same(stale.persist, []);
  const good = byId(run(host({ qdisc: 'fq', interfaces: [{ dev: 'eth0', loopback: false, root: 'fq', children: [] }] }), calm), 'default-qdisc');
  t.match(good, { severity: 'ok', reason: /fq already separates flows/ });
  // Not readable (a network namespace other than the first has no default_qdisc).
  t.match(byId(run(host({ qdisc: null }), calm), 'default-qdisc'), { severity: 'unknown', reason: /initial network namespace/ });
});

t.test('a tuned host: everything ok', async (t) => {
  const h = host({
    rmem: { min: 4096, default: 131072, max: 32 * MiB },
    wmem: { min: 4096, default: 16384, max: 32 * MiB },
    ssai: 0,
    lowat: 131072,
    cc: 'bbr',
    bbr: 'in-use',
    qdisc: 'fq',
    fq: 'in-use',
    rmemMax: 32 * MiB,
    wmemMax: 32 * MiB,
    interfaces: [{ dev: 'eth0', loopback: false, root: 'fq', children: [] }],
  });
  const all = run(h, [sock({ rttMs: 40, deliveryRateBps: 100e6, minRttMs: 30 }), sock({ local: '10.0.0.1:8080', peer: '198.51.100.9:50000', rttMs: 70 })]);
  t.same(all.map((a) => a.severity), Array(8).fill('ok'));
  for (const a of all) t.ok(a.evidence.length > 0, `${a.id} says what it checked`);
});

// ---------------------------------------------------------------------------
// Command line

function capture(): { write: (s: string) => void; text: () => string } {
  let out = '';
  return { write: (s) => (out += s), text: () => out };
}

/** An exec that fails as if the command were not installed. */
const noExec = async (file: string): Promise<string> => {
  throw Object.assign(new Error(`spawn ${file} ENOENT`), { code: 'ENOENT' });
};

const FIXTURE_ARGS = ['--root', fix('root-cubic'), '--ss-file', fix('ss-netns.txt'), '--tc-file', fix('tc-mq.json')];

t.test('cli: --format json over fixtures', async (t) => {
  const o = capture();
  t.equal(await runTcpAdvise([...FIXTURE_ARGS, '--format', 'json'], o.write, { exec: noExec }), 0);
  const report = JSON.parse(o.text()) as { host: HostSettings; observations: ReturnType<typeof observe>; advice: Advice[] };
  t.same(Object.keys(report), ['host', 'observations', 'advice']);
  t.equal(report.host.congestionControl.value, 'cubic');
  t.same(report.observations.ports, [8080, 6379, 11434]);
  t.same(report.observations.sources.map((s) => [s.source, s.used]), [['proc', true], ['ss', true], ['tc', true], ['metrics', false]]);
  t.equal(report.observations.sockets.length, 8);
  t.same(
    report.observations.groups.map((g) => [g.direction, g.port, g.ss?.sockets]),
    [['inbound', 8080, 3], ['outbound', 8080, 2], ['outbound', 6379, 2], ['outbound', 11434, 1]],
  );
  const sev = Object.fromEntries(report.advice.map((a) => [a.id, a.severity]));
  t.same(sev, {
    'slow-start-after-idle': 'recommend',
    'notsent-lowat': 'recommend',
    'core-rmem-max': 'consider',
    'congestion-control': 'consider',
    'default-qdisc': 'consider',
    'tcp-wmem-max': 'ok',
    'tcp-rmem-max': 'ok',
    'core-wmem-max': 'ok',
  });
  t.match(byId(report.advice, 'congestion-control').evidence, ['trigger: inbound :8080 rtt p90 54.8 ms > 50 ms', 'trigger: inbound :8080 retransmitted 2.81 % > 1.00 %', 'trigger: outbound :11434 rtt p90 590 ms > 50 ms']);
});

t.test('cli: text output', async (t) => {
  const o = capture();
  t.equal(await runTcpAdvise(['--ports', '8080,6379', ...FIXTURE_ARGS], o.write, { exec: noExec }), 0);
  const text = o.text();
  t.match(text, /^npcd tcp-advise\n {2}proc: {4}10 of 10 settings from .*root-cubic\/proc\/sys, kernel 6\.1\.0-18-amd64\n/);
  t.match(text, /\n {2}ss: {6}8 established sockets \(.*ss-netns\.txt\)\n/);
  t.match(text, /\n {2}metrics: not requested \(--metrics URL\)\n/);
  t.match(text, /\n {2}ports: {3}inbound :8080: 3 sockets \(2 loopback\); outbound :8080: 2 sockets \(2 loopback\)\n {11}outbound :6379: 2 sockets\n/);
  t.notMatch(text, /:11434/, 'only the ports asked for');
  t.match(text, /\nRECOMMEND net\.ipv4\.tcp_slow_start_after_idle: 1 → 0 {2}\[slow-start-after-idle\]\n/);
  t.match(text, /\n {2}\$ sysctl -w net\.ipv4\.tcp_slow_start_after_idle=0\n/);
  t.match(text, /\nOK {8}net\.ipv4\.tcp_wmem: 4096 16384 4194304 {2}\[tcp-wmem-max\]\n/);
  t.match(text, /\nTo keep the changes across reboots, add these lines:\n {2}\/etc\/sysctl\.d\/90-npcd-tcp\.conf:\n {4}net\.ipv4\.tcp_slow_start_after_idle = 0\n/);
  t.match(text, /\n {2}then run: sysctl --system\n/);
  t.match(text, /\n {2}\/etc\/modules-load\.d\/npcd-tcp\.conf:\n {4}tcp_bbr\n/);
});

t.test('cli: --metrics fetches the sidecar page', async (t) => {
  let status = 200;
  const server: Server = createServer((req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain; version=0.0.4' });
    res.end(req.url === '/metrics' ? EXPOSITION : '');
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => server.close(() => r())));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;

  const o = capture();
  t.equal(await runTcpAdvise([...FIXTURE_ARGS, '--format', 'json', '--metrics', url], o.write, { exec: noExec }), 0);
  const report = JSON.parse(o.text()) as { observations: ReturnType<typeof observe>; advice: Advice[] };
  t.match(report.observations.sources[3], { source: 'metrics', used: true, detail: `${url}: 3 srtt histograms (26 samples), 2 retransmit counters` });
  const redis = report.observations.groups.find((g) => g.direction === 'outbound' && g.port === 6379)!;
  t.match(redis.metrics, { samples: 20, retransmits: 7, rttSeconds: { p50: 0.032768 } });
  // The histogram replaces ss's RTTs wherever it has samples (inbound :8080 here too).
  const ev = byId(report.advice, 'slow-start-after-idle').evidence;
  hasLine(t, ev, /^inbound :8080: rtt p50 0\.012 ms, p90 0\.015 ms \(metrics, 4 samples\); sockets use reno 1$/);
  hasLine(t, ev, /^outbound :6379: rtt p50 32\.8 ms, p90 59\.0 ms \(metrics, 20 samples\); 1 of 2 sockets idle longer than their RTO; sockets use reno 2$/);

  status = 503;
  const bad = capture();
  t.equal(await runTcpAdvise([...FIXTURE_ARGS, '--metrics', url], bad.write, { exec: noExec }), 0);
  t.match(bad.text(), /metrics: http:\/\/127\.0\.0\.1:\d+\/metrics answered HTTP 503; continuing without metrics/);

  // Nothing listens: the error is reported and the other sources still count.
  const closed = createTcpServer();
  await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
  const deadPort = (closed.address() as AddressInfo).port;
  await new Promise<void>((r) => closed.close(() => r()));
  const dead = capture();
  t.equal(await runTcpAdvise([...FIXTURE_ARGS, '--metrics', `http://127.0.0.1:${deadPort}/metrics`], dead.write, { exec: noExec }), 0);
  t.match(dead.text(), /metrics: http:\/\/127\.0\.0\.1:\d+\/metrics: .*; continuing without metrics/);
  t.match(dead.text(), /RECOMMEND net\.ipv4\.tcp_slow_start_after_idle/);
});

t.test('cli: ss missing, ss run through exec', async (t) => {
  const o = capture();
  t.equal(await runTcpAdvise(['--root', fix('root-cubic'), '--tc-file', fix('tc-mq.json')], o.write, { exec: noExec }), 0);
  t.match(o.text(), /\n {2}ss: {6}ss not found \(install iproute2\); continuing without socket observations\n/);
  t.match(o.text(), /:8080: nothing observed/);

  const calls: string[][] = [];
  const fake = async (file: string, args: readonly string[]) => {
    calls.push([file, ...args]);
    if (file === 'ss') return readFileSync(fix('ss-loopback.txt'), 'utf8');
    return readFileSync(fix('tc-host.json'), 'utf8');
  };
  const j = capture();
  t.equal(await runTcpAdvise(['--root', fix('root-cubic'), '--ports', '42025', '--format', 'json'], j.write, { exec: fake }), 0);
  t.same(calls.sort(), [['ss', '-tinHOe', 'state', 'established'], ['tc', '-j', 'qdisc', 'show']]);
  const report = JSON.parse(j.text()) as { observations: ReturnType<typeof observe> };
  t.match(report.observations.sources[1], { source: 'ss', used: true, detail: '4 established sockets (ss -tinHOe state established)' });
  t.same(report.observations.groups.map((g) => [g.direction, g.port, g.ss?.basis]), [['inbound', 42025, 'loopback'], ['outbound', 42025, 'loopback']]);
});

t.test('cli: an ss without -O is run again in the two-line layout', async (t) => {
  const calls: string[] = [];
  const exec = async (file: string, args: readonly string[]) => {
    if (file === 'tc') return readFileSync(fix('tc-host.json'), 'utf8');
    calls.push(args.join(' '));
    if (args[0] === '-tinHOe') throw new Error('ss: invalid option -- \'O\'');
    return `State Recv-Q Send-Q Local Address:Port Peer Address:Port Process\n${readFileSync(fix('ss-loopback-twoline.txt'), 'utf8')}`;
  };
  const o = capture();
  t.equal(await runTcpAdvise(['--root', fix('root-cubic'), '--ports', '42025', '--format', 'json'], o.write, { exec }), 0);
  t.same(calls, ['-tinHOe state established', '-tine state established']);
  const report = JSON.parse(o.text()) as { observations: ReturnType<typeof observe> };
  t.match(report.observations.sources[1], { used: true, detail: /^4 established sockets \(ss -tine state established, after ss -tinHOe state established failed: ss: invalid option/ });
  t.equal(report.observations.sockets.length, 2);

  const never = capture();
  const broken = async (file: string) => {
    if (file === 'tc') return '[]';
    throw new Error('ss: boom');
  };
  t.equal(await runTcpAdvise(['--root', fix('root-cubic')], never.write, { exec: broken }), 0);
  t.match(never.text(), /ss: {6}ss -tinHOe state established failed: ss: boom; ss -tine state established failed: ss: boom; continuing without socket observations/);
});

t.test('cli: usage errors exit 2 with ERR_CONFIG_INVALID', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--format', 'xml'], /^npcd tcp-advise: ERR_CONFIG_INVALID: --format must be one of text, json \(got "xml"\)\n$/],
    [['--ports', '8080,0'], /--ports must be a comma-separated list of ports from 1 to 65535 \(got "0"\)/],
    [['--ports', 'redis'], /--ports must be .*\(got "redis"\)/],
    [['--ports', ','], /--ports must name at least one port/],
    [['--metrics', 'ftp://example.org/metrics'], /--metrics must be an http:\/\/ or https:\/\/ URL/],
    [['--metrics', 'not a url'], /--metrics must be an http:\/\/ or https:\/\/ URL/],
    [['--frobnicate'], /--frobnicate is not a known option/],
    [['--ss-file'], /--ss-file needs a value/],
    [['extra'], /unexpected argument "extra"/],
  ];
  for (const [argv, re] of cases) {
    const o = capture();
    t.equal(await runTcpAdvise(argv, o.write, { exec: noExec }), 2, argv.join(' '));
    t.match(o.text(), re, argv.join(' '));
  }
  const help = capture();
  t.equal(await runTcpAdvise(['--help'], help.write), 0);
  t.match(help.text(), /^Usage: npcd tcp-advise \[options\]\n/);
  for (const flag of ['--ports LIST', '--metrics URL', '--format FORMAT', '--root DIR', '--ss-file FILE', '--tc-file FILE']) t.match(help.text(), `\n  ${flag} `);
  t.match(help.text(), /\n {2}-h, --help {7}Show this help\.\n$/);
  t.match(help.text(), /\(default: 8080,6379,11434\)/);
});

t.test('cli: a live run on this machine (real /proc, ss and tc)', async (t) => {
  // One loopback connection on a port of our own, so ss has something to report.
  const server = createTcpServer((s) => s.on('data', (d) => s.write(d)));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const client: Socket = createConnection(port, '127.0.0.1');
  await new Promise<void>((r) => client.on('connect', () => r()));
  client.write(Buffer.alloc(64 * 1024));
  await new Promise<void>((r) => client.once('data', () => r()));
  t.teardown(() => {
    client.destroy();
    server.close();
  });

  const o = capture();
  t.equal(await runTcpAdvise(['--format', 'json', '--ports', String(port)], o.write), 0);
  const report = JSON.parse(o.text()) as { host: HostSettings; observations: ReturnType<typeof observe>; advice: Advice[] };
  t.equal(report.host.root, '/');
  t.same(report.observations.sources.map((s) => s.source), ['proc', 'ss', 'tc', 'metrics']);
  t.equal(report.advice.length, 8);
  for (const a of report.advice) {
    t.ok(['recommend', 'consider', 'ok', 'unknown'].includes(a.severity), `${a.id}: ${a.severity}`);
    t.type(a.reason, 'string');
    t.ok(Array.isArray(a.evidence) && Array.isArray(a.commands) && Array.isArray(a.persist));
  }
  const ss = report.observations.sources[1]!;
  if (!ss.used) {
    t.comment(`ss not usable here: ${ss.detail}`);
    return;
  }
  // Both ends of the connection: the server side inbound, the client side outbound.
  t.same(report.observations.groups.map((g) => [g.direction, g.ss?.sockets, g.ss?.basis]), [['inbound', 1, 'loopback'], ['outbound', 1, 'loopback']]);

  const text = capture();
  t.equal(await runTcpAdvise(['--ports', String(port)], text.write), 0);
  t.match(text.text(), /^npcd tcp-advise\n/);
});
