/**
 * `npcd sidecar` for real, as root, on loopback in the host namespace: the
 * built CLI (dist/cli.js: run `npm run build` first) runs its bpftrace
 * programs on this kernel's tracepoints while the test makes TCP traffic to
 * its own servers on free ports, and the test reads back /metrics, /status
 * and /sockets. Every sidecar runs with --interval 1s; a count is first
 * awaited (generous limits), then re-read after a settle time of two and a
 * half intervals to catch over-counting (a delta for an event is printed at
 * the next tick at the latest).
 *
 * Skipped only when not root or without bpftrace (CI has both).
 */
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLI, runCli } from '../helpers/child.js';
import { createNetns, netnsInode, Peer, ssSockets } from '../helpers/netns.js';
import {
  bpfPrograms,
  bpftraceProcesses,
  freeServicePorts,
  histogram,
  INTERVAL_MS,
  liveSkipReason,
  processName,
  programIdsHeldBy,
  type Sample,
  select,
  SidecarProcess,
  tracepointProgramIds,
  value,
  waitForValue,
} from '../helpers/sidecar-process.js';

const skip = liveSkipReason();
// Each sidecar start detects the kernel (bpftrace --info, -lv) and attaches three programs: a few seconds each.
t.setTimeout(300_000);

const SETTLE_MS = 2.5 * INTERVAL_MS;
const WAIT_MS = 30_000;
const LOOP = '127.0.0.1';

const FAMILIES = [
  'npcd_tcp_srtt_seconds',
  'npcd_tcp_connect_duration_seconds',
  'npcd_tcp_connect_failures_total',
  'npcd_tcp_handshake_rtt_seconds',
  'npcd_tcp_retransmits_total',
  'npcd_tcp_retransmit_errors_total',
  'npcd_tcp_synack_retransmits_total',
];

/** Every npcd_tcp_* sample that carries `port`. */
function tcpSeriesWithPort(samples: readonly Sample[], port: number): Sample[] {
  return samples.filter((s) => FAMILIES.some((f) => s.name.startsWith(f)) && s.labels.port === String(port));
}

/** Opens `n` connections to host:port, each doing `rounds` PING/PONG round trips while all are open, then closes them. */
async function pingPongConnections(peer: Peer, host: string, port: number, n: number, rounds: number): Promise<void> {
  const conns = await Promise.all(Array.from({ length: n }, () => peer.connect(host, port)));
  await Promise.all(conns.map((c) => peer.ping(c, rounds)));
  await Promise.all(conns.map((c) => peer.close(c)));
}

