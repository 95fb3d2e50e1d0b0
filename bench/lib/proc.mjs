// Small /proc readers (Linux only).
import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

/** Soft RLIMIT_NOFILE of this process, or null if unknown. */
export function openFileLimit() {
  try {
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m) return null;
    return m[1] === 'unlimited' ? Infinity : Number(m[1]);
  } catch { return null; }
}

/** Fields of /proc/PID/stat: comm, ppid, utime and stime (clock ticks, all threads); null when the process is gone. */
export function readProcStat(pid) {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = s.lastIndexOf(')');
    const rest = s.slice(close + 2).split(' ');
    return { pid, comm: s.slice(s.indexOf('(') + 1, close), ppid: Number(rest[1]), utime: Number(rest[11]), stime: Number(rest[12]) };
  } catch { return null; }
}

/** utime + stime of a process in clock ticks, or null. */
export function readProcCpuTicks(pid) {
  const st = readProcStat(pid);
  return st ? st.utime + st.stime : null;
}

let hz = 0;
export function clockTicks() {
  if (hz) return hz;
  try { hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100; } catch { hz = 100; }
  return hz;
}

/** VmRSS of a process in kB, or null. */
export function readVmRssKb(pid) {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch { return null; }
}
