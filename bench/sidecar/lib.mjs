// Helpers of the sidecar overhead benchmark (bench/sidecar/overhead.mjs):
// Prometheus text parsing, /proc and bpftool readers, small statistics.
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/**
 * Parses the Prometheus text format into [{ name, labels, value }].
 * Enough for the sidecar's own exposition: no escaped quotes or commas inside
 * label values are expected, but they are handled.
 */
export function parseProm(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l;
      while ((l = re.exec(m[3])) !== null) labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

/** The value of the first sample named `name` whose labels include `labels`; 0 when there is none. */
export function promValue(samples, name, labels = {}) {
  for (const s of samples) {
    if (s.name !== name) continue;
    if (Object.entries(labels).every(([k, v]) => s.labels[k] === String(v))) return s.value;
  }
  return 0;
}

/** Sum over all samples named `name` (any labels). */
export function promSum(samples, name) {
  let t = 0;
  for (const s of samples) if (s.name === name) t += s.value;
  return t;
}

/**
 * TCP sockets in ESTABLISHED state, counted by local port, from /proc/net/tcp
 * and /proc/net/tcp6 (this network namespace). Returns { port: count } for the
 * ports asked for.
 */
export function establishedByLocalPort(ports) {
  const want = new Set(ports.map(Number));
  const counts = Object.fromEntries([...want].map((p) => [p, 0]));
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try { text = readFileSync(f, 'utf8'); } catch { continue; }
    const lines = text.split('\n');
    for (let i = 1; i < lines.length; i++) {
      const cols = lines[i].trim().split(/\s+/);
      if (cols.length < 4 || cols[3] !== '01') continue;
      const port = parseInt(cols[1].slice(cols[1].lastIndexOf(':') + 1), 16);
      if (want.has(port)) counts[port]++;
    }
  }
  return counts;
}

/**
 * BPF programs attached to tracepoints through perf events, host-wide
 * (`bpftool perf list -j`): [{ pid, fd, prog_id, tracepoint }]. null when
 * bpftool is missing or fails.
 */
export function tracepointPrograms() {
  try {
    const out = execFileSync('bpftool', ['perf', 'list', '-j'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    return JSON.parse(out || '[]').filter((e) => e.fd_type === 'tracepoint');
  } catch { return null; }
}

/**
 * Run statistics of the BPF programs a process holds (from /proc/PID/fdinfo):
 * [{ fd, progId, progType, runCnt, runTimeNs }]. run_cnt and run_time_ns only
 * move while kernel.bpf_stats_enabled is 1.
 */
export function bpfProgStats(pid) {
  const out = [];
  let fds;
  try { fds = readdirSync(`/proc/${pid}/fd`); } catch { return out; }
  for (const fd of fds) {
    let link;
    try { link = readlinkSync(`/proc/${pid}/fd/${fd}`); } catch { continue; }
    if (link !== 'anon_inode:bpf-prog') continue;
    let info;
    try { info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'); } catch { continue; }
    const get = (k) => { const m = new RegExp(`^${k}:\\s+(\\S+)`, 'm').exec(info); return m ? Number(m[1]) : null; };
    out.push({ fd: Number(fd), progId: get('prog_id'), progType: get('prog_type'), runCnt: get('run_cnt'), runTimeNs: get('run_time_ns') });
  }
  return out;
}

export function median(xs) {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function minMax(xs) {
  const s = xs.filter((x) => Number.isFinite(x));
  return s.length ? { min: Math.min(...s), max: Math.max(...s) } : { min: null, max: null };
}

/** Run order of R rounds: "abba" gives A B, B A, A B, ... (each round holds one run of each). */
export function roundOrder(rounds, order) {
  const out = [];
  for (let r = 0; r < rounds; r++) {
    const flip = order === 'abba' && r % 2 === 1;
    out.push(flip ? ['with', 'without'] : ['without', 'with']);
  }
  return out;
}

/**
 * Cumulative CPU ticks of the whole machine from /proc/stat's first line:
 * busy (everything but idle and iowait) and steal (time the hypervisor gave
 * to someone else), in clock ticks. null when unreadable.
 */
export function machineCounters() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], steal: f[7] ?? 0, softirq: f[6] ?? 0 };
  } catch { return null; }
}

/**
 * CPU clock ticks of a process from /proc/PID/stat: own (utime + stime, all
 * threads) and reaped (cutime + cstime: children it has waited for, such as
 * short-lived commands it ran). null when the process is gone.
 */
export function procCpu(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
    return { own: Number(f[11]) + Number(f[12]), reaped: Number(f[13]) + Number(f[14]) };
  } catch { return null; }
}