t.test('one sidecar on loopback: connections, a refused connect, an unwatched port', { skip }, async (t) => {
  const [watched, closed, unwatched, unwatchedClosed] = (await freeServicePorts(4)) as [number, number, number, number];
  const sc = await SidecarProcess.start(t, ['--ports', `${watched},${closed}`, '--socket-rtt']);
  const server = await Peer.start(t);
  await server.listen(watched, LOOP);
  await server.listen(unwatched, LOOP);
  const client = await Peer.start(t);
  const P = String(watched);

  t.test('N connections with round trips: connect, handshake and srtt samples', async (t) => {
    const N = 5;
    const before = await sc.scrape();
    const base = (name: string, labels: Record<string, string>) => value(before, name, labels);
    const connect0 = base('npcd_tcp_connect_duration_seconds_count', { port: P });
    const hsIn0 = base('npcd_tcp_handshake_rtt_seconds_count', { direction: 'inbound', port: P });
    const hsOut0 = base('npcd_tcp_handshake_rtt_seconds_count', { direction: 'outbound', port: P });
    const srttIn0 = base('npcd_tcp_srtt_seconds_count', { direction: 'inbound', port: P });

    await pingPongConnections(client, LOOP, watched, N, 3);

    await waitForValue(
      () => sc.scrape(),
      (s) =>
        value(s, 'npcd_tcp_connect_duration_seconds_count', { port: P }) >= connect0 + N &&
        value(s, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'inbound', port: P }) >= hsIn0 + N &&
        value(s, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'outbound', port: P }) >= hsOut0 + N &&
        value(s, 'npcd_tcp_srtt_seconds_count', { direction: 'inbound', port: P }) >= srttIn0 + N,
      WAIT_MS,
      `${N} connections counted`,
    );
    await sleep(SETTLE_MS);
    const after = await sc.scrape();
    t.equal(value(after, 'npcd_tcp_connect_duration_seconds_count', { port: P }) - connect0, N, `connect duration: exactly ${N} samples (the clients are on this host: outbound opens)`);
    t.equal(value(after, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'inbound', port: P }) - hsIn0, N, `handshake RTT inbound: exactly ${N} (the server's child sockets)`);
    t.equal(value(after, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'outbound', port: P }) - hsOut0, N, `handshake RTT outbound: exactly ${N} (the clients' sockets)`);
    // One sample per socket per interval, at the first segment it receives: each of the N server sockets received PINGs.
    const srttIn = histogram(after, 'npcd_tcp_srtt_seconds', { direction: 'inbound', port: P });
    t.ok(srttIn, 'an inbound srtt series for the port');
    if (srttIn) {
      t.ok(srttIn.count - srttIn0 >= N, `srtt inbound: at least one sample per server socket (${srttIn.count - srttIn0} >= ${N})`);
      const mean = srttIn.sum / srttIn.count;
      t.ok(mean > 0 && mean < 0.01, `srtt inbound mean is loopback-sized: ${(mean * 1e6).toFixed(0)} µs (0 < mean < 10 ms)`);
      t.equal(srttIn.buckets.at(-1)?.count, srttIn.count, '+Inf bucket equals _count');
    }
    const srttOut0 = base('npcd_tcp_srtt_seconds_count', { direction: 'outbound', port: P });
    t.ok(value(after, 'npcd_tcp_srtt_seconds_count', { direction: 'outbound', port: P }) - srttOut0 >= N, 'srtt outbound: the client sockets received PONGs');
    const connect = histogram(after, 'npcd_tcp_connect_duration_seconds', { port: P });
    t.ok(connect && connect.sum > 0, 'connect duration has a positive sum');
    t.same(select(after, 'npcd_tcp_connect_failures_total', { port: P }), [], 'no connect failure on the listening port');
    t.comment(`loopback: srtt inbound mean ${srttIn ? ((srttIn.sum / srttIn.count) * 1e6).toFixed(1) : '?'} µs over ${srttIn?.count} samples; connect mean ${connect ? ((connect.sum / connect.count) * 1e6).toFixed(1) : '?'} µs`);
  });

  t.test('a connect to a closed watched port: one failure, reason refused, no duration', async (t) => {
    const C = String(closed);
    const before = await sc.scrape();
    const refused0 = value(before, 'npcd_tcp_connect_failures_total', { port: C, reason: 'refused' });
    t.equal(await client.connectFails(LOOP, closed), 'ECONNREFUSED', 'the client sees ECONNREFUSED');
    await waitForValue(() => sc.scrape(), (s) => value(s, 'npcd_tcp_connect_failures_total', { port: C, reason: 'refused' }) >= refused0 + 1, WAIT_MS, 'refused connect counted');
    await sleep(SETTLE_MS);
    const after = await sc.scrape();
    t.equal(value(after, 'npcd_tcp_connect_failures_total', { port: C, reason: 'refused' }) - refused0, 1, 'exactly one refused connect');
    t.same(
      select(after, 'npcd_tcp_connect_failures_total', { port: C }).map((s) => s.labels.reason),
      ['refused'],
      'no other reason for that port',
    );
    t.equal(value(after, 'npcd_tcp_connect_duration_seconds_count', { port: C }), 0, 'no connect duration sample for a failed connect');
    t.equal(value(after, 'npcd_tcp_handshake_rtt_seconds_count', { port: C }), 0, 'no handshake RTT for a failed connect');
  });

  t.test('traffic to ports that are not watched leaves no series with those ports', async (t) => {
    const before = await sc.scrape();
    const control0 = value(before, 'npcd_tcp_connect_duration_seconds_count', { port: P });
    const errors0 = value(before, 'npcd_sidecar_output_errors_total');
    await pingPongConnections(client, LOOP, unwatched, 3, 3);
    t.equal(await client.connectFails(LOOP, unwatchedClosed), 'ECONNREFUSED', 'a refused connect to an unwatched port');
    // A watched connection in the same window shows the sidecar was counting meanwhile.
    await pingPongConnections(client, LOOP, watched, 1, 2);
    await waitForValue(() => sc.scrape(), (s) => value(s, 'npcd_tcp_connect_duration_seconds_count', { port: P }) >= control0 + 1, WAIT_MS, 'the watched control connection counted');
    await sleep(SETTLE_MS);
    const after = await sc.scrape();
    for (const port of [unwatched, unwatchedClosed]) {
      t.same(tcpSeriesWithPort(after, port), [], `no npcd_tcp_* series (any family) with port="${port}"`);
      t.notOk(
        after.some((s) => Object.values(s.labels).includes(String(port))),
        `no sample at all has a label value ${port}`,
      );
      t.same((await sc.sockets()).filter((s) => s.port === port), [], `/sockets has no socket of port ${port}`);
    }
    // The programs filter in the kernel: had one printed an unwatched port, the sidecar would drop and count it here.
    t.equal(value(after, 'npcd_sidecar_output_errors_total') - errors0, 0, 'no unexpected record from the programs');
  });
});

