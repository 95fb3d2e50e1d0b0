/**
 * `npcd sidecar`: the eBPF sidecar's command line. It detects what the kernel
 * offers, says which programs it runs and why, and serves the metrics until
 * SIGTERM/SIGINT, when it stops every bpftrace program (no probe stays
 * attached) and exits 0.
 */
import { statSync } from 'node:fs';
import { NpcdError } from '../errors.js';
import { formatHelp, parseFlags, type FlagTable } from '../config/flags.js';
import { createLogger } from '../log.js';
import { stopOnSignals } from '../signals.js';
import { detectCapabilities } from './capabilities.js';
import { collectTcpAdvice } from './advise-cli.js';
import { ALL_TRACEPOINTS, DEFAULT_BPF_DIR, MAX_PORTS, selectPrograms, type Selection } from './programs.js';
import { Sidecar, type SidecarConfig } from './sidecar.js';

type Key = 'metricsPort' | 'metricsHost' | 'ports' | 'netns' | 'interval' | 'bpftrace' | 'bpfDir' | 'socketRtt' | 'mountTracefs' | 'check' | 'logLevel';

export const SIDECAR_FLAGS: FlagTable<Key> = {
  metricsPort: { flag: 'metrics-port', env: 'NPCD_SIDECAR_METRICS_PORT', type: 'int', default: 9464, min: 0, max: 65535, help: 'Port of the sidecar\'s own HTTP server: /metrics, /status, /sockets, /advice, /healthz.', metavar: 'PORT' },
  metricsHost: { flag: 'metrics-host', env: 'NPCD_SIDECAR_METRICS_HOST', type: 'string', default: '0.0.0.0', help: 'Address the metrics server listens on.', metavar: 'ADDR' },
  ports: { flag: 'ports', env: 'NPCD_SIDECAR_PORTS', type: 'list', default: ['8080', '6379'], help: `Service ports to watch, at most ${MAX_PORTS}: npcd's listen port (inbound) and upstream ports such as Redis or the LLM (outbound).`, metavar: 'LIST' },
  netns: { flag: 'netns', env: 'NPCD_SIDECAR_NETNS', type: 'string', default: '', help: 'Watch one network namespace only: a name from `ip netns`, a path (/proc/PID/ns/net, /run/netns/NAME) or an inode number. Empty: every namespace.', metavar: 'NS' },
  interval: { flag: 'interval', env: 'NPCD_SIDECAR_INTERVAL', type: 'duration', default: '5s', min: 1000, max: 3_600_000, help: 'How often the programs hand over their counts, in whole seconds (5s, 1m; a number without a unit is milliseconds). The srtt histogram takes one sample per socket per interval.', metavar: 'DURATION' },
  bpftrace: { flag: 'bpftrace', env: 'NPCD_SIDECAR_BPFTRACE', type: 'string', default: 'bpftrace', help: 'The bpftrace binary (0.17 or later).', metavar: 'PATH' },
  bpfDir: { flag: 'bpf-dir', env: 'NPCD_SIDECAR_BPF_DIR', type: 'string', default: DEFAULT_BPF_DIR, help: 'Folder of the .bt programs.', metavar: 'DIR' },
  socketRtt: { flag: 'socket-rtt', env: 'NPCD_SIDECAR_SOCKET_RTT', type: 'bool', default: false, help: 'Keep the latest srtt of every watched socket, by socket cookie, for /sockets. Off by default: it updates a map on every segment a watched socket receives, about twice the probe\'s cost.' },
  mountTracefs: { flag: 'mount-tracefs', env: 'NPCD_SIDECAR_MOUNT_TRACEFS', type: 'bool', default: true, help: 'Mount tracefs at /sys/kernel/tracing when it is missing (--no-mount-tracefs to refuse).' },
  check: { flag: 'check', type: 'bool', default: false, help: 'Print what the kernel offers and which programs would run, then exit (0 when at least one can run, 1 otherwise).' },
  logLevel: { flag: 'log-level', env: 'NPCD_LOG_LEVEL', type: 'string', default: 'info', choices: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], help: 'Log level (JSON lines on stdout).', metavar: 'LEVEL' },
};

export function sidecarHelp(): string {
  return `Usage: npcd sidecar [options]

Runs the eBPF sidecar beside npcd, as root: bpftrace programs on the kernel's
TCP tracepoints measure RTT, connect latency and failures, handshake RTT and
retransmits for the watched ports, and the sidecar serves them as Prometheus
metrics (npcd_tcp_*). See docs/sidecar.md.

Options:
${formatHelp(SIDECAR_FLAGS)}
`;
}

/** The inode of a network namespace given as a name, a path or a number; 0 for "every namespace". */
export function resolveNetns(value: string): number {
  const v = value.trim();
  if (v === '') return 0;
  if (/^\d+$/.test(v)) return Number(v);
  const path = v.includes('/') ? v : `/run/netns/${v}`;
  try {
    return statSync(path).ino;
  } catch (err) {
    throw new NpcdError('ERR_CONFIG_INVALID', `--netns ${JSON.stringify(value)}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? `${path} does not exist` : (err as Error).message}`);
  }
}

