/**
 * Reads the TCP settings of the host that `npcd tcp-advise` judges: the
 * sysctls under /proc/sys/net, what the kernel offers (congestion control
 * modules, qdiscs) and the root qdisc of each interface (`tc -j qdisc show`).
 *
 * Every reader takes a root directory (default '/') so tests can point it at
 * a fake tree. A file that is missing or unreadable is reported with
 * `value: null` and the reason; nothing here throws for a missing file.
 *
 * The values under /proc/sys/net are those of the network namespace of the
 * process that reads them, whatever the root (a container reads its own).
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';

/** One sysctl (or other file) as read: its value, or null and why not. */
export interface Setting<T> {
  /** The sysctl name, e.g. net.ipv4.tcp_rmem. */
  readonly name: string;
  /** The file it was read from (under the root). */
  readonly path: string;
  readonly value: T | null;
  /** The file's text, trimmed; null when it could not be read. */
  readonly raw: string | null;
  /** Why value is null (missing file, unparsable text). */
  readonly error?: string;
}

/** tcp_rmem / tcp_wmem: min, default and max, in bytes. */
export interface BufferTriple {
  readonly min: number;
  readonly default: number;
  readonly max: number;
}

/**
 * in-use: the setting uses it now; available: registered in the running
 * kernel (built in or loaded); loadable: a module exists but is not loaded
 * (setting it loads it); unavailable: the kernel config or module list says
 * it is absent; unknown: nothing to tell.
 */
export type FeatureState = 'in-use' | 'available' | 'loadable' | 'unavailable' | 'unknown';

export interface Feature {
  readonly state: FeatureState;
  /** What the state was concluded from, one fact per line. */
  readonly evidence: readonly string[];
}

export interface InterfaceQdisc {
  readonly dev: string;
  readonly loopback: boolean;
  /** Kind of the root qdisc (pfifo_fast, fq, fq_codel, mq, noqueue, ...). */
  readonly root: string;
  /** Kinds of the qdiscs attached under the root (the per-queue qdiscs of mq), deduplicated. */
  readonly children: readonly string[];
}

export interface QdiscReport {
  /** tc: ran `tc -j qdisc show`; file: read a saved copy; none: not read (see error). */
  readonly source: 'tc' | 'file' | 'none';
  readonly interfaces: readonly InterfaceQdisc[];
  readonly error?: string;
}

export interface HostSettings {
  readonly root: string;
  /** /proc/sys/kernel/osrelease, e.g. 6.1.0-18-amd64. */
  readonly kernelRelease: Setting<string>;
  readonly tcpRmem: Setting<BufferTriple>;
  readonly tcpWmem: Setting<BufferTriple>;
  readonly slowStartAfterIdle: Setting<number>;
  readonly notsentLowat: Setting<number>;
  readonly congestionControl: Setting<string>;
  readonly availableCongestionControl: Setting<readonly string[]>;
  readonly allowedCongestionControl: Setting<readonly string[]>;
  readonly defaultQdisc: Setting<string>;
  readonly rmemMax: Setting<number>;
  readonly wmemMax: Setting<number>;
  readonly bbr: Feature;
  readonly fq: Feature;
  readonly fqCodel: Feature;
  readonly qdiscs: QdiscReport;
}

type Parse<T> = (raw: string) => T | null;

function readText(path: string): { raw: string } | { error: string } {
  try {
    return { raw: readFileSync(path, 'utf8').trim() };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { error: e.code === 'ENOENT' ? 'missing' : `${e.code ?? 'error'}: ${e.message}` };
  }
}

function readSetting<T>(root: string, name: string, parse: Parse<T>): Setting<T> {
  const path = join(root, 'proc/sys', ...name.split('.'));
  const r = readText(path);
  if ('error' in r) return { name, path, value: null, raw: null, error: r.error };
  const value = parse(r.raw);
  return value === null ? { name, path, value, raw: r.raw, error: `cannot parse ${JSON.stringify(r.raw)}` } : { name, path, value, raw: r.raw };
}

/** A decimal integer (may be negative: old kernels print tcp_notsent_lowat as a signed int). */
export const parseInteger: Parse<number> = (raw) => (/^-?\d+$/.test(raw) && Number.isSafeInteger(Number(raw)) ? Number(raw) : null);

/** "4096\t131072\t6291456" → {min, default, max}. */
export const parseBufferTriple: Parse<BufferTriple> = (raw) => {
  const parts = raw.split(/\s+/);
  if (parts.length !== 3 || !parts.every((p) => /^\d+$/.test(p))) return null;
  const [min, def, max] = parts.map(Number) as [number, number, number];
  return { min, default: def, max };
};

const parseWord: Parse<string> = (raw) => (/^\S+$/.test(raw) ? raw : null);
const parseWords: Parse<readonly string[]> = (raw) => raw.split(/\s+/).filter(Boolean);