t.test('--netns: a sidecar watching another namespace does not count host loopback traffic', { skip }, async (t) => {
  const ns = await createNetns(t, 'f');
  const [port] = (await freeServicePorts(1)) as [number];
  const P = String(port);
  const sc = await SidecarProcess.start(t, ['--ports', P, '--netns', ns, '--socket-rtt']);
  const status = await sc.status();
  t.equal(status.netns, netnsInode(ns), `--netns ${ns} resolved to the namespace's inode`);
  t.ok(status.programs.every((p) => p.args[2] === String(netnsInode(ns))), 'every program got the inode as NETNS ($3)');

  // Host loopback traffic on the watched port: must not count.
  const hostServer = await Peer.start(t);
  await hostServer.listen(port, LOOP);
  const hostClient = await Peer.start(t);
  const hostConns = await Promise.all([0, 1, 2].map(() => hostClient.connect(LOOP, port)));
  await Promise.all(hostConns.map((c) => hostClient.ping(c, 3)));
  const hostCookies = (await ssSockets()).filter((s) => s.state === 'ESTAB' && (s.localPort === port || s.peerPort === port)).flatMap((s) => (s.cookie ? [s.cookie] : []));
  t.equal(hostCookies.length, 6, 'ss (host) shows both ends of the 3 host connections');

  // The same on the namespace's own loopback: must count (the filter passes what it should).
  const nsPeer = await Peer.start(t, ns);
  await nsPeer.listen(port, LOOP);
  const nsConn = await nsPeer.connect(LOOP, port);
  await nsPeer.ping(nsConn, 3);
  const nsCookies = (await ssSockets(ns)).filter((s) => s.state === 'ESTAB' && (s.localPort === port || s.peerPort === port)).flatMap((s) => (s.cookie ? [s.cookie] : []));
  t.equal(nsCookies.length, 2, `ss (in ${ns}) shows both ends of the namespace's connection`);

  await waitForValue(() => sc.scrape(), (s) => value(s, 'npcd_tcp_connect_duration_seconds_count', { port: P }) >= 1, WAIT_MS, 'the namespace connection counted');
  await sleep(SETTLE_MS);
  const after = await sc.scrape();
  t.equal(value(after, 'npcd_tcp_connect_duration_seconds_count', { port: P }), 1, 'connect duration: only the namespace connection (not the 3 on the host)');
  t.equal(value(after, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'inbound', port: P }), 1, 'handshake inbound: only the namespace connection');
  t.equal(value(after, 'npcd_tcp_handshake_rtt_seconds_count', { direction: 'outbound', port: P }), 1, 'handshake outbound: only the namespace connection');
  // One sample per socket per interval: the namespace's one server socket gives 1 (2 if its pings straddled a tick), the host's 3 would add 3.
  const srttIn = value(after, 'npcd_tcp_srtt_seconds_count', { direction: 'inbound', port: P });
  t.ok(srttIn >= 1 && srttIn <= 2, `srtt inbound: only the namespace server socket's samples (${srttIn})`);
  const sockets = await sc.sockets();
  t.same(sockets.map((s) => s.cookie).filter((c) => hostCookies.includes(c)), [], '/sockets holds no host socket');
  t.same(sockets.map((s) => s.cookie).sort(), [...nsCookies].sort(), "/sockets holds exactly the namespace connection's two sockets");
  await Promise.all(hostConns.map((c) => hostClient.close(c)));
});