export function parsePorts(list: readonly string[]): number[] {
  const ports = [...new Set(list.map((s) => s.trim()).filter((s) => s !== ''))].map((s) => {
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < 1 || n > 65535) throw new NpcdError('ERR_CONFIG_INVALID', `--ports must list ports from 1 to 65535 (got ${JSON.stringify(s)})`);
    return n;
  });
  if (ports.length === 0) throw new NpcdError('ERR_CONFIG_INVALID', '--ports needs at least one port');
  if (ports.length > MAX_PORTS) throw new NpcdError('ERR_CONFIG_INVALID', `--ports takes at most ${MAX_PORTS} ports (got ${ports.length})`);
  return ports;
}

/** The start-up report: what the kernel offers, what runs and what does not, and why. */
export function describeSelection(selection: Selection, caps: Awaited<ReturnType<typeof detectCapabilities>>): string {
  const lines = ['npcd sidecar: what this host offers'];
  const mark = (ok: boolean) => (ok ? 'yes' : 'no ');
  lines.push(`  privileges  ${mark(caps.privileged.ok)} ${caps.privileged.detail}`);
  lines.push(`  bpftrace    ${mark(caps.bpftrace.ok)} ${caps.bpftrace.detail}`);
  lines.push(`  tracefs     ${mark(caps.tracefs.ok)} ${caps.tracefs.detail}`);
  lines.push(`  BTF         ${mark(caps.btf.ok)} ${caps.btf.detail}`);
  lines.push(`  kprobes     ${mark(caps.kprobes.ok)} ${caps.kprobes.detail}`);
  lines.push(`  fentry      ${mark(caps.fentry.ok)} ${caps.fentry.detail}`);
  for (const [tp, info] of Object.entries(caps.tracepoints)) lines.push(`  tracepoint  ${mark(info.present)} ${tp}${info.present ? ` (${info.fields.join(', ')})` : ''}`);
  lines.push('programs:');
  for (const p of selection.run) lines.push(`  run   ${p.name}: ${p.summary}`);
  for (const s of selection.skipped) lines.push(`  skip  ${s.name}: ${s.why}`);
  for (const n of selection.notes) lines.push(`  note  ${n}`);
  for (const b of selection.blockers) lines.push(`  cannot run: ${b}`);
  return `${lines.join('\n')}\n`;
}

export async function runSidecar(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const { values: v, help, positionals } = parseFlags(SIDECAR_FLAGS, argv, env);
  if (help) {
    process.stdout.write(sidecarHelp());
    return 0;
  }
  if (positionals.length > 0) throw new NpcdError('ERR_CONFIG_INVALID', `npcd sidecar takes no arguments (got ${positionals.join(' ')})`);
  const ports = parsePorts(v.ports as string[]);
  const netns = resolveNetns(v.netns as string);
  const intervalMs = v.interval as number;
  if (intervalMs % 1000 !== 0) throw new NpcdError('ERR_CONFIG_INVALID', `--interval must be whole seconds (got ${intervalMs} ms)`);
  const config: SidecarConfig = {
    ports,
    netns,
    intervalS: intervalMs / 1000,
    bpftrace: v.bpftrace as string,
    bpfDir: v.bpfDir as string,
    socketRtt: v.socketRtt as boolean,
    metricsHost: v.metricsHost as string,
    metricsPort: v.metricsPort as number,
    // The advisor reads this sidecar's histograms, as `npcd tcp-advise --metrics` reads them from /metrics.
    advice: (metrics) => collectTcpAdvice({ ports, metrics: { from: 'this sidecar', value: metrics } }),
  };
  const caps = await detectCapabilities({ bpftrace: config.bpftrace, tracepoints: ALL_TRACEPOINTS, mountTracefs: v.mountTracefs as boolean });
  const selection = selectPrograms(caps);
  const report = describeSelection(selection, caps);
  if (v.check) {
    process.stdout.write(report);
    return selection.run.length > 0 ? 0 : 1;
  }
  if (selection.run.length === 0) {
    process.stderr.write(report);
    throw new NpcdError('ERR_SIDECAR_UNSUPPORTED', `npcd sidecar cannot trace here: ${selection.blockers.join('; ')}`);
  }
  process.stderr.write(report);
  const logger = createLogger(v.logLevel as string);
  const sidecar = new Sidecar(config, caps, selection, logger.child({ component: 'sidecar' }));
  const port = await sidecar.start();
  logger.info({ port, ports, netns, programs: selection.run.map((p) => p.name) }, 'sidecar serving /metrics');
  stopOnSignals(logger, () => sidecar.stop(), { stopping: 'stopping the bpftrace programs', stopped: 'sidecar stopped; no program left attached' });
  return -1;
}
