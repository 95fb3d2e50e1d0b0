/**
 * Capability detection and program choice: on a made-up host tree with a
 * scripted `bpftrace` (each case a kernel the sidecar must handle), and once
 * on this machine for real.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { type Capabilities, detectCapabilities, type Exec, parseFormatFields, parseListedFields } from '../../src/sidecar/capabilities.js';
import { ALL_TRACEPOINTS, PROGRAMS, programArgs, selectPrograms } from '../../src/sidecar/programs.js';

const LISTED: Record<string, string> = {
  'tcp:tcp_probe': 'tracepoint:tcp:tcp_probe\n    __u8 saddr[28]\n    __u16 sport\n    __u16 dport\n    __u32 srtt\n    __u64 sock_cookie\n    const void * skaddr\n',
  'sock:inet_sock_set_state': 'tracepoint:sock:inet_sock_set_state\n    const void * skaddr\n    int oldstate\n    int newstate\n    __u16 sport\n    __u16 dport\n    __u16 protocol\n',
  'tcp:tcp_retransmit_skb': 'tracepoint:tcp:tcp_retransmit_skb\n    const void * skbaddr\n    const void * skaddr\n    __u16 sport\n    __u16 dport\n    int err\n',
  'tcp:tcp_retransmit_synack': 'tracepoint:tcp:tcp_retransmit_synack\n    const void * skaddr\n    const void * req\n    __u16 sport\n',
};

interface Host {
  tracefs?: boolean;
  kprobeEvents?: boolean;
  btf?: boolean;
  tools?: string[];
  version?: string | null; // null: bpftrace missing
  kfunc?: boolean;
  /** Tracepoints bpftrace lists, with their fields. */
  listed?: Record<string, string>;
}