t.test('SIGTERM: exit 0, no bpftrace left, no BPF program left on a tracepoint', { skip }, async (t) => {
  const [port] = (await freeServicePorts(1)) as [number];
  const tpBefore = await tracepointProgramIds();
  const sc = await SidecarProcess.start(t, ['--ports', String(port)]);
  const status = await sc.status();
  const pids = status.programs.map((p) => p.pid!);
  t.equal(pids.length, 3, 'three programs run');
  t.same(pids.map(processName), ['bpftrace', 'bpftrace', 'bpftrace'], '/status pids are bpftrace processes');
  for (const p of status.programs) t.ok((p as { attachedProbes?: number }).attachedProbes! >= 2, `${p.name}: /status counts its attached probes (${(p as { attachedProbes?: number }).attachedProbes})`);
  t.ok(pids.every((p) => bpftraceProcesses().includes(p)), 'pgrep -x bpftrace lists them');
  const held = pids.flatMap(programIdsHeldBy);
  const tpNow = await tracepointProgramIds();
  const ours = held.filter((id) => tpNow.has(id));
  // tcp_probe, inet_sock_set_state, tcp_retransmit_skb, tcp_retransmit_synack.
  t.equal(ours.length, 4, `the programs hold 4 tracepoint programs (ids ${ours.join(', ')})`);
  const names = (await bpfPrograms()).filter((p) => ours.includes(p.id)).map((p) => p.name ?? '');
  t.ok(names.some((n) => n.startsWith('tcp_probe')) && names.some((n) => n.startsWith('inet_sock_set')), `bpftool names them: ${names.join(', ')}`);

  // Some traffic, so the programs have something to print at exit.
  const server = await Peer.start(t);
  await server.listen(port, LOOP);
  const client = await Peer.start(t);
  await pingPongConnections(client, LOOP, port, 1, 2);

  const exit = await sc.stop();
  t.same(exit, { code: 0, signal: null, killed: false }, 'exit code 0 after SIGTERM, without needing SIGKILL');
  t.ok(sc.logs.some((l) => l.msg === 'sidecar stopped; no program left attached'), 'it said it stopped its programs');
  t.same(pids.filter((p) => processName(p) !== undefined), [], 'none of its bpftrace processes remains');
  t.same(bpftraceProcesses().filter((p) => pids.includes(p) || sc.bpftracePids.has(p)), [], 'pgrep -x bpftrace lists none of them');
  // The kernel frees a program once its last reference is gone; allow it a moment.
  const tpAfter = await waitForValue(() => tracepointProgramIds(), (ids) => ours.every((id) => !ids.has(id)), 10_000, 'its tracepoint programs unloaded');
  t.same(ours.filter((id) => tpAfter.has(id)), [], 'bpftool lists none of its tracepoint programs');
  // Other test files may run sidecars meanwhile: programs held by other live bpftrace processes are
  // theirs, not leaks (and one that just exited may be listed a moment longer: hence the wait).
  const leakedNow = async () => {
    const ids = await tracepointProgramIds();
    const others = new Set(bpftraceProcesses().flatMap(programIdsHeldBy));
    return { after: ids.size, leaked: [...ids].filter((id) => !tpBefore.has(id) && !others.has(id)) };
  };
  const final = await waitForValue(leakedNow, (r) => r.leaked.length === 0, 10_000, 'no tracepoint program beyond those before the start').catch(() => leakedNow());
  t.same(final.leaked, [], `no more tracepoint programs than before it started, apart from other live bpftrace processes' (before ${tpBefore.size}, after ${final.after})`);
});