function readKernelConfig(root: string, release: string | null): { text: string; path: string } | null {
  const gz = join(root, 'proc/config.gz');
  try {
    return { text: gunzipSync(readFileSync(gz)).toString('utf8'), path: gz };
  } catch {
    // not built with CONFIG_IKCONFIG_PROC: try the distribution's copy
  }
  if (release === null) return null;
  const boot = join(root, 'boot', `config-${release}`);
  const r = readText(boot);
  return 'raw' in r ? { text: r.raw, path: boot } : null;
}

/** y, m, or n (absent / "is not set") for one CONFIG_ option. */
function configOption(config: string, option: string): 'y' | 'm' | 'n' {
  const m = new RegExp(`^${option}=(y|m)$`, 'm').exec(config);
  return m ? (m[1] as 'y' | 'm') : 'n';
}

interface ModuleIndex {
  readonly dir: string;
  readonly builtin: ReadonlySet<string> | null;
  /** Module file names found under kernel/net (tcp_bbr.ko.xz, ...). */
  readonly files: ReadonlySet<string>;
}

function readModules(root: string, release: string | null): ModuleIndex | null {
  if (release === null) return null;
  const dir = join(root, 'lib/modules', release);
  if (!existsSync(dir)) return null;
  const b = readText(join(dir, 'modules.builtin'));
  const builtin = 'raw' in b ? new Set(b.raw.split('\n').map((l) => l.trim().split('/').pop() ?? '').filter(Boolean)) : null;
  const files = new Set<string>();
  const walk = (d: string, depth: number): void => {
    if (depth > 4) return;
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(d, e.name), depth + 1);
      else files.add(e.name);
    }
  };
  walk(join(dir, 'kernel/net'), 0);
  return { dir, builtin, files };
}

interface FeatureProbe {
  /** Module base name: tcp_bbr, sch_fq, sch_fq_codel. */
  readonly module: string;
  readonly configOption: string;
  readonly inUse: string | null;
  /** True when the running kernel lists it (congestion control only). */
  readonly registered: string | null;
}

function probeFeature(p: FeatureProbe, config: { text: string; path: string } | null, modules: ModuleIndex | null): Feature {
  const evidence: string[] = [];
  if (p.inUse) evidence.push(p.inUse);
  if (p.registered) evidence.push(p.registered);
  let configState: 'y' | 'm' | 'n' | null = null;
  if (config) {
    configState = configOption(config.text, p.configOption);
    evidence.push(`${p.configOption}${configState === 'n' ? ' is not set' : `=${configState}`} in ${config.path}`);
  }
  const fileRe = new RegExp(`^${p.module}\\.ko(\\.(xz|zst|gz))?$`);
  const file = modules ? [...modules.files].find((f) => fileRe.test(f)) : undefined;
  const builtin = modules?.builtin?.has(`${p.module}.ko`) ?? false;
  if (modules) {
    if (file) evidence.push(`module ${file} under ${modules.dir}`);
    else if (builtin) evidence.push(`${p.module}.ko listed in ${join(modules.dir, 'modules.builtin')}`);
    else evidence.push(`no ${p.module}.ko* under ${join(modules.dir, 'kernel/net')}`);
  }
  let state: FeatureState;
  if (p.inUse) state = 'in-use';
  else if (p.registered || configState === 'y' || builtin) state = 'available';
  else if (configState === 'm' || file) state = 'loadable';
  else if (configState === 'n' || (modules && modules.builtin !== null)) state = 'unavailable';
  else state = 'unknown';
  return { state, evidence };
}

function isLoopbackDev(root: string, dev: string): boolean {
  if (dev === 'lo') return true;
  // ARPHRD_LOOPBACK is 772 (include/uapi/linux/if_arp.h).
  const t = readText(join(root, 'sys/class/net', dev, 'type'));
  return 'raw' in t && t.raw === '772';
}

/**
 * Parses `tc -j qdisc show`: one entry per qdisc, the root ones with
 * "root": true, the others with "parent". Throws on text that is not a
 * JSON array.
 */
export function parseTcQdiscJson(text: string, isLoopback: (dev: string) => boolean = (d) => d === 'lo'): InterfaceQdisc[] {
  const json: unknown = JSON.parse(text);
  if (!Array.isArray(json)) throw new Error('tc -j qdisc show: expected a JSON array');
  const byDev = new Map<string, { root: string; children: Set<string> }>();
  for (const q of json as unknown[]) {
    if (typeof q !== 'object' || q === null) continue;
    const { kind, dev, root } = q as { kind?: unknown; dev?: unknown; root?: unknown };
    if (typeof kind !== 'string' || typeof dev !== 'string') continue;
    let entry = byDev.get(dev);
    if (!entry) byDev.set(dev, (entry = { root: '', children: new Set() }));
    if (root === true) entry.root = kind;
    // ingress and clsact hang off the receive side, not under the root.
    else if ((q as { parent?: unknown }).parent !== undefined && kind !== 'ingress' && kind !== 'clsact') entry.children.add(kind);
  }
  return [...byDev].map(([dev, e]) => ({ dev, loopback: isLoopback(dev), root: e.root || 'none', children: [...e.children] }));
}

/** Runs a command and gives its stdout; rejects with the child's error (err.code 'ENOENT' when missing). */
export type ExecFileFn = (file: string, args: readonly string[], options: { timeout: number }) => Promise<string>;

