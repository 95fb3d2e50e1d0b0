import t from 'tap';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseBufferTriple, parseInteger, parseTcQdiscJson, readHost, readHostSettings, readQdiscs } from '../../src/sidecar/host.js';

const FIX = fileURLToPath(new URL('../fixtures/sidecar/', import.meta.url));
const fix = (p: string) => join(FIX, p);

t.test('parsers of sysctl text', async (t) => {
  t.same(parseBufferTriple('4096\t131072\t6291456'), { min: 4096, default: 131072, max: 6291456 });
  t.same(parseBufferTriple('4096 16384 4194304'), { min: 4096, default: 16384, max: 4194304 });
  t.equal(parseBufferTriple('4096 87380'), null);
  t.equal(parseBufferTriple('a b c'), null);
  t.equal(parseInteger('4294967295'), 4294967295);
  t.equal(parseInteger('-1'), -1);
  t.equal(parseInteger('1.5'), null);
  t.equal(parseInteger(''), null);
});

t.test('a stock host: every setting, bbr and fq as loadable modules', async (t) => {
  const qdiscs = await readQdiscs({ root: fix('root-cubic'), tcFile: fix('tc-mq.json') });
  const h = readHostSettings(fix('root-cubic'), qdiscs);
  t.equal(h.kernelRelease.value, '6.1.0-18-amd64');
  t.same(h.tcpRmem.value, { min: 4096, default: 131072, max: 6291456 });
  t.same(h.tcpWmem.value, { min: 4096, default: 16384, max: 4194304 });
  t.equal(h.tcpWmem.name, 'net.ipv4.tcp_wmem');
  t.equal(h.tcpWmem.path, join(fix('root-cubic'), 'proc/sys/net/ipv4/tcp_wmem'));
  t.equal(h.slowStartAfterIdle.value, 1);
  t.equal(h.notsentLowat.value, 4294967295);
  t.equal(h.congestionControl.value, 'cubic');
  t.same(h.availableCongestionControl.value, ['reno', 'cubic']);
  t.same(h.allowedCongestionControl.value, ['reno', 'cubic']);
  t.equal(h.defaultQdisc.value, 'pfifo_fast');
  t.equal(h.rmemMax.value, 212992);
  t.equal(h.wmemMax.value, 212992);
  t.equal(h.bbr.state, 'loadable');
  t.match(h.bbr.evidence.join('\n'), /CONFIG_TCP_CONG_BBR=m in .*boot\/config-6\.1\.0-18-amd64/);
  t.match(h.bbr.evidence.join('\n'), /module tcp_bbr\.ko\.xz under/);
  t.equal(h.fq.state, 'loadable');
  t.equal(h.fqCodel.state, 'loadable');
  t.equal(h.qdiscs.source, 'file');
  t.same(h.qdiscs.interfaces, [
    { dev: 'lo', loopback: true, root: 'noqueue', children: [] },
    { dev: 'eth0', loopback: false, root: 'mq', children: ['pfifo_fast'] },
  ]);
});

t.test('a tuned host: bbr and fq in use, fq_codel not in the kernel config (proc/config.gz)', async (t) => {
  const h = readHostSettings(fix('root-tuned'), await readQdiscs({ tcFile: fix('tc-fq.json') }));
  t.equal(h.bbr.state, 'in-use');
  t.match(h.bbr.evidence, ['net.ipv4.tcp_congestion_control is bbr', 'bbr listed in net.ipv4.tcp_available_congestion_control', /CONFIG_TCP_CONG_BBR=m in .*config\.gz/]);
  t.equal(h.fq.state, 'in-use');
  t.match(h.fq.evidence, ['qdisc fq attached to eth0']);
  t.equal(h.fqCodel.state, 'unavailable');
  t.match(h.fqCodel.evidence, [/CONFIG_NET_SCH_FQ_CODEL is not set in .*config\.gz/]);
  t.equal(h.notsentLowat.value, 131072);
});

t.test('missing and unparsable files are reported, never thrown', async (t) => {
  const h = readHostSettings(fix('root-partial'));
  t.equal(h.kernelRelease.value, null);
  t.equal(h.kernelRelease.error, 'missing');
  t.equal(h.tcpRmem.value, null);
  t.equal(h.tcpRmem.raw, '4096 87380');
  t.equal(h.tcpRmem.error, 'cannot parse "4096 87380"');
  t.equal(h.tcpWmem.value, null);
  t.equal(h.tcpWmem.raw, null);
  t.equal(h.tcpWmem.error, 'missing');
  t.equal(h.notsentLowat.value, -1);
  t.equal(h.congestionControl.value, 'cubic');
  t.equal(h.defaultQdisc.value, null);
  t.same(h.bbr, { state: 'unknown', evidence: [] });
  t.same(h.fq, { state: 'unknown', evidence: [] });
  t.equal(h.qdiscs.source, 'none');

  const none = readHostSettings(join(FIX, 'no-such-root'));
  for (const s of [none.tcpRmem, none.tcpWmem, none.slowStartAfterIdle, none.notsentLowat, none.congestionControl, none.defaultQdisc, none.rmemMax, none.wmemMax]) {
    t.equal(s.value, null, s.name);
    t.equal(s.error, 'missing', s.name);
  }
});