t.test('a bpftrace program killed with SIGKILL is restarted and counts again', { skip }, async (t) => {
  const [port] = (await freeServicePorts(1)) as [number];
  const P = String(port);
  const sc = await SidecarProcess.start(t, ['--ports', P]);
  const server = await Peer.start(t);
  await server.listen(port, LOOP);
  const client = await Peer.start(t);
  const before = await sc.status();
  // Without --socket-rtt (the default) tcp-srtt keeps no per-socket map and /sockets says so.
  t.equal(before.programs.find((p) => p.name === 'tcp-srtt')?.args[1], '0', 'tcp-srtt runs with FLAGS 0 by default');
  const sockets = await sc.get('/sockets');
  t.equal(sockets.status, 404, '/sockets answers 404 without --socket-rtt');
  t.match(JSON.parse(sockets.text), { error: { code: 'ERR_HTTP_NOT_FOUND', message: /--socket-rtt/ } }, '/sockets names the flag that turns it on');
  const old = before.programs.find((p) => p.name === 'tcp-connect')!;
  t.ok(old.pid, 'tcp-connect runs');
  process.kill(old.pid!, 'SIGKILL');

  // The runner restarts it after its backoff (500 ms); ready again once the new process printed BEGIN.
  const status = await waitForValue(
    () => sc.status(),
    (s) => {
      const p = s.programs.find((x) => x.name === 'tcp-connect');
      return !!p && p.running && p.ready && p.pid !== undefined && p.pid !== old.pid;
    },
    WAIT_MS,
    'tcp-connect restarted and attached',
  );
  const now = status.programs.find((p) => p.name === 'tcp-connect')!;
  t.not(now.pid, old.pid, `a new pid (${old.pid} -> ${now.pid})`);
  t.equal(now.restarts, 1, '/status counts one restart');
  t.equal(now.lastExit?.signal, 'SIGKILL', '/status shows the SIGKILL');
  t.equal(processName(old.pid!), undefined, 'the killed process is gone');
  t.same(
    status.programs.filter((p) => p.name !== 'tcp-connect').map((p) => [p.name, p.restarts, p.pid]),
    before.programs.filter((p) => p.name !== 'tcp-connect').map((p) => [p.name, 0, p.pid]),
    'the other programs were not touched',
  );
  const m = await sc.scrape();
  t.equal(value(m, 'npcd_sidecar_program_restarts_total', { program: 'tcp-connect' }), 1, 'npcd_sidecar_program_restarts_total{program="tcp-connect"} = 1');
  t.equal(value(m, 'npcd_sidecar_program_restarts_total', { program: 'tcp-srtt' }) + value(m, 'npcd_sidecar_program_restarts_total', { program: 'tcp-retrans' }), 0, 'no restart of the others');
  t.equal(value(m, 'npcd_sidecar_program_up', { program: 'tcp-connect' }), 1, 'npcd_sidecar_program_up{program="tcp-connect"} = 1');

  const connect0 = value(m, 'npcd_tcp_connect_duration_seconds_count', { port: P });
  await pingPongConnections(client, LOOP, port, 3, 2);
  await waitForValue(() => sc.scrape(), (s) => value(s, 'npcd_tcp_connect_duration_seconds_count', { port: P }) >= connect0 + 3, WAIT_MS, 'new connections counted');
  await sleep(SETTLE_MS);
  t.equal(value(await sc.scrape(), 'npcd_tcp_connect_duration_seconds_count', { port: P }) - connect0, 3, 'the restarted program counts exactly the 3 new connections');
});