export const execFileText: ExecFileFn = (file, args, options) =>
  new Promise((resolve, reject) => {
    execFile(file, [...args], { timeout: options.timeout, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout) => {
      if (err) reject(err);
      else resolve(stdout);
    });
  });

export interface QdiscOptions {
  readonly root?: string;
  /** A saved `tc -j qdisc show` output to read instead of running tc. */
  readonly tcFile?: string;
  /** Whether to run tc when no file is given (default true). */
  readonly runTc?: boolean;
  readonly exec?: ExecFileFn;
  readonly timeoutMs?: number;
}

/** The root qdisc of each interface, from a file or from `tc -j qdisc show`. */
export async function readQdiscs(opts: QdiscOptions = {}): Promise<QdiscReport> {
  const root = opts.root ?? '/';
  const loop = (dev: string) => isLoopbackDev(root, dev);
  if (opts.tcFile !== undefined) {
    try {
      return { source: 'file', interfaces: parseTcQdiscJson(readFileSync(opts.tcFile, 'utf8'), loop) };
    } catch (err) {
      return { source: 'none', interfaces: [], error: `${opts.tcFile}: ${(err as Error).message}` };
    }
  }
  if (opts.runTc === false) return { source: 'none', interfaces: [], error: 'tc not run' };
  try {
    const out = await (opts.exec ?? execFileText)('tc', ['-j', 'qdisc', 'show'], { timeout: opts.timeoutMs ?? 5000 });
    return { source: 'tc', interfaces: parseTcQdiscJson(out, loop) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { source: 'none', interfaces: [], error: e.code === 'ENOENT' ? 'tc not found (install iproute2)' : `tc -j qdisc show failed: ${e.message}` };
  }
}

/**
 * Reads every setting under `root` (sync, files only). `qdiscs` is what
 * readQdiscs found; without it the interfaces are reported as not read.
 */
export function readHostSettings(root = '/', qdiscs?: QdiscReport): HostSettings {
  const kernelRelease = readSetting(root, 'kernel.osrelease', parseWord);
  const congestionControl = readSetting(root, 'net.ipv4.tcp_congestion_control', parseWord);
  const availableCongestionControl = readSetting(root, 'net.ipv4.tcp_available_congestion_control', parseWords);
  const allowedCongestionControl = readSetting(root, 'net.ipv4.tcp_allowed_congestion_control', parseWords);
  const defaultQdisc = readSetting(root, 'net.core.default_qdisc', parseWord);
  const q: QdiscReport = qdiscs ?? { source: 'none', interfaces: [], error: 'not read' };

  const config = readKernelConfig(root, kernelRelease.value);
  const modules = readModules(root, kernelRelease.value);
  const qdiscUse = (kind: string): string | null => {
    const devs = q.interfaces.filter((i) => i.root === kind || i.children.includes(kind)).map((i) => i.dev);
    if (devs.length > 0) return `qdisc ${kind} attached to ${devs.join(', ')}`;
    return defaultQdisc.value === kind ? `net.core.default_qdisc is ${kind}` : null;
  };
  const bbr = probeFeature(
    {
      module: 'tcp_bbr',
      configOption: 'CONFIG_TCP_CONG_BBR',
      inUse: congestionControl.value === 'bbr' ? 'net.ipv4.tcp_congestion_control is bbr' : null,
      registered: availableCongestionControl.value?.includes('bbr') ? 'bbr listed in net.ipv4.tcp_available_congestion_control' : null,
    },
    config,
    modules,
  );
  const fq = probeFeature({ module: 'sch_fq', configOption: 'CONFIG_NET_SCH_FQ', inUse: qdiscUse('fq'), registered: null }, config, modules);
  const fqCodel = probeFeature({ module: 'sch_fq_codel', configOption: 'CONFIG_NET_SCH_FQ_CODEL', inUse: qdiscUse('fq_codel'), registered: null }, config, modules);

  return {
    root,
    kernelRelease,
    tcpRmem: readSetting(root, 'net.ipv4.tcp_rmem', parseBufferTriple),
    tcpWmem: readSetting(root, 'net.ipv4.tcp_wmem', parseBufferTriple),
    slowStartAfterIdle: readSetting(root, 'net.ipv4.tcp_slow_start_after_idle', parseInteger),
    notsentLowat: readSetting(root, 'net.ipv4.tcp_notsent_lowat', parseInteger),
    congestionControl,
    availableCongestionControl,
    allowedCongestionControl,
    defaultQdisc,
    rmemMax: readSetting(root, 'net.core.rmem_max', parseInteger),
    wmemMax: readSetting(root, 'net.core.wmem_max', parseInteger),
    bbr,
    fq,
    fqCodel,
    qdiscs: q,
  };
}

/** readQdiscs, then readHostSettings. */
export async function readHost(opts: QdiscOptions = {}): Promise<HostSettings> {
  const root = opts.root ?? '/';
  return readHostSettings(root, await readQdiscs({ ...opts, root }));
}
