/**
 * The sidecar's programs (bpf/*.bt), what each needs from the kernel, and
 * the choice of those that can run here, with the reason for each one left
 * out. All of them stand on tracepoints, which every kernel since 4.16 has
 * (tcp_probe's sock_cookie since 5.x); kprobe and fentry variants of the
 * same measurements (libbpf-tools' tcprtt and tcpconnlat) are reported as
 * available or not, for a person to run beside the sidecar.
 */
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import type { Capabilities } from './capabilities.js';

export const DEFAULT_BPF_DIR = fileURLToPath(new URL('../../bpf/', import.meta.url));

/** Ports one program can watch (positional parameters $4..$11). */
export const MAX_PORTS = 8;

export interface ProgramSpec {
  readonly name: string;
  readonly file: string;
  readonly summary: string;
  /** Tracepoints ("category:name") and the fields the program reads from each. */
  readonly tracepoints: Readonly<Record<string, readonly string[]>>;
  /** Reads kernel structs through BTF (socket namespace, tcp_sock). */
  readonly btf: boolean;
  /** FLAGS ($2) for the given options. */
  flags(options: ProgramOptions): number;
}

export interface ProgramOptions {
  /** Keep the latest srtt of every watched socket (tcp-srtt FLAGS bit 0). */
  readonly socketRtt: boolean;
}

export const PROGRAMS: readonly ProgramSpec[] = [
  {
    name: 'tcp-srtt',
    file: 'tcp-srtt.bt',
    summary: 'smoothed RTT per direction and port, sampled once per socket per interval (tcp:tcp_probe)',
    tracepoints: { 'tcp:tcp_probe': ['skaddr', 'sport', 'dport', 'srtt', 'sock_cookie'] },
    btf: true,
    flags: (o) => (o.socketRtt ? 1 : 0),
  },
  {
    name: 'tcp-connect',
    file: 'tcp-connect.bt',
    summary: 'active-open connect latency and failures, handshake RTT (sock:inet_sock_set_state)',
    tracepoints: { 'sock:inet_sock_set_state': ['skaddr', 'oldstate', 'newstate', 'sport', 'dport', 'protocol'] },
    btf: true,
    flags: () => 0,
  },
  {
    name: 'tcp-retrans',
    file: 'tcp-retrans.bt',
    summary: 'retransmitted segments and SYN-ACKs (tcp:tcp_retransmit_skb, tcp:tcp_retransmit_synack)',
    tracepoints: {
      'tcp:tcp_retransmit_skb': ['skbaddr', 'skaddr', 'sport', 'dport', 'err'],
      'tcp:tcp_retransmit_synack': ['skaddr', 'sport'],
    },
    btf: true,
    flags: () => 0,
  },
];

export const ALL_TRACEPOINTS: readonly string[] = [...new Set(PROGRAMS.flatMap((p) => Object.keys(p.tracepoints)))];

export interface Selection {
  readonly run: readonly ProgramSpec[];
  readonly skipped: readonly { readonly name: string; readonly why: string }[];
  /** Further facts worth saying at start (alternatives and why they are or are not used). */
  readonly notes: readonly string[];
  /** Why nothing can run, when `run` is empty. */
  readonly blockers: readonly string[];
}

export function selectPrograms(caps: Capabilities): Selection {
  const blockers: string[] = [];
  if (!caps.privileged.ok) blockers.push(caps.privileged.detail);
  if (!caps.bpftrace.ok) blockers.push(caps.bpftrace.detail);
  if (!caps.tracefs.ok) blockers.push(`tracefs ${caps.tracefs.detail}`);
  const run: ProgramSpec[] = [];
  const skipped: { name: string; why: string }[] = [];
  for (const p of PROGRAMS) {
    const why = missing(p, caps);
    if (why.length > 0) skipped.push({ name: p.name, why: why.join('; ') });
    else if (blockers.length === 0) run.push(p);
  }
  if (blockers.length === 0 && run.length === 0) blockers.push(`no program can run: ${skipped.map((s) => `${s.name}: ${s.why}`).join(' / ')}`);
  const notes = [
    ...alternative('tcprtt', 'tcp-srtt', caps),
    ...alternative('tcpconnlat', 'tcp-connect', caps),
  ];
  return { run: blockers.length === 0 ? run : [], skipped, notes, blockers };
}

function missing(p: ProgramSpec, caps: Capabilities): string[] {
  const out: string[] = [];
  if (p.btf && !caps.btf.ok) out.push(`needs BTF to read socket fields (${caps.btf.detail})`);
  for (const [tp, fields] of Object.entries(p.tracepoints)) {
    const info = caps.tracepoints[tp];
    if (!info?.present) {
      out.push(info?.unknown ? `tracepoint ${tp} could not be looked up (${info.unknown})` : `tracepoint ${tp} is missing on this kernel`);
      continue;
    }
    const absent = fields.filter((f) => !info.fields.includes(f));
    if (absent.length > 0) out.push(`tracepoint ${tp} lacks field(s) ${absent.join(', ')}`);
  }
  return out;
}

/** libbpf-tools' kprobe/fentry tool for the same measurement as one of ours. */
function alternative(tool: string, ours: string, caps: Capabilities): string[] {
  const bin = caps.libbpfTools[tool];
  const attach = caps.fentry.ok ? 'fentry' : caps.kprobes.ok ? 'kprobes' : undefined;
  if (!attach) {
    // Without bpftrace or privileges fentry is not checked: that is no finding about the kernel.
    const neither = caps.fentry.detail.startsWith('not checked') ? 'neither can be used here' : 'this kernel has neither';
    return [`${tool} (libbpf-tools) not used: it attaches with fentry or kprobes, and ${neither} (${caps.fentry.detail}; ${caps.kprobes.detail}); ${ours} measures the same on tracepoints`];
  }
  if (!bin?.ok) return [`${tool} (libbpf-tools) could attach here (${attach}) but is ${bin?.detail ?? 'not installed'}; ${ours} measures the same on tracepoints`];
  return [`${tool} (libbpf-tools, ${bin.path}) can run here (${attach}) to cross-check ${ours}; the sidecar uses ${ours} on tracepoints`];
}

/** bpftrace arguments: INTERVAL_S FLAGS NETNS PORT... */
export function programArgs(p: ProgramSpec, options: ProgramOptions & { intervalS: number; netns: number; ports: readonly number[] }): string[] {
  if (options.ports.length === 0 || options.ports.length > MAX_PORTS) throw new RangeError(`between 1 and ${MAX_PORTS} ports`);
  return [String(options.intervalS), String(p.flags(options)), String(options.netns), ...options.ports.map(String)];
}

export function programPath(bpfDir: string, p: ProgramSpec): string {
  return join(bpfDir, p.file);
}
