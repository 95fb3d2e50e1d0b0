#!/usr/bin/env node
// Streaming relay overhead: direct upstream vs npcd vs the Portkey gateway, in one run.
// See bench/README.md ("Streaming relay overhead"). Run with --help for options.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync, readFileSync } from 'node:fs';
import { tmpdir, cpus, totalmem } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Children, floorArgs, loadArgs, npcdServeArgs, runClient as runClientProcess } from './procs.mjs';
import { median } from '../sidecar/lib.mjs';
import { freePort, waitPort, processTree, cmdline, replyTokens, loadAvg, machineTicks, clockTicks } from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');

const HELP = `Usage: node bench/providers/run.mjs [options]

  --concurrency LIST     client counts, comma-separated (default 50,200)
  --duration S           measured seconds per run (default 15)
  --warmup S             unmeasured seconds per run, after the client ramp (default 60: until V8 has
                         optimised the code run once per turn; see bench/README.md)
  --tokens N             tokens per reply of the mock upstream (default 64)
  --interval MS          pause between tokens (default 20)
  --ttft MS              upstream delay before the first token (default 20)
  --targets LIST         any of direct,floor,npcd,portkey (default all four); floor is
                         floor-relay.mjs, the bare uWS + undici byte relay
  --rounds R             measure every target at every level R times, in turn (default 1)
  --character ID         npcd model (a character id); default: station-ai if listed, else the first
  --npcd-args 'ARGS'     extra flags for npcd serve (split on spaces)
  --npcd-root DIR        the npcd checkout whose dist/cli.js runs (default: this one)
  --npcd-commit REF      recorded as npcd's commit (default: git rev-parse in --npcd-root, when it is a repository)
  --portkey-version V    @portkey-ai/gateway version for npx (default 1.15.2)
  --hono-node-server V   @hono/node-server version installed next to it (default 1.13.8; "" for the
                         one npm picks, whose streaming responses fail: see bench/README.md)
  --settle S             pause between runs (default 2)
  --quiet-below PCT      before each run, wait until the machine's CPU use over 1 s (all cores,
                         200 = two busy cores) is below PCT (default 25) ...
  --quiet-wait S         ... but at most S seconds (default 30); the wait is recorded
  --out FILE             results JSON (default bench/providers/results-<UTC time>.json)
  -h, --help

Builds nothing: npcd runs from dist/ (npm run build first). Logs of the
servers go to a temporary folder, printed at the start.
`;

const { values: opt } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '50,200' },
    duration: { type: 'string', default: '15' },
    warmup: { type: 'string', default: '60' },
    tokens: { type: 'string', default: '64' },
    interval: { type: 'string', default: '20' },
    ttft: { type: 'string', default: '20' },
    targets: { type: 'string', default: 'direct,floor,npcd,portkey' },
    rounds: { type: 'string', default: '1' },
    character: { type: 'string' },
    'npcd-args': { type: 'string', default: '' },
    'npcd-root': { type: 'string' },
    'npcd-commit': { type: 'string' },
    'portkey-version': { type: 'string', default: '1.15.2' },
    'hono-node-server': { type: 'string', default: '1.13.8' },
    settle: { type: 'string', default: '2' },
    'quiet-below': { type: 'string', default: '25' },
    'quiet-wait': { type: 'string', default: '30' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }

const LEVELS = opt.concurrency.split(',').map((s) => Number(s.trim()));
if (LEVELS.some((c) => !Number.isInteger(c) || c < 1 || c > 2000)) die('--concurrency: integers from 1 to 2000');
const DURATION = Number(opt.duration);
const WARMUP = Number(opt.warmup);
const TOKENS = Number(opt.tokens);
const INTERVAL = Number(opt.interval);
const TTFT = Number(opt.ttft);
const SETTLE = Number(opt.settle);
if (!(DURATION > 0 && DURATION <= 120)) die('--duration: 0 < S <= 120');
if (!(WARMUP >= 0 && WARMUP <= 300)) die('--warmup: 0 <= S <= 300');
if (!Number.isInteger(TOKENS) || TOKENS < 1 || TOKENS > 10_000) die('--tokens: 1..10000');
const TARGETS = opt.targets.split(',').map((s) => s.trim()).filter(Boolean);
for (const t of TARGETS) if (!['direct', 'floor', 'npcd', 'portkey'].includes(t)) die(`unknown target ${t}`);
const ROUNDS = Number(opt.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) die('--rounds: 1..20');
const stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
const OUT = opt.out ?? join(HERE, `results-${stamp}.json`);
const LOGS = mkdtempSync(join(tmpdir(), 'npcd-bench-providers-'));
// The client ramps its starts over one reply, so the window opens after that plus --warmup.
const RAMP_MS = Math.round(TTFT + TOKENS * INTERVAL);
const NPCD_ROOT = opt['npcd-root'] ?? ROOT;

