#!/usr/bin/env node
// Create many idle sessions (connect + hello → welcome) and report the
// server's resident memory before and after. See bench/README.md.

import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { Unpackr } from 'msgpackr';
import { WsConn, parseWsUrl, isLoopback, encodeFrame, OP_BINARY } from './lib/ws-client.mjs';
import { encodeHello, encodePing } from './lib/msgpack-scan.mjs';
import { openFileLimit, readVmRssKb } from './lib/proc.mjs';

const HELP = `Usage: node bench/idle-sessions.mjs [options]

  --url URL             target (default ws://127.0.0.1:8080/v1/ws); loopback only
  --sessions K          number of sessions to create (default 10000)
  --batch B             concurrent handshakes (default 500)
  --source-addrs LIST   local addresses, round-robin
                        (default 127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4)
  --keep-open           keep every connection open while measuring (needs K open files)
  --hold S              with --keep-open: keep them open S more seconds after measuring
  --settle S            wait before reading the "after" RSS (default 2)
  --pid PID             server process id whose VmRSS is read from /proc/PID/status
  --hello-timeout S     per-connection timeout for welcome (default 15)
  --json                print one JSON object
  -h, --help
`;

const { values } = parseArgs({
  options: {
    url: { type: 'string', default: 'ws://127.0.0.1:8080/v1/ws' },
    sessions: { type: 'string', default: '10000' },
    batch: { type: 'string', default: '500' },
    'source-addrs': { type: 'string', default: '127.0.0.1,127.0.0.2,127.0.0.3,127.0.0.4' },
    'keep-open': { type: 'boolean', default: false },
    hold: { type: 'string', default: '0' },
    settle: { type: 'string', default: '2' },
    pid: { type: 'string' },
    'hello-timeout': { type: 'string', default: '15' },
    json: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (values.help) { process.stdout.write(HELP); process.exit(0); }

const K = Number(values.sessions);
const B = Number(values.batch);
const keepOpen = values['keep-open'];
const holdS = Number(values.hold);
const settleS = Number(values.settle);
const helloTimeoutMs = Number(values['hello-timeout']) * 1000;
const pid = values.pid ? Number(values.pid) : null;
const addrs = values['source-addrs'].split(',').map((s) => s.trim()).filter(Boolean);
const target = parseWsUrl(values.url);
const log = (s) => { if (!values.json) process.stderr.write(s + '\n'); };

if (!Number.isInteger(K) || K < 1 || !Number.isInteger(B) || B < 1) { console.error('invalid --sessions/--batch'); process.exit(2); }
if (!isLoopback(target.host)) { console.error(`refusing non-loopback target ${target.host}`); process.exit(2); }
for (const a of addrs) if (!/^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(a)) { console.error(`source address ${a} is not in 127.0.0.0/8`); process.exit(2); }
if (pid !== null && readVmRssKb(pid) === null) { console.error(`cannot read /proc/${pid}/status`); process.exit(2); }

const needFds = (keepOpen ? K : B) + 64;
const lim = openFileLimit();
if (lim !== null && lim < needFds) {
  console.error(`open-file limit is ${lim}, need about ${needFds} for ${keepOpen ? K + ' open connections' : 'batch ' + B}.\n` +
    `Raise it in this shell first, e.g.:  ulimit -n 65536   (the server needs the same)`);
  process.exit(2);
}
const perAddr = Math.ceil(K / Math.max(1, addrs.length));
if (keepOpen && perAddr > 25000) {
  log(`warning: ${perAddr} connections per source address is close to the ephemeral port range; add --source-addrs`);
}

const unpackr = new Unpackr({ useRecords: false, mapsAsObjects: true });
const helloFrame = encodeFrame(OP_BINARY, encodeHello());
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const inc = (o, k) => { o[k] = (o[k] || 0) + 1; };

const failures = {};
const errorCodes = {};
const sessions = new Set();
let duplicates = 0;
const open = [];
let closedByServer = 0;
let heartbeatMs = 10000;

async function one(i) {
  const ws = new WsConn();
  let done = null;
  const welcome = new Promise((resolve, reject) => { done = { resolve, reject }; });
  ws.onmessage = (b, s, e) => {
    let m;
    try { m = unpackr.unpack(b.subarray(s, e)); } catch { done.reject(Object.assign(new Error('bad frame'), { code: 'BAD_FRAME' })); return; }
    if (m && m.t === 'welcome') done.resolve(m);
    else if (m && m.t === 'error') { inc(errorCodes, String(m.code)); done.reject(Object.assign(new Error('error frame'), { code: 'ERROR_' + m.code })); }
  };
  ws.onclose = (code) => {
    done.reject(Object.assign(new Error('closed'), { code: 'CLOSED_' + code }));
    if (keepOpen && !closing) closedByServer++;
  };
  try {
    await ws.connect({ ...target, localAddress: addrs[i % addrs.length], timeoutMs: helloTimeoutMs });
    ws.writeRaw(helloFrame);
    const to = setTimeout(() => done.reject(Object.assign(new Error('timeout'), { code: 'HELLO_TIMEOUT' })), helloTimeoutMs);
    let w;
    try { w = await welcome; } finally { clearTimeout(to); }
    if (typeof w.heartbeat_ms === 'number' && w.heartbeat_ms > 0) heartbeatMs = Math.min(heartbeatMs, w.heartbeat_ms);
    if (sessions.has(w.session)) duplicates++;
    sessions.add(w.session);
    if (keepOpen) open.push(ws);
    else await closeConn(ws);
    return true;
  } catch (err) {
    inc(failures, err.code || err.message);
    ws.onclose = null;
    ws.destroy();
    return false;
  }
}

function closeConn(ws, timeoutMs = 3000) {
  return new Promise((resolve) => {
    if (ws.state === 'closed') return resolve();
    ws.socket.once('close', resolve);
    ws.close(1000, '', timeoutMs);
  });
}

let closing = false;

async function main() {
  const rssBefore = pid !== null ? readVmRssKb(pid) : null;
  log(`creating ${K} sessions against ${values.url} (batch ${B}, ${addrs.length} source address${addrs.length > 1 ? 'es' : ''}, ${keepOpen ? 'keeping connections open' : 'closing each after welcome'}) ...`);
  const t0 = performance.now();
  let next = 0, ok = 0, lastLog = t0;
  const runner = async () => {
    while (next < K) {
      const i = next++;
      if (await one(i)) ok++;
      const now = performance.now();
      if (now - lastLog > 2000) { lastLog = now; log(`  ${ok}/${K} ...`); }
    }
  };
  await Promise.all(Array.from({ length: Math.min(B, K) }, runner));
  const elapsedS = (performance.now() - t0) / 1000;
  log(`created ${ok}/${K} sessions in ${elapsedS.toFixed(2)} s` + (K - ok ? ` (failures: ${JSON.stringify(failures)})` : ''));
  if (settleS > 0) await sleep(settleS * 1000);
  const rssAfter = pid !== null ? readVmRssKb(pid) : null;
  let rssAfterClose = null;
  if (keepOpen) {
    if (holdS > 0) {
      // The server closes connections that send nothing for its idle timeout,
      // so ping at the interval it asked for (welcome.heartbeat_ms).
      log(`holding ${open.length} connections for ${holdS} s (pinging every ${heartbeatMs} ms) ...`);
      const iv = setInterval(() => {
        const f = encodeFrame(OP_BINARY, encodePing(Date.now()));
        for (const w of open) if (w.isOpen) w.writeRaw(f);
      }, heartbeatMs);
      await sleep(holdS * 1000);
      clearInterval(iv);
    }
    closing = true;
    const stillOpen = open.filter((w) => w.isOpen).length;
    await Promise.all(open.map((w) => closeConn(w)));
    if (pid !== null) { if (settleS > 0) await sleep(settleS * 1000); rssAfterClose = readVmRssKb(pid); }
    result.openAtMeasure = stillOpen;
  }
  Object.assign(result, {
    url: values.url, requested: K, created: ok, failed: K - ok, failures, errorCodes,
    uniqueSessions: sessions.size, duplicateSessions: duplicates, keepOpen, closedByServer,
    elapsedS: Math.round(elapsedS * 100) / 100, sessionsPerSec: Math.round(ok / elapsedS),
    pid, rssBeforeKb: rssBefore, rssAfterKb: rssAfter, rssAfterCloseKb: rssAfterClose,
    rssDeltaKb: rssBefore !== null && rssAfter !== null ? rssAfter - rssBefore : null,
    bytesPerSession: rssBefore !== null && rssAfter !== null && ok ? Math.round((rssAfter - rssBefore) * 1024 / ok) : null,
  });
  if (values.json) { process.stdout.write(JSON.stringify(result) + '\n'); return; }
  const mib = (kb) => (kb === null ? '-' : (kb / 1024).toFixed(1) + ' MiB');
  const lines = [
    `sessions:   ${ok}/${K} created in ${result.elapsedS} s (${result.sessionsPerSec}/s), unique ids ${sessions.size}` +
      (duplicates ? `, DUPLICATES ${duplicates}` : '') + (K - ok ? `, failures ${JSON.stringify(failures)}` : ''),
    `mode:       ${keepOpen ? `connections kept open (${result.openAtMeasure} still open before closing, ${closedByServer} closed by the server)` : 'connections closed after welcome'}`,
  ];
  if (pid !== null) {
    lines.push(`server RSS: before ${mib(rssBefore)}, after ${mib(rssAfter)}, delta ${mib(result.rssDeltaKb)}` +
      (result.bytesPerSession !== null ? ` (~${(result.bytesPerSession / 1024).toFixed(1)} KiB/session)` : ''));
    if (rssAfterClose !== null) lines.push(`            after closing all: ${mib(rssAfterClose)}`);
  }
  console.log(lines.join('\n'));
}

const result = {};
main().then(() => process.exit(0), (err) => { console.error(err && err.stack || err); process.exit(1); });