t.test('npcd sidecar --check, and bad --ports', { skip }, async (t) => {
  const check = await runCli(['sidecar', '--check']);
  t.equal(check.code, 0, '--check exits 0 (programs can run here)');
  for (const p of ['tcp-srtt', 'tcp-connect', 'tcp-retrans']) t.match(check.stdout, new RegExp(`^  run   ${p}: `, 'm'), `lists ${p} as run`);
  t.notMatch(check.stdout, /^ {2}skip /m, 'skips no program');
  // This kernel (and CI's, the same) has neither kprobes nor fentry: both are reported unavailable, with the reason.
  // The expectation is read from the host, so the test states what the kernel has rather than assuming it.
  const hasKprobes = existsSync('/sys/kernel/tracing/kprobe_events') || existsSync('/sys/kernel/debug/tracing/kprobe_events') || existsSync('/sys/bus/event_source/devices/kprobe');
  const hasKfunc = /^\s*kfunc:\s*yes/m.test(spawnSync('bpftrace', ['--info'], { encoding: 'utf8' }).stdout ?? '');
  const kprobe = /^ {2}kprobes {5}(yes|no ) (.+)$/m.exec(check.stdout);
  const fentry = /^ {2}fentry {6}(yes|no ) (.+)$/m.exec(check.stdout);
  t.equal(kprobe?.[1], hasKprobes ? 'yes' : 'no ', `kprobes: ${hasKprobes ? 'yes' : 'no'} (kprobe_events ${hasKprobes ? 'present' : 'absent'})`);
  t.match(kprobe?.[2] ?? '', /kprobe/, `with a reason: ${kprobe?.[2]}`);
  t.equal(fentry?.[1], hasKfunc ? 'yes' : 'no ', `fentry: ${hasKfunc ? 'yes' : 'no'} (bpftrace --info kfunc)`);
  t.match(fentry?.[2] ?? '', /kfunc|BTF/, `with a reason: ${fentry?.[2]}`);
  if (!hasKprobes && !hasKfunc) {
    t.match(check.stdout, /note {2}tcprtt \(libbpf-tools\) not used: .*neither/, 'says why tcprtt is not used');
    t.match(check.stdout, /note {2}tcpconnlat \(libbpf-tools\) not used: .*neither/, 'says why tcpconnlat is not used');
  }

  for (const ports of ['0', '1,2,3,4,5,6,7,8,9']) {
    const r = await runCli(['sidecar', '--ports', ports, '--metrics-port', '0']);
    t.equal(r.code, 2, `--ports ${ports} exits 2`);
    t.match(r.stderr, /ERR_CONFIG_INVALID/, `--ports ${ports}: ERR_CONFIG_INVALID`);
    t.match(r.stderr, ports === '0' ? /--ports must list ports from 1 to 65535/ : /--ports takes at most 8 ports/, 'the message names --ports');
  }
});

t.test('without the capabilities to load BPF programs, the sidecar says why it cannot trace and exits 1', { skip: skip || (existsSync('/usr/bin/setpriv') ? false : 'needs setpriv (util-linux)') }, async (t) => {
  // Still uid 0 (so it reads the checkout wherever it is), but with an empty
  // capability set, as root in a container with its capabilities dropped.
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  const r = spawnSync('setpriv', ['--bounding-set=-all', '--inh-caps=-all', process.execPath, CLI, 'sidecar', '--metrics-port', '0'], { encoding: 'utf8', timeout: 60_000, env });
  t.equal(r.status, 1, `exit 1: nothing can run (stderr: ${r.stderr.slice(0, 300)})`);
  t.match(r.stderr, /^npcd: ERR_SIDECAR_UNSUPPORTED: npcd sidecar cannot trace here: running as root but without CAP_BPF\+CAP_PERFMON or CAP_SYS_ADMIN/m);
  t.match(r.stderr, /^ {2}privileges {2}no {2}running as root but without/m, 'the report names the failed check');
  t.notMatch(r.stderr, /bpftrace program started/, 'no bpftrace was started');
});