function die(msg) { console.error(msg); process.exit(2); }
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const T0 = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${msg}\n`);

const children = new Children(LOGS);

async function getJson(url, init) {
  const res = await fetch(url, init);
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${text.slice(0, 200)}`);
  return JSON.parse(text);
}

function gitCommit(dir) {
  try {
    const head = execFileSync('git', ['-C', dir, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    const dirty = execFileSync('git', ['-C', dir, 'status', '--porcelain', '--', 'src'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() !== '';
    return dirty ? `${head} (src/ modified)` : head;
  } catch { return null; }
}

/** Waits (bounded) until the machine's CPU use over one second is below --quiet-below. */
async function waitQuiet() {
  const limit = Number(opt['quiet-below']);
  const until = Date.now() + Number(opt['quiet-wait']) * 1000;
  const t0 = Date.now();
  let pct = null;
  for (;;) {
    const a = machineTicks();
    await sleep(1000);
    const b = machineTicks();
    pct = a && b ? ((b.busy - a.busy) * 100) / clockTicks() : null;
    if (pct === null || pct < limit) break;
    if (Date.now() >= until) { log(`   machine still at ${pct.toFixed(0)} % CPU after ${opt['quiet-wait']} s; running anyway`); break; }
  }
  const waitedS = Number(((Date.now() - t0) / 1000).toFixed(1));
  if (waitedS > 1.5) log(`   waited ${waitedS} s for the machine to quieten (${pct?.toFixed(0)} %)`);
  return { waitedS, machineCpuPct: pct === null ? null : Number(pct.toFixed(0)) };
}

function runClient(args) {
  return runClientProcess(args, WARMUP + DURATION + RAMP_MS / 1000 + 90);
}

// ---------------------------------------------------------------------------

async function main() {
  log(`logs: ${LOGS}`);
  const upPort = await freePort();
  const upstream = children.start('upstream', process.execPath, [join(HERE, 'upstream.mjs'), '--port', String(upPort), '--tokens', String(TOKENS), '--interval', String(INTERVAL), '--ttft', String(TTFT)]);
  if (!(await waitPort(upstream, upPort, 10))) throw new Error(`upstream did not start; see ${LOGS}/upstream.log`);
  const upBase = `http://127.0.0.1:${upPort}/v1`;

  const targets = [];
  if (TARGETS.includes('direct')) {
    targets.push({ name: 'direct', url: `${upBase}/chat/completions`, model: 'bench-model', headers: [], watch: [] });
  }

  if (TARGETS.includes('floor')) {
    const port = await freePort();
    const args = floorArgs({ port, upBase, connections: Math.max(...LEVELS) + 16 });
    const floor = children.start('floor', process.execPath, args);
    if (!(await waitPort(floor, port, 10))) throw new Error(`floor-relay did not start; see ${LOGS}/floor.log`);
    targets.push({ name: 'floor', url: `http://127.0.0.1:${port}/v1/chat/completions`, model: 'bench-model', headers: [], watch: [`relay=${floor.pid}`], cmd: `node ${relative(ROOT, args[0])} ${args.slice(1).join(' ')}` });
  }

  let npcdVersion = null;
  if (TARGETS.includes('npcd')) {
    if (!existsSync(join(NPCD_ROOT, 'dist', 'cli.js'))) {
      log('dist/cli.js not found: skipping npcd (npm run build first; this script builds nothing)');
    } else {
      const port = await freePort();
      const args = npcdServeArgs({ port, upBase, tokens: TOKENS, connections: Math.max(...LEVELS) + 16, extra: opt['npcd-args'].split(' ').filter(Boolean) });
      const npcd = children.start('npcd', process.execPath, args, {}, NPCD_ROOT);
      if (!(await waitPort(npcd, port, 30))) throw new Error(`npcd did not start; see ${LOGS}/npcd.log`);
      const models = (await getJson(`http://127.0.0.1:${port}/v1/models`)).data.map((m) => m.id);
      const character = opt.character ?? (models.includes('station-ai') ? 'station-ai' : models[0]);
      if (!models.includes(character)) throw new Error(`npcd lists no model ${character} (it has ${models.join(', ')})`);
      npcdVersion = JSON.parse(readFileSync(join(NPCD_ROOT, 'package.json'), 'utf8')).version;
      targets.push({ name: 'npcd', url: `http://127.0.0.1:${port}/v1/chat/completions`, model: character, headers: [], watch: [`relay=${npcd.pid}`], cmd: `node ${args.join(' ')}` });
    }
  }

  if (TARGETS.includes('portkey')) {
    const port = await freePort();
    const pkgs = ['-p', `@portkey-ai/gateway@${opt['portkey-version']}`];
    const env = {};
    if (opt['hono-node-server']) {
      pkgs.push('-p', `@hono/node-server@${opt['hono-node-server']}`);
      env.npm_config_legacy_peer_deps = 'true';
    }
    const args = ['-y', ...pkgs, 'gateway', `--port=${port}`, '--headless'];
    const npx = children.start('portkey', 'npx', args, env, tmpdir());
    log(`starting the Portkey gateway (npx ${args.join(' ')}; the first run installs it)`);
    if (!(await waitPort(npx, port, 240))) throw new Error(`portkey did not start; see ${LOGS}/portkey.log`);
    const tree = processTree(npx.pid);
    const gw = tree.find((p) => /\bnode\b.*gateway/.test(cmdline(p)) && processTree(p).length === 1) ?? npx.pid;
    targets.push({
      name: 'portkey',
      url: `http://127.0.0.1:${port}/v1/chat/completions`,
      model: 'bench-model',
      headers: ['x-portkey-provider: openai', `x-portkey-custom-host: ${upBase}`, 'authorization: Bearer dummy'],
      watch: [`relay=${gw}`, `npx-tree=${npx.pid}`],
      cmd: `npx ${args.join(' ')}`,
      env,
      gatewayPid: gw,
    });
  }

  // ---- correctness: one request per target, its text against the upstream's
  const expected = (await getJson(`${upBase}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: 'bench-model', messages: [{ role: 'user', content: 'bench' }] }),
  })).choices[0].message.content;
  if (expected !== replyTokens(TOKENS).join('')) throw new Error('the upstream\'s own reply is not its token list');
  const checks = {};
  const clientArgs = (t) => ['--url', t.url, '--model', t.model, ...t.headers.flatMap((h) => ['--header', h])];
  for (const t of targets) {
    const r = await runClient([...clientArgs(t), '--concurrency', '1', '--requests', '1', '--warmup', '0', '--duration', '30', '--ramp', '0', '--print-text', '--expect-tokens', String(TOKENS), '--label', `check-${t.name}`]);
    const ok = !r.failed && r.requests.ok === 1 && r.text === expected;
    checks[t.name] = { ok, text: r.text ?? null, errors: r.requests?.errors ?? null, withUsage: r.requests?.withUsage ?? null, failed: r.failed ?? null, errorExamples: r.errorExamples ?? null };
    log(`check ${t.name}: ${ok ? 'streamed text equals the upstream\'s tokens' : `MISMATCH ${JSON.stringify(checks[t.name]).slice(0, 400)}`}`);
    t.checked = ok;
  }

  // ---- timed runs
  const runs = [];
  for (let round = 1; round <= ROUNDS; round++) for (const c of LEVELS) {
    for (const t of targets) {
      if (!t.checked) { log(`skipping ${t.name}: its check failed`); continue; }
      await sleep(SETTLE * 1000);
      const quiet = await waitQuiet();
      const load = loadAvg();
      log(`== ${ROUNDS > 1 ? `round ${round}/${ROUNDS}: ` : ''}${t.name}: ${c} clients, ramp ${RAMP_MS} ms + ${WARMUP} s warmup + ${DURATION} s`);
      const r = await runClient(loadArgs({ target: t, concurrency: c, durationS: DURATION, warmupS: WARMUP, rampMs: RAMP_MS, expectTokens: TOKENS,
        intervalMs: INTERVAL, ttftMs: TTFT, watch: [`upstream=${upstream.pid}`, ...t.watch], label: `${t.name}-${c}` }));
      if (r.failed) log(`   failed: ${r.failed}`);
      else log(`   ${r.requests.ok} replies, ${r.tokensPerSecond} tokens/s, TTFT p50 ${r.ttftMs.p50} ms, errors ${r.requests.errorCount}`);
      runs.push({ target: t.name, concurrency: c, round, loadAvgBefore: load, quietBefore: quiet, ...r });
    }
  }

  const upstreamStats = await getJson(`http://127.0.0.1:${upPort}/bench/stats`).catch(() => null);
  await children.stopAll();

  const result = {
    date: new Date().toISOString(),
    machine: { cores: cpus().length, cpu: cpus()[0]?.model ?? null, memGiB: Number((totalmem() / 2 ** 30).toFixed(1)), node: process.version },
    config: { tokens: TOKENS, intervalMs: INTERVAL, ttftMs: TTFT, levels: LEVELS, rounds: ROUNDS, durationS: DURATION, warmupS: WARMUP, rampMs: RAMP_MS },
    targets: targets.map((t) => ({ name: t.name, url: t.url, model: t.model, headers: t.headers, cmd: t.cmd ?? null, env: t.env ?? null })),
    npcdVersion,
    npcdRoot: NPCD_ROOT,
    npcdCommit: opt['npcd-commit'] ?? gitCommit(NPCD_ROOT),
    portkey: { version: opt['portkey-version'], honoNodeServer: opt['hono-node-server'] || null },
    checks,
    upstreamStats,
    runs,
  };
  writeFileSync(OUT, JSON.stringify(result, null, 1) + '\n');
  report(result);
  log(`\nresults: ${relative(process.cwd(), OUT)}`);
}

// ---------------------------------------------------------------------------

/** Machine CPU % in the window not used by the client, the upstream or the relay. */
function others(r) {
  if (r.machineCpuPct === null) return null;
  const ours = r.watched.filter((w) => w.name === 'relay' || w.name === 'upstream').reduce((s, w) => s + w.cpuPct, 0) + r.client.cpuPct;
  return Math.max(0, r.machineCpuPct - ours);
}

function report(res) {
  const f = (x, d = 1) => (x === null || x === undefined || Number.isNaN(x) ? '–' : Number(x).toFixed(d));
  const signed = (x, d = 1) => {
    if (x === null || x === undefined || Number.isNaN(x)) return '–';
    const s = Math.abs(x).toFixed(d);
    return Number(s) === 0 ? s : `${x > 0 ? '+' : '−'}${s}`;
  };
  console.log(`\n### Streaming relay overhead (${res.date.slice(0, 16)}Z, ${res.machine.cores} cores, node ${res.machine.node}, npcd ${res.npcdCommit ?? 'commit unknown'}, Portkey gateway ${res.portkey.version})`);
  console.log(`\n${res.config.tokens} tokens per reply, ${res.config.intervalMs} ms apart, first after ${res.config.ttftMs} ms; ${res.config.warmupS} s warmup + ${res.config.durationS} s measured per run.`);
  for (const c of res.config.levels) {
    const rows = res.runs.filter((r) => r.concurrency === c && !r.failed);
    // "Added" figures are against the direct run of the same round.
    const baseOf = (r) => rows.find((x) => x.target === 'direct' && x.round === r.round);
    const d = (r, k, p) => {
      const base = baseOf(r);
      return base && r !== base ? r[k][p] - base[k][p] : null;
    };
    const label = (r) => (res.config.rounds > 1 ? `${r.target} #${r.round}` : r.target);
    console.log(`\n#### ${c} concurrent clients\n`);
    console.log('| target | TTFT p50 | TTFT p99 | added TTFT p50 | added TTFT p99 | gap p50 | gap p99 | added per token p50 | added per token p99 | relay CPU ms / 1,000 tokens | relay RSS MiB | errors |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const relay = r.watched.find((w) => w.name === 'relay');
      console.log(`| ${label(r)} | ${f(r.ttftMs.p50)} | ${f(r.ttftMs.p99)} | ${signed(d(r, 'ttftMs', 'p50'))} | ${signed(d(r, 'ttftMs', 'p99'))} | ` +
        `${f(r.gapMs.p50, 2)} | ${f(r.gapMs.p99, 2)} | ${signed(d(r, 'gapMs', 'p50'), 2)} | ${signed(d(r, 'gapMs', 'p99'), 2)} | ` +
        `${relay ? f(relay.cpuMsPer1kTokens, 1) : '–'} | ${relay ? f(relay.rssKb / 1024, 0) : '–'} | ${r.requests.errorCount} |`);
    }
    console.log('\n| target | replies | tokens/s | token lag p50 | token lag p99 | added lag p50 | added lag p99 | relay CPU % | relay user / sys ms per 1,000 tokens | upstream CPU % | client CPU % | client loop delay p99 | machine CPU % | other processes CPU % |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const w = (n) => r.watched.find((x) => x.name === n);
      console.log(`| ${label(r)} | ${r.requests.ok} | ${f(r.tokensPerSecond, 0)} | ${f(r.lagMs.p50)} | ${f(r.lagMs.p99)} | ${signed(d(r, 'lagMs', 'p50'))} | ${signed(d(r, 'lagMs', 'p99'))} | ` +
        `${w('relay') ? f(w('relay').cpuPct, 0) : '–'} | ${w('relay') ? `${f((w('relay').userMs * 1000) / r.tokensInWindow)} / ${f((w('relay').sysMs * 1000) / r.tokensInWindow)}` : '–'} | ${f(w('upstream')?.cpuPct, 0)} | ${f(r.client.cpuPct, 0)} | ${f(r.client.eventLoopDelayMs.p99)} | ${f(r.machineCpuPct, 0)} | ${f(others(r), 0)} |`);
    }
    const failed = res.runs.filter((r) => r.concurrency === c && r.failed);
    for (const r of failed) console.log(`\n${r.target}: run failed: ${r.failed}`);
  }
  // CPU per 1,000 tokens of each relay, and the ratios within each round.
  const cpu = (c, target, round) => res.runs.find((r) => r.concurrency === c && r.target === target && r.round === round && !r.failed)
    ?.watched.find((w) => w.name === 'relay')?.cpuMsPer1kTokens ?? null;
  const rounds = Array.from({ length: res.config.rounds }, (_, i) => i + 1);
  const ratio = (c, a, b) => rounds.map((k) => {
    const x = cpu(c, a, k);
    const y = cpu(c, b, k);
    return x !== null && y !== null ? x / y : null;
  });
  console.log('\n#### CPU per 1,000 tokens (median of rounds) and ratios (median of the ratios within each round)\n');
  console.log('| clients | floor | npcd | portkey | portkey / npcd | portkey / floor | npcd / floor | portkey / npcd per round |');
  console.log('|---:|---:|---:|---:|---:|---:|---:|---|');
  for (const c of res.config.levels) {
    const pn = ratio(c, 'portkey', 'npcd');
    console.log(`| ${c} | ${f(median(rounds.map((k) => cpu(c, 'floor', k))))} | ${f(median(rounds.map((k) => cpu(c, 'npcd', k))))} | ${f(median(rounds.map((k) => cpu(c, 'portkey', k))))} | ` +
      `${f(median(pn), 2)} | ${f(median(ratio(c, 'portkey', 'floor')), 2)} | ${f(median(ratio(c, 'npcd', 'floor')), 2)} | ${pn.map((x) => f(x, 2)).join(', ')} |`);
  }
}

main().catch(async (err) => {
  console.error(err && err.stack || err);
  await children.stopAll();
  process.exit(1);
});