function host(t: Test, h: Host): { root: string; exec: Exec; calls: string[][] } {
  const root = mkdtempSync(join(tmpdir(), 'npcd-caps-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  if (h.tracefs !== false) mkdirSync(join(root, 'sys/kernel/tracing/events'), { recursive: true });
  if (h.kprobeEvents) writeFileSync(join(root, 'sys/kernel/tracing/kprobe_events'), '');
  if (h.btf !== false) {
    mkdirSync(join(root, 'sys/kernel/btf'), { recursive: true });
    writeFileSync(join(root, 'sys/kernel/btf/vmlinux'), '');
  }
  mkdirSync(join(root, 'usr/sbin'), { recursive: true });
  for (const tool of h.tools ?? []) writeFileSync(join(root, 'usr/sbin', tool), '');
  const calls: string[][] = [];
  const listed = h.listed ?? LISTED;
  const exec: Exec = async (file, args) => {
    calls.push([file, ...args]);
    if (file === 'mount') return { code: 32, stdout: '', stderr: 'mount: permission denied' };
    if (h.version === null) return { code: 127, stdout: '', stderr: '' };
    if (args[0] === '--version') return { code: 0, stdout: `bpftrace v${h.version ?? '0.17.0'}\n`, stderr: '' };
    if (args[0] === '--info') return { code: 0, stdout: `Probe types\n  kprobe: yes\n  tracepoint: yes\n  kfunc: ${h.kfunc ? 'yes' : 'no'}\n`, stderr: '' };
    if (args[0] === '-lv') return { code: 0, stdout: listed[args[1]!.replace('tracepoint:', '')] ?? '', stderr: '' };
    return { code: 1, stdout: '', stderr: 'unexpected' };
  };
  return { root, exec, calls };
}

async function detect(t: Test, h: Host): Promise<Capabilities> {
  const { root, exec } = host(t, h);
  return detectCapabilities({ bpftrace: 'bpftrace', tracepoints: ALL_TRACEPOINTS, mountTracefs: false, root, exec });
}

// Running as root is the normal case for these tests (CI is root); a non-root run still checks the rest.
const root = process.getuid?.() === 0;

t.test('a kernel like this one: tracepoints, BTF, no kprobes, no fentry → all three programs, and the libbpf-tools alternatives explained', { skip: !root && 'needs root for the privilege check' }, async (t) => {
  const caps = await detect(t, { tools: ['tcpstates', 'tcprtt', 'tcpconnlat'] });
  t.ok(caps.privileged.ok);
  t.equal(caps.bpftrace.version, '0.17.0');
  t.ok(caps.tracefs.ok);
  t.notOk(caps.kprobes.ok);
  t.notOk(caps.fentry.ok);
  t.match(caps.fentry.detail, /kfunc: no/);
  t.same(caps.tracepoints['tcp:tcp_probe']?.fields, ['saddr', 'sport', 'dport', 'srtt', 'sock_cookie', 'skaddr']);
  const sel = selectPrograms(caps);
  t.same(sel.run.map((p) => p.name), ['tcp-srtt', 'tcp-connect', 'tcp-retrans']);
  t.same(sel.blockers, []);
  t.match(sel.notes.join('\n'), /tcprtt \(libbpf-tools\) not used: it attaches with fentry or kprobes, and this kernel has neither/);
});

t.test('kprobes present: the libbpf-tools tools are offered as a cross-check, the programs stay on tracepoints', { skip: !root && 'needs root' }, async (t) => {
  const sel = selectPrograms(await detect(t, { kprobeEvents: true, tools: ['tcprtt'] }));
  t.equal(sel.run.length, 3);
  t.match(sel.notes[0], /tcprtt \(libbpf-tools, .*tcprtt\) can run here \(kprobes\)/);
  t.match(sel.notes[1], /tcpconnlat \(libbpf-tools\) could attach here \(kprobes\) but is not installed/);
});

t.test('a kernel whose tcp_probe lacks sock_cookie, and one without tcp_retransmit_skb: those programs are skipped with the reason', { skip: !root && 'needs root' }, async (t) => {
  const listed = { ...LISTED, 'tcp:tcp_probe': LISTED['tcp:tcp_probe']!.replace('    __u64 sock_cookie\n', '') };
  delete (listed as Record<string, string>)['tcp:tcp_retransmit_skb'];
  const sel = selectPrograms(await detect(t, { listed }));
  t.same(sel.run.map((p) => p.name), ['tcp-connect']);
  t.same(sel.skipped, [
    { name: 'tcp-srtt', why: 'tracepoint tcp:tcp_probe lacks field(s) sock_cookie' },
    { name: 'tcp-retrans', why: 'tracepoint tcp:tcp_retransmit_skb is missing on this kernel' },
  ]);
});

t.test('nothing can run: no bpftrace, no tracefs (mounting refused), no BTF — each reason is given', async (t) => {
  const { root: dir, exec, calls } = host(t, { version: null, tracefs: false, btf: false });
  const caps = await detectCapabilities({ bpftrace: 'bpftrace', tracepoints: ALL_TRACEPOINTS, mountTracefs: true, root: dir, exec });
  const sel = selectPrograms(caps);
  t.same(sel.run, []);
  t.match(sel.blockers.join('\n'), /bpftrace not found \(apt install bpftrace\)/);
  t.match(sel.blockers.join('\n'), /tracefs not mounted/);
  if (root) t.ok(calls.some((c) => c[0] === 'mount'), 'root may mount tracefs, and tried');
  t.match(sel.skipped[0]!.why, /needs BTF/);
  // The tracepoints could not be looked up: that says nothing about the kernel.
  t.match(sel.skipped[0]!.why, /tracepoint tcp:tcp_probe could not be looked up \(tracefs is not mounted/);
  t.notMatch(sel.skipped.map((s) => s.why).join('\n'), /missing on this kernel/);
  t.match(sel.notes[0], /tcprtt \(libbpf-tools\) not used: it attaches with fentry or kprobes, and neither can be used here \(not checked/);
});

t.test('bpftrace older than 0.17 is refused (its JSON output differs)', async (t) => {
  const caps = await detect(t, { version: '0.14.1' });
  t.notOk(caps.bpftrace.ok);
  t.match(caps.bpftrace.detail, /0\.14\.1 is older than 0\.17/);
});

t.test('field lists: bpftrace -lv output and tracefs format files', async (t) => {
  t.same(parseListedFields(LISTED['tcp:tcp_retransmit_skb']!, 'tcp:tcp_retransmit_skb'), ['skbaddr', 'skaddr', 'sport', 'dport', 'err']);
  t.equal(parseListedFields('', 'tcp:tcp_probe'), undefined);
  const format = 'name: tcp_probe\nID: 1\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\n\tfield:__u8 saddr[sizeof(struct sockaddr_in6)];\toffset:8;\tsize:28;\tsigned:0;\n\tfield:__u32 srtt;\toffset:80;\tsize:4;\tsigned:0;\n';
  t.same(parseFormatFields(format), ['saddr', 'srtt']);
});

t.test('program arguments: INTERVAL FLAGS NETNS PORT..., at most 8 ports', async (t) => {
  const srtt = PROGRAMS.find((p) => p.name === 'tcp-srtt')!;
  t.same(programArgs(srtt, { socketRtt: true, intervalS: 5, netns: 4026531833, ports: [8080, 6379] }), ['5', '1', '4026531833', '8080', '6379']);
  t.same(programArgs(srtt, { socketRtt: false, intervalS: 5, netns: 0, ports: [8080] }), ['5', '0', '0', '8080']);
  t.throws(() => programArgs(srtt, { socketRtt: false, intervalS: 5, netns: 0, ports: [1, 2, 3, 4, 5, 6, 7, 8, 9] }), RangeError);
});

t.test('this machine, for real', { skip: !root && 'needs root' }, async (t) => {
  const caps = await detectCapabilities({ bpftrace: 'bpftrace', tracepoints: ALL_TRACEPOINTS, mountTracefs: true });
  t.ok(caps.bpftrace.ok, caps.bpftrace.detail);
  t.ok(caps.tracefs.ok, caps.tracefs.detail);
  for (const tp of ALL_TRACEPOINTS) t.ok(caps.tracepoints[tp]?.present, `${tp} is present`);
  const sel = selectPrograms(caps);
  t.same(sel.run.map((p) => p.name), ['tcp-srtt', 'tcp-connect', 'tcp-retrans'], sel.skipped.map((s) => `${s.name}: ${s.why}`).join('; '));
});
