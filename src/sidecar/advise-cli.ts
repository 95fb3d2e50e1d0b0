/**
 * `npcd tcp-advise`: reads the host's TCP settings (host.ts), the sockets on
 * the watched ports (`ss -tinHOe state established`) and optionally the
 * sidecar's srtt histograms (--metrics), then prints what to tune and why
 * (advise.ts holds the rules). See docs/tcp-advise.md.
 */
import { readFileSync } from 'node:fs';
import { type FlagTable, formatHelp, parseFlags } from '../config/flags.js';
import { NpcdError } from '../errors.js';
import {
  type Advice,
  type Observations,
  type PersistStep,
  type SidecarMetrics,
  type SourceNote,
  type SsSocket,
  advise,
  observe,
  parseSs,
  readSidecarMetrics,
} from './advise.js';
import { type ExecFileFn, type HostSettings, execFileText, readHostSettings, readQdiscs } from './host.js';

export const TCP_ADVISE_FLAGS = {
  ports: {
    flag: 'ports',
    type: 'list',
    default: ['8080', '6379', '11434'],
    metavar: 'LIST',
    help: 'Ports to judge, comma-separated: a socket counts for a port when its local port is it (inbound, npcd serves it) or its peer port is (outbound, npcd is the client). The default is npcd, Redis and Ollama.',
  },
  metrics: {
    flag: 'metrics',
    type: 'string',
    default: undefined,
    metavar: 'URL',
    help: "The sidecar's metrics page (e.g. http://127.0.0.1:9464/metrics): its npcd_tcp_srtt_seconds histograms give the RTTs of every socket over time.",
  },
  format: { flag: 'format', type: 'string', default: 'text', choices: ['text', 'json'], metavar: 'FORMAT', help: 'Output format.' },
  root: {
    flag: 'root',
    type: 'string',
    default: '/',
    metavar: 'DIR',
    help: 'Read proc/sys, proc/config.gz, boot/ and lib/modules/ under DIR instead of / (tests, a copy of another host).',
  },
  ssFile: {
    flag: 'ss-file',
    type: 'string',
    default: undefined,
    metavar: 'FILE',
    help: 'Read saved `ss -tinHOe state established` output from FILE instead of running ss.',
  },
  tcFile: {
    flag: 'tc-file',
    type: 'string',
    default: undefined,
    metavar: 'FILE',
    help: 'Read saved `tc -j qdisc show` output from FILE instead of running tc.',
  },
} as const satisfies FlagTable<string>;

export function tcpAdviseHelp(): string {
  // The column formatHelp puts the help text in, for the --help line.
  const width = Math.min(34, Math.max(...Object.values(TCP_ADVISE_FLAGS).map((f) => `  --${f.flag} ${f.metavar}`.length)) + 2);
  return `Usage: npcd tcp-advise [options]

Judges this host's TCP settings for npcd's connections: streams to clients
and pooled keep-alive connections to upstreams and Redis. Reads the sysctls
under /proc/sys/net, the sockets on the watched ports (ss), the interfaces'
qdiscs (tc) and, with --metrics, the sidecar's RTT histograms. Prints one
verdict per setting (recommend, consider, unknown, ok) with the numbers
behind it and the commands that apply and persist the change. Changes
nothing itself. Exits 0, or 2 on bad options. See docs/tcp-advise.md.

Options:
${formatHelp(TCP_ADVISE_FLAGS)}
${'  -h, --help'.padEnd(width)}Show this help.
`;
}

/** What `fetch` must offer (node's global fetch does). */
export type FetchFn = (url: string, init: { signal: AbortSignal }) => Promise<{ ok: boolean; status: number; text(): Promise<string> }>;

export interface TcpAdviseDeps {
  /** Runs ss and tc (default: child_process.execFile). */
  readonly exec?: ExecFileFn;
  readonly fetch?: FetchFn;
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Time limit for ss, tc and the metrics request (default 10 s). */
  readonly timeoutMs?: number;
}

export interface TcpAdviseOptions {
  readonly ports: readonly number[];
  readonly root?: string;
  readonly metricsUrl?: string;
  /** The sidecar's histograms when the advisor runs inside it (instead of fetching metricsUrl). */
  readonly metrics?: { readonly from: string; readonly value: SidecarMetrics };
  readonly ssFile?: string;
  readonly tcFile?: string;
}

export interface TcpAdviceReport {
  readonly host: HostSettings;
  readonly observations: Observations;
  readonly advice: readonly Advice[];
}

const SS_ARGS = ['-tinHOe', 'state', 'established'] as const;
/** For an ss older than -O (--oneline): two lines per socket, which parseSs also reads. */
const SS_ARGS_TWO_LINE = ['-tine', 'state', 'established'] as const;

function parsePorts(list: readonly string[]): number[] {
  const ports: number[] = [];
  for (const p of list) {
    const n = Number(p);
    if (!/^\d+$/.test(p) || !Number.isInteger(n) || n < 1 || n > 65535) {
      throw new NpcdError('ERR_CONFIG_INVALID', `--ports must be a comma-separated list of ports from 1 to 65535 (got ${JSON.stringify(p)})`);
    }
    if (!ports.includes(n)) ports.push(n);
  }
  if (ports.length === 0) throw new NpcdError('ERR_CONFIG_INVALID', '--ports must name at least one port');
  return ports;
}

function checkUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new NpcdError('ERR_CONFIG_INVALID', `--metrics must be an http:// or https:// URL (got ${JSON.stringify(url)})`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') {
    throw new NpcdError('ERR_CONFIG_INVALID', `--metrics must be an http:// or https:// URL (got ${JSON.stringify(url)})`);
  }
  return url;
}

function errText(err: unknown): string {
  const e = err as NodeJS.ErrnoException & { killed?: boolean; signal?: string };
  if (e.killed || e.name === 'TimeoutError') return 'timed out';
  return e.message ?? String(err);
}

async function readSockets(opts: TcpAdviseOptions, deps: TcpAdviseDeps, timeoutMs: number): Promise<{ sockets: SsSocket[] | null; note: SourceNote }> {
  let text: string;
  let from: string;
  if (opts.ssFile !== undefined) {
    from = opts.ssFile;
    try {
      text = readFileSync(opts.ssFile, 'utf8');
    } catch (err) {
      return { sockets: null, note: { source: 'ss', used: false, detail: `${opts.ssFile}: ${errText(err)}; continuing without socket observations` } };
    }
  } else {
    const exec = deps.exec ?? execFileText;
    from = `ss ${SS_ARGS.join(' ')}`;
    try {
      text = await exec('ss', SS_ARGS, { timeout: timeoutMs });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        return { sockets: null, note: { source: 'ss', used: false, detail: 'ss not found (install iproute2); continuing without socket observations' } };
      }
      const first = `${from} failed: ${errText(err)}`;
      from = `ss ${SS_ARGS_TWO_LINE.join(' ')}`;
      try {
        text = await exec('ss', SS_ARGS_TWO_LINE, { timeout: timeoutMs });
        from += `, after ${first}`;
      } catch (err2) {
        return { sockets: null, note: { source: 'ss', used: false, detail: `${first}; ${from} failed: ${errText(err2)}; continuing without socket observations` } };
      }
    }
  }
  const { sockets, skipped } = parseSs(text);
  const skip = skipped > 0 ? `, ${skipped} line${skipped === 1 ? '' : 's'} not understood` : '';
  return { sockets, note: { source: 'ss', used: true, detail: `${sockets.length} established socket${sockets.length === 1 ? '' : 's'} (${from})${skip}` } };
}

