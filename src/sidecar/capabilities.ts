/**
 * What this host lets the sidecar trace, found at start: privileges, the
 * bpftrace binary and its version, tracefs (mounted here when missing and
 * allowed), kprobes, fentry (kfunc), BTF, the tracepoints the programs use
 * with their fields as this kernel defines them (`bpftrace -lv`), and the
 * libbpf-tools binaries. Every check records why it passed or failed, so the
 * sidecar can say which programs it runs and why.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

export interface Check {
  readonly ok: boolean;
  readonly detail: string;
}

export interface TracepointInfo {
  readonly present: boolean;
  /** Field names, as `bpftrace -lv` lists them (arrays without their size). */
  readonly fields: readonly string[];
  /** Why it could not be looked up (no privileges, no tracefs), when `present` is false for that reason rather than the kernel's. */
  readonly unknown?: string;
}

export interface Capabilities {
  /** Root, or the capabilities bpftrace needs (CAP_BPF with CAP_PERFMON, or CAP_SYS_ADMIN). */
  readonly privileged: Check;
  readonly bpftrace: Check & { readonly version?: string };
  readonly tracefs: Check & { readonly path?: string; readonly mountedNow?: boolean };
  readonly btf: Check;
  /** kprobes that can be attached (kprobe_events in tracefs, or the kprobe PMU). */
  readonly kprobes: Check;
  /** fentry/fexit (bpftrace's kfunc probes). */
  readonly fentry: Check;
  readonly tracepoints: Readonly<Record<string, TracepointInfo>>;
  /** libbpf-tools binaries by name: found where. */
  readonly libbpfTools: Readonly<Record<string, Check & { readonly path?: string }>>;
}

export interface ExecResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

export type Exec = (file: string, args: readonly string[], timeoutMs: number) => Promise<ExecResult>;

export interface DetectOptions {
  readonly bpftrace: string;
  /** Tracepoints to describe, "category:name". */
  readonly tracepoints: readonly string[];
  /** Mount tracefs when it is missing (and we may). */
  readonly mountTracefs: boolean;
  /** libbpf-tools binaries to look for. */
  readonly libbpfTools?: readonly string[];
  /** Filesystem root, for tests ("/" on a host). */
  readonly root?: string;
  readonly exec?: Exec;
}

export const LIBBPF_TOOLS = ['tcpstates', 'tcprtt', 'tcpconnlat'] as const;
const TOOL_DIRS = ['usr/sbin', 'usr/bin', 'usr/local/sbin', 'usr/local/bin'];
const TRACEFS_PATHS = ['sys/kernel/tracing', 'sys/kernel/debug/tracing'];

// Capability bits in /proc/self/status CapEff (linux/capability.h).
const CAP_SYS_ADMIN = 21n;
const CAP_PERFMON = 38n;
const CAP_BPF = 39n;

export const execCommand: Exec = (file, args, timeoutMs) =>
  new Promise((resolve) => {
    execFile(file, [...args], { timeout: timeoutMs, encoding: 'utf8', maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string }) | null;
      const code = e ? (typeof e.code === 'number' ? e.code : e.code === 'ENOENT' ? 127 : 1) : 0;
      resolve({ code, stdout: stdout ?? '', stderr: stderr ?? (e ? e.message : '') });
    });
  });

export async function detectCapabilities(options: DetectOptions): Promise<Capabilities> {
  const root = options.root ?? '/';
  const exec = options.exec ?? execCommand;
  const privileged = checkPrivileges(root);
  const bpftrace = await checkBpftrace(options.bpftrace, exec);
  const tracefs = await checkTracefs(root, options.mountTracefs && privileged.ok, exec);
  const btf = existsSync(join(root, 'sys/kernel/btf/vmlinux'))
    ? { ok: true, detail: '/sys/kernel/btf/vmlinux is present' }
    : { ok: false, detail: 'no /sys/kernel/btf/vmlinux (kernel built without BTF)' };
  const kprobes = checkKprobes(root, tracefs.path);
  const fentry = bpftrace.ok && privileged.ok ? await checkFentry(options.bpftrace, btf, exec) : { ok: false, detail: 'not checked (needs bpftrace and privileges)' };
  const tracepoints: Record<string, TracepointInfo> = {};
  for (const tp of options.tracepoints) tracepoints[tp] = await describeTracepoint(tp, options.bpftrace, bpftrace.ok && privileged.ok, root, tracefs.path, exec);
  const libbpfTools: Record<string, Check & { path?: string }> = {};
  for (const tool of options.libbpfTools ?? LIBBPF_TOOLS) {
    const path = TOOL_DIRS.map((d) => join(root, d, tool)).find((p) => existsSync(p));
    libbpfTools[tool] = path ? { ok: true, detail: `found at ${path}`, path } : { ok: false, detail: `not installed (apt install libbpf-tools)` };
  }
  return { privileged, bpftrace, tracefs, btf, kprobes, fentry, tracepoints, libbpfTools };
}

/**
 * What matters is the effective capability set, not the uid: root in a
 * container with its capabilities dropped cannot load BPF programs either.
 */
function checkPrivileges(root: string): Check {
  const isRoot = process.getuid?.() === 0;
  let eff: bigint | undefined;
  try {
    const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync(join(root, 'proc/self/status'), 'utf8'));
    if (m) eff = BigInt(`0x${m[1]}`);
  } catch {
    // No /proc: judged by the uid alone.
  }
  if (eff === undefined) {
    return isRoot ? { ok: true, detail: 'running as root' } : { ok: false, detail: 'not root: bpftrace cannot load BPF programs (run the sidecar as root)' };
  }
  const has = (bit: bigint) => ((eff >> bit) & 1n) === 1n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) {
    return { ok: true, detail: isRoot ? 'running as root' : 'not root, but has CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)' };
  }
  return {
    ok: false,
    detail: isRoot
      ? 'running as root but without CAP_BPF+CAP_PERFMON or CAP_SYS_ADMIN (capabilities dropped, e.g. in a container): bpftrace cannot load BPF programs'
      : 'not root and without CAP_BPF+CAP_PERFMON: bpftrace cannot load BPF programs (run the sidecar as root)',
  };
}