t.test('a module directory without the module and without a config: unavailable', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-host-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'proc/sys/kernel'), { recursive: true });
  mkdirSync(join(dir, 'lib/modules/5.10.0/kernel/net/ipv4'), { recursive: true });
  writeFileSync(join(dir, 'proc/sys/kernel/osrelease'), '5.10.0\n');
  writeFileSync(join(dir, 'lib/modules/5.10.0/modules.builtin'), 'kernel/net/sched/sch_fq_codel.ko\n');
  writeFileSync(join(dir, 'lib/modules/5.10.0/kernel/net/ipv4/tcp_htcp.ko'), '');
  const h = readHostSettings(dir);
  t.equal(h.bbr.state, 'unavailable');
  t.match(h.bbr.evidence, [/no tcp_bbr\.ko\* under/]);
  t.equal(h.fqCodel.state, 'available');
  t.match(h.fqCodel.evidence, [/sch_fq_codel\.ko listed in .*modules\.builtin/]);
  t.equal(h.fq.state, 'unavailable');
});

t.test('tc -j qdisc show', async (t) => {
  // Real output of this project's capture host.
  t.same(parseTcQdiscJson(readFileSync(fix('tc-host.json'), 'utf8')), [
    { dev: 'lo', loopback: true, root: 'noqueue', children: [] },
    { dev: 'eth0', loopback: false, root: 'pfifo_fast', children: [] },
  ]);
  t.throws(() => parseTcQdiscJson('{"kind":"fq"}'), /expected a JSON array/);
  t.throws(() => parseTcQdiscJson('qdisc fq 0: dev eth0 root'));

  // A loopback device is known by its ARPHRD type (772), whatever its name.
  const dir = mkdtempSync(join(tmpdir(), 'npcd-host-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'sys/class/net/lo2'), { recursive: true });
  writeFileSync(join(dir, 'sys/class/net/lo2/type'), '772\n');
  writeFileSync(join(dir, 'tc.json'), '[{"kind":"noqueue","dev":"lo2","root":true},{"kind":"fq_codel","dev":"eth1","root":true}]');
  const r = await readQdiscs({ root: dir, tcFile: join(dir, 'tc.json') });
  t.same(r.interfaces.map((i) => [i.dev, i.loopback, i.root]), [['lo2', true, 'noqueue'], ['eth1', false, 'fq_codel']]);
});

t.test('readQdiscs runs tc, and says why when it cannot', async (t) => {
  const calls: string[][] = [];
  const ok = await readQdiscs({
    exec: async (file, args) => {
      calls.push([file, ...args]);
      return readFileSync(fix('tc-host.json'), 'utf8');
    },
  });
  t.same(calls, [['tc', '-j', 'qdisc', 'show']]);
  t.equal(ok.source, 'tc');
  t.equal(ok.interfaces.length, 2);

  const missing = await readQdiscs({
    exec: async () => {
      throw Object.assign(new Error('spawn tc ENOENT'), { code: 'ENOENT' });
    },
  });
  t.same(missing, { source: 'none', interfaces: [], error: 'tc not found (install iproute2)' });
  const failed = await readQdiscs({ exec: async () => 'not json' });
  t.equal(failed.source, 'none');
  t.match(failed.error, /^tc -j qdisc show failed: /);
  const noFile = await readQdiscs({ tcFile: fix('no-such.json') });
  t.match(noFile, { source: 'none', error: /no-such\.json: ENOENT/ });
  t.same(await readQdiscs({ runTc: false }), { source: 'none', interfaces: [], error: 'tc not run' });
});

t.test('this machine: readHost on / reads the running kernel', async (t) => {
  const h = await readHost();
  t.equal(h.root, '/');
  t.equal(h.kernelRelease.value, release());
  // Every Linux with TCP has these; the values vary by host.
  t.ok(h.tcpRmem.value, 'tcp_rmem read');
  t.type(h.congestionControl.value, 'string');
  t.ok(['tc', 'none'].includes(h.qdiscs.source));
});