async function readMetrics(url: string | undefined, deps: TcpAdviseDeps, timeoutMs: number): Promise<{ metrics: SidecarMetrics | null; note: SourceNote }> {
  if (url === undefined) return { metrics: null, note: { source: 'metrics', used: false, detail: 'not requested (--metrics URL)' } };
  try {
    const res = await (deps.fetch ?? (globalThis.fetch as FetchFn))(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { metrics: null, note: { source: 'metrics', used: false, detail: `${url} answered HTTP ${res.status}; continuing without metrics` } };
    return metricsNote(readSidecarMetrics(await res.text()), url);
  } catch (err) {
    return { metrics: null, note: { source: 'metrics', used: false, detail: `${url}: ${errText(err)}; continuing without metrics` } };
  }
}

function metricsNote(metrics: SidecarMetrics, from: string): { metrics: SidecarMetrics; note: SourceNote } {
  const samples = metrics.srtt.reduce((a, h) => a + h.count, 0);
  return {
    metrics,
    note: { source: 'metrics', used: true, detail: `${from}: ${metrics.srtt.length} srtt histogram${metrics.srtt.length === 1 ? '' : 's'} (${samples} samples), ${metrics.retransmits.length} retransmit counter${metrics.retransmits.length === 1 ? '' : 's'}` },
  };
}

function procNote(host: HostSettings): SourceNote {
  const settings = [
    host.tcpRmem, host.tcpWmem, host.slowStartAfterIdle, host.notsentLowat, host.congestionControl,
    host.availableCongestionControl, host.allowedCongestionControl, host.defaultQdisc, host.rmemMax, host.wmemMax,
  ];
  const read = settings.filter((s) => s.value !== null).length;
  const missing = settings.filter((s) => s.value === null).map((s) => s.name);
  const kernel = host.kernelRelease.value ? `, kernel ${host.kernelRelease.value}` : '';
  return {
    source: 'proc',
    used: read > 0,
    detail: `${read} of ${settings.length} settings from ${host.root === '/' ? '/proc/sys' : `${host.root}/proc/sys`}${kernel}${missing.length > 0 ? `; not read: ${missing.join(', ')}` : ''}`,
  };
}

/** Reads every source and judges: what `npcd tcp-advise` prints, as data. */
export async function collectTcpAdvice(opts: TcpAdviseOptions, deps: TcpAdviseDeps = {}): Promise<TcpAdviceReport> {
  const timeoutMs = deps.timeoutMs ?? 10_000;
  const root = opts.root ?? '/';
  const [qdiscs, ss, metrics] = await Promise.all([
    readQdiscs({ root, tcFile: opts.tcFile, exec: deps.exec, timeoutMs }),
    readSockets(opts, deps, timeoutMs),
    opts.metrics ? metricsNote(opts.metrics.value, opts.metrics.from) : readMetrics(opts.metricsUrl, deps, timeoutMs),
  ]);
  const host = readHostSettings(root, qdiscs);
  const tcNote: SourceNote =
    qdiscs.source === 'none'
      ? { source: 'tc', used: false, detail: `${qdiscs.error ?? 'not read'}; interface qdiscs unknown` }
      : { source: 'tc', used: true, detail: `${qdiscs.interfaces.length} interface${qdiscs.interfaces.length === 1 ? '' : 's'} (${qdiscs.source === 'file' ? opts.tcFile : 'tc -j qdisc show'})` };
  const observations = observe(opts.ports, ss.sockets, metrics.metrics, [procNote(host), ss.note, tcNote, metrics.note]);
  return { host, observations, advice: advise(host, observations) };
}

function wrap(text: string, indent: string, width = 100): string {
  const words = text.split(/\s+/).filter(Boolean);
  const lines: string[] = [];
  let line = '';
  for (const w of words) {
    if (line !== '' && indent.length + line.length + 1 + w.length > width) {
      lines.push(indent + line);
      line = w;
    } else line = line === '' ? w : `${line} ${w}`;
  }
  if (line !== '') lines.push(indent + line);
  return lines.join('\n');
}

function watchedSummary(obs: Observations): string[] {
  return obs.ports.map((port) => {
    const groups = obs.groups.filter((g) => g.port === port);
    if (groups.length === 0) return `:${port}: nothing observed`;
    return groups
      .map((g) => {
        const parts: string[] = [];
        if (g.ss) parts.push(`${g.ss.sockets} socket${g.ss.sockets === 1 ? '' : 's'}${g.ss.loopbackSockets > 0 ? ` (${g.ss.loopbackSockets} loopback)` : ''}`);
        if (g.metrics) parts.push(`${g.metrics.samples} histogram samples`);
        return `${g.direction} :${port}: ${parts.join(', ')}`;
      })
      .join('; ');
  });
}

/** The text report: sources, then each advice, then what to persist. */
export function formatTcpAdviceText(report: TcpAdviceReport): string {
  const out: string[] = ['npcd tcp-advise'];
  for (const s of report.observations.sources) out.push(`  ${`${s.source}:`.padEnd(9)}${s.detail}`);
  out.push(`  ${'ports:'.padEnd(9)}${watchedSummary(report.observations).join('\n           ')}`);
  for (const a of report.advice) {
    const change = a.recommended !== null ? `${a.current} → ${a.recommended}` : a.current;
    out.push('', `${a.severity.toUpperCase().padEnd(9)} ${a.setting}: ${change}  [${a.id}]`);
    out.push(wrap(a.reason, '  '));
    for (const e of a.evidence) out.push(wrap(`- ${e}`, '    ').replace(/^ {4}- /, '  - '));
    for (const c of a.commands) out.push(`  $ ${c}`);
  }
  const persist = new Map<string, string[]>();
  for (const a of report.advice) {
    if (a.severity === 'ok' || a.severity === 'unknown') continue;
    for (const p of a.persist as PersistStep[]) {
      const lines = persist.get(p.file) ?? [];
      for (const l of p.lines) if (!lines.includes(l)) lines.push(l);
      persist.set(p.file, lines);
    }
  }
  if (persist.size > 0) {
    out.push('', 'To keep the changes across reboots, add these lines:');
    for (const [file, lines] of persist) {
      out.push(`  ${file}:`, ...lines.map((l) => `    ${l}`));
      if (file.startsWith('/etc/sysctl.d/')) out.push('  then run: sysctl --system');
    }
  }
  return `${out.join('\n')}\n`;
}

export async function runTcpAdvise(argv: readonly string[], write: (s: string) => void, deps: TcpAdviseDeps = {}): Promise<number> {
  let opts: TcpAdviseOptions;
  let format: string;
  try {
    const { values, positionals, help } = parseFlags(TCP_ADVISE_FLAGS, argv, deps.env ?? process.env);
    if (help) {
      write(tcpAdviseHelp());
      return 0;
    }
    if (positionals.length > 0) throw new NpcdError('ERR_CONFIG_INVALID', `unexpected argument ${JSON.stringify(positionals[0])} (see --help)`);
    format = values.format as string;
    opts = {
      ports: parsePorts(values.ports as string[]),
      root: values.root as string,
      metricsUrl: values.metrics === undefined ? undefined : checkUrl(values.metrics as string),
      ssFile: values.ssFile as string | undefined,
      tcFile: values.tcFile as string | undefined,
    };
  } catch (err) {
    if (err instanceof NpcdError) {
      write(`npcd tcp-advise: ${err.code}: ${err.message}\n`);
      return 2;
    }
    throw err;
  }
  const report = await collectTcpAdvice(opts, deps);
  write(format === 'json' ? `${JSON.stringify(report, null, 2)}\n` : formatTcpAdviceText(report));
  return 0;
}