async function checkBpftrace(bin: string, exec: Exec): Promise<Check & { version?: string }> {
  const r = await exec(bin, ['--version'], 10_000);
  if (r.code === 127) return { ok: false, detail: `${bin} not found (apt install bpftrace)` };
  const m = /bpftrace\s+v?(\d+\.\d+(?:\.\d+)?)/.exec(r.stdout + r.stderr);
  if (r.code !== 0 || !m) return { ok: false, detail: `${bin} --version failed: ${(r.stderr || r.stdout).trim().slice(0, 200)}` };
  const version = m[1]!;
  const [major, minor] = version.split('.').map(Number) as [number, number];
  if (major === 0 && minor < 17) return { ok: false, detail: `bpftrace ${version} is older than 0.17 (its JSON output differs)`, version };
  return { ok: true, detail: `bpftrace ${version}`, version };
}

async function checkTracefs(root: string, mayMount: boolean, exec: Exec): Promise<Check & { path?: string; mountedNow?: boolean }> {
  for (const p of TRACEFS_PATHS) {
    try {
      statSync(join(root, p, 'events'));
      return { ok: true, detail: `mounted at /${p}`, path: join(root, p) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EACCES') return { ok: false, detail: `/${p} is not readable by this user (it is root's)` };
    }
  }
  const target = join(root, TRACEFS_PATHS[0]!);
  if (!mayMount) return { ok: false, detail: `not mounted (mount -t tracefs nodev /${TRACEFS_PATHS[0]})` };
  const r = await exec('mount', ['-t', 'tracefs', 'nodev', target], 10_000);
  if (r.code === 0 && existsSync(join(target, 'events'))) return { ok: true, detail: `was not mounted; mounted it at /${TRACEFS_PATHS[0]}`, path: target, mountedNow: true };
  return { ok: false, detail: `not mounted, and mounting it failed: ${(r.stderr || r.stdout).trim().slice(0, 200)}` };
}

function checkKprobes(root: string, tracefs: string | undefined): Check {
  if (tracefs && existsSync(join(tracefs, 'kprobe_events'))) return { ok: true, detail: 'kprobe_events is present in tracefs' };
  if (existsSync(join(root, 'sys/bus/event_source/devices/kprobe'))) return { ok: true, detail: 'the kprobe PMU is present' };
  return { ok: false, detail: 'no kprobe_events in tracefs and no kprobe PMU (kernel without CONFIG_KPROBE_EVENTS)' };
}

async function checkFentry(bin: string, btf: Check, exec: Exec): Promise<Check> {
  if (!btf.ok) return { ok: false, detail: 'fentry needs BTF' };
  const r = await exec(bin, ['--info'], 20_000);
  const m = /^\s*kfunc:\s*(yes|no)/m.exec(r.stdout + r.stderr);
  if (!m) return { ok: false, detail: 'bpftrace --info does not report kfunc support' };
  return m[1] === 'yes' ? { ok: true, detail: 'bpftrace --info: kfunc: yes' } : { ok: false, detail: 'bpftrace --info: kfunc: no (no BPF trampolines on this kernel)' };
}

/**
 * A tracepoint's fields from `bpftrace -lv`; from its tracefs format file when
 * bpftrace cannot list (not privileged). Absent when neither knows it.
 */
async function describeTracepoint(tp: string, bin: string, useBpftrace: boolean, root: string, tracefs: string | undefined, exec: Exec): Promise<TracepointInfo> {
  if (useBpftrace) {
    const r = await exec(bin, ['-lv', `tracepoint:${tp}`], 20_000);
    const fields = parseListedFields(r.stdout, tp);
    if (fields) return { present: true, fields };
  }
  const [category, name] = tp.split(':') as [string, string];
  if (!tracefs && !useBpftrace) return { present: false, fields: [], unknown: 'tracefs is not mounted, and bpftrace cannot list probes without privileges' };
  const format = join(tracefs ?? join(root, TRACEFS_PATHS[0]!), 'events', category, name, 'format');
  try {
    return { present: true, fields: parseFormatFields(readFileSync(format, 'utf8')) };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EACCES' || code === 'EPERM') return { present: false, fields: [], unknown: `${format} is not readable (${code}): run as root` };
    if (!tracefs) return { present: false, fields: [], unknown: 'tracefs is not mounted' };
    return { present: false, fields: [] };
  }
}

/** Field names under the probe's line in `bpftrace -lv` output; undefined when the probe is not listed. */
export function parseListedFields(output: string, tp: string): string[] | undefined {
  const lines = output.split('\n');
  const start = lines.findIndex((l) => l.trim() === `tracepoint:${tp}`);
  if (start < 0) return undefined;
  const fields: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (!/^\s+\S/.test(line)) break;
    const m = /([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[\d*\])?\s*;?\s*$/.exec(line.trim());
    if (m) fields.push(m[1]!);
  }
  return fields;
}

/** Field names of a tracefs `format` file, without the common_* header fields. */
export function parseFormatFields(format: string): string[] {
  const out: string[] = [];
  for (const m of format.matchAll(/field:[^;]*?([A-Za-z_][A-Za-z0-9_]*)\s*(?:\[[^\]]*\])?;/g)) {
    if (!m[1]!.startsWith('common_')) out.push(m[1]!);
  }
  return out;
}
