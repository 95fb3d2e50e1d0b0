// Shared helpers of the streaming relay benchmark (bench/providers/).
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import { readProcStat } from '../lib/proc.mjs';

const WORDS = [
  'the', 'old', 'lantern', 'swings', 'over', 'a', 'quiet', 'river', 'while', 'ferrymen',
  'count', 'copper', 'coins', 'and', 'talk', 'of', 'rain', 'café', 'bells', 'ring',
  'far', 'away', 'beyond', 'misty', 'hills', 'where', 'travellers', 'rest', 'before', 'dawn',
];

/** The reply text of the mock upstream, one entry per token: "the", " old", " lantern", ... */
export function replyTokens(n) {
  const out = new Array(n);
  for (let k = 0; k < n; k++) out[k] = (k === 0 ? '' : ' ') + WORDS[k % WORDS.length];
  return out;
}

/**
 * The SSE events of one streamed reply in OpenAI's format, as the mock
 * upstream sends them: a role chunk, a chunk per token, the finish chunk,
 * with include_usage (`usage`) "usage": null on each and a usage chunk last,
 * then [DONE].
 */
export function openAiChunks({ id, created, model, usage }) {
  // Every chunk shares this prefix; only choices (and usage) differ.
  const head = `data: {"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":"fp_bench","choices":[`;
  const tail = usage ? ',"usage":null}\n\n' : '}\n\n';
  return {
    role: () => `${head}{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]${tail}`,
    token: (text) => `${head}{"index":0,"delta":{"content":${JSON.stringify(text)}},"logprobs":null,"finish_reason":null}]${tail}`,
    /** The finish chunk, the usage chunk (with `usage`), and [DONE]. */
    end: (finish, promptTokens, completionTokens) => {
      let last = `${head}{"index":0,"delta":{},"logprobs":null,"finish_reason":"${finish}"}]${tail}`;
      if (usage) {
        const p = promptTokens;
        const n = completionTokens;
        last += `${head}],"usage":{"prompt_tokens":${p},"completion_tokens":${n},"total_tokens":${p + n},"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}\n\n`;
      }
      return `${last}data: [DONE]\n\n`;
    },
  };
}

/** A command-line option that must be an integer >= 1; exits with status 2 otherwise. */
export function positiveInt(s, name) {
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) { console.error(`${name} must be a positive integer`); process.exit(2); }
  return n;
}

export function isLoopback(host) {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** A port that was free a moment ago on 127.0.0.1. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function portOpen(port, host = '127.0.0.1') {
  return new Promise((resolve) => {
    const s = net.connect(port, host);
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

/** Percentile (nearest rank) of an ascending-sorted array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

/** A growable Float64Array of samples. */
export class Samples {
  constructor(capacity = 4096) {
    this.a = new Float64Array(capacity);
    this.n = 0;
  }

  push(v) {
    if (this.n === this.a.length) {
      const b = new Float64Array(this.a.length * 2);
      b.set(this.a);
      this.a = b;
    }
    this.a[this.n++] = v;
  }

  summary(digits = 3) {
    const s = this.a.subarray(0, this.n).slice().sort();
    const r = (v) => (v === null ? null : Number(v.toFixed(digits)));
    let sum = 0;
    for (let i = 0; i < s.length; i++) sum += s[i];
    return {
      count: s.length,
      mean: s.length ? r(sum / s.length) : null,
      p50: r(percentile(s, 50)),
      p90: r(percentile(s, 90)),
      p99: r(percentile(s, 99)),
      max: s.length ? r(s[s.length - 1]) : null,
    };
  }
}

// ---------------------------------------------------------------------------
// /proc readers (Linux)

/** pid and all of its descendants (by ppid), pid first. */
export function processTree(pid) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readProcStat(Number(name));
    if (!st) continue;
    if (!children.has(st.ppid)) children.set(st.ppid, []);
    children.get(st.ppid).push(st.pid);
  }
  const out = [];
  const stack = [pid];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) || []) stack.push(c);
  }
  return out;
}

export function cmdline(pid) {
  try { return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' '); } catch { return ''; }
}

/** CPU ticks (all threads) of each process in the list: { pid: { utime, stime } }; exited ones are skipped. */
export function cpuTicks(pids) {
  const out = {};
  for (const p of pids) {
    const st = readProcStat(p);
    if (st) out[p] = { utime: st.utime, stime: st.stime };
  }
  return out;
}

export { clockTicks, readVmRssKb as rssKb } from '../lib/proc.mjs';

/** Contents of /proc/loadavg (first three fields). */
export function loadAvg() {
  try { return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).map(Number); } catch { return null; }
}

/** Busy and total CPU ticks of the whole machine (all cores), from /proc/stat. */
export function machineTicks() {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const total = f.slice(0, 8).reduce((a, b) => a + b, 0);
    return { busy: total - f[3] - f[4], total };
  } catch { return null; }
}

/** Waits until `port` accepts connections, at most `seconds`; false if the child exited or time ran out. */
export async function waitPort(child, port, seconds, stepMs = 100) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (child.exited) return false;
    if (await portOpen(port)) return true;
    await new Promise((r) => setTimeout(r, stepMs));
  }
  return false;
}
