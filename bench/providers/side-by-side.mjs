#!/usr/bin/env node
// Two relays measured at the same time, for A/B comparisons of CPU per token
// that the machine's drift does not swamp. See bench/README.md ("Side by
// side"). Run with --help for options.

import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Children, floorArgs, loadArgs, npcdServeArgs, runClient } from './procs.mjs';
import { median } from '../sidecar/lib.mjs';
import { freePort, waitPort } from './lib.mjs';

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = join(HERE, '..', '..');

const HELP = `Usage: node bench/providers/side-by-side.mjs [options]

Starts one mock upstream and two relays, A and B, and loads both at once,
each with its own client of the same shape; repeats for --rounds rounds
with fresh relays, swapping which one starts first. Because A and B share
the machine at the same moments, their CPU per token can be compared more
finely than in runs one after the other.

  --a SPEC, --b SPEC     a relay: "npcd", "npcd:FLAGS" (extra flags for npcd serve, split on
                         spaces), "floor" (floor-relay.mjs) or "floor:read" (floor-relay.mjs
                         --read, which parses and re-encodes every event)  (default: npcd and floor)
  --a-root DIR           the npcd checkout A runs from (default: this one); --b-root likewise
  --a-max-tokens N       the clients of A ask for replies of N tokens (max_tokens; default: the
                         upstream's full --tokens); --b-max-tokens likewise
  --concurrency C        clients per relay (default 50)
  --duration S           measured seconds (default 12)
  --warmup S             unmeasured seconds after the client ramp (default 60: until V8 has
                         optimised the code run once per turn; see bench/README.md)
  --rounds R             rounds (default 3)
  --tokens N             tokens per reply of the mock upstream (default 64)
  --interval MS          pause between tokens (default 20)
  --ttft MS              upstream delay before the first token (default 20)
  --character ID         npcd model (default station-ai)
  --out FILE             results JSON (default: none)
  -h, --help

Per round and relay it prints the CPU (user + system, all threads) per
1,000 tokens received by its clients, and the ratio B / A; at the end the
median of the ratios.
`;

const { values: opt } = parseArgs({
  options: {
    a: { type: 'string', default: 'npcd' },
    b: { type: 'string', default: 'floor' },
    'a-root': { type: 'string', default: ROOT },
    'b-root': { type: 'string', default: ROOT },
    'a-max-tokens': { type: 'string' },
    'b-max-tokens': { type: 'string' },
    concurrency: { type: 'string', default: '50' },
    duration: { type: 'string', default: '12' },
    warmup: { type: 'string', default: '60' },
    rounds: { type: 'string', default: '3' },
    tokens: { type: 'string', default: '64' },
    interval: { type: 'string', default: '20' },
    ttft: { type: 'string', default: '20' },
    character: { type: 'string', default: 'station-ai' },
    out: { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
  strict: true,
});
if (opt.help) { process.stdout.write(HELP); process.exit(0); }

function die(msg) { console.error(msg); process.exit(2); }
const int = (name, lo, hi) => {
  const v = Number(opt[name]);
  if (!Number.isInteger(v) || v < lo || v > hi) die(`--${name}: an integer from ${lo} to ${hi}`);
  return v;
};
const C = int('concurrency', 1, 1000);
const DURATION = int('duration', 1, 120);
const WARMUP = int('warmup', 0, 300);
const ROUNDS = int('rounds', 1, 20);
const TOKENS = int('tokens', 1, 10_000);
const INTERVAL = int('interval', 0, 1000);
const TTFT = int('ttft', 0, 10_000);
const RAMP_MS = Math.round(TTFT + TOKENS * INTERVAL);
/** A client that has not finished by then is killed. */
const CLIENT_LIMIT_S = WARMUP + DURATION + RAMP_MS / 1000 + 90;

function relaySpec(side) {
  const spec = opt[side];
  const maxTokens = opt[`${side}-max-tokens`] === undefined ? TOKENS : Number(opt[`${side}-max-tokens`]);
  if (!Number.isInteger(maxTokens) || maxTokens < 1 || maxTokens > TOKENS) die(`--${side}-max-tokens: 1..--tokens`);
  if (spec === 'floor' || spec === 'floor:read') return { side, kind: 'floor', label: spec, read: spec === 'floor:read', maxTokens };
  const m = /^npcd(?::(.*))?$/.exec(spec);
  if (!m) die(`--${side}: "npcd", "npcd:FLAGS", "floor" or "floor:read"`);
  const root = opt[`${side}-root`];
  if (!existsSync(join(root, 'dist', 'cli.js'))) die(`${root}/dist/cli.js not found (npm run build there first)`);
  return { side, kind: 'npcd', label: spec, root, flags: (m[1] ?? '').split(' ').filter(Boolean), maxTokens };
}
const SIDES = [relaySpec('a'), relaySpec('b')];

const LOGS = mkdtempSync(join(tmpdir(), 'npcd-bench-side-by-side-'));
const children = new Children(LOGS);
const T0 = Date.now();
const log = (msg) => process.stderr.write(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)} s] ${msg}\n`);

async function startRelay(s, upBase, round) {
  const port = await freePort();
  const name = `${s.side}-round${round}`;
  if (s.kind === 'floor') {
    const child = children.start(name, process.execPath, floorArgs({ port, upBase, connections: C + 16, read: s.read }));
    if (!(await waitPort(child, port, 10))) throw new Error(`floor-relay did not start; see ${LOGS}/${name}.log`);
    return { child, url: `http://127.0.0.1:${port}/v1/chat/completions`, model: 'bench-model' };
  }
  const args = npcdServeArgs({ port, upBase, tokens: TOKENS, connections: C + 16, extra: s.flags });
  const child = children.start(name, process.execPath, args, {}, s.root);
  if (!(await waitPort(child, port, 30))) throw new Error(`npcd did not start; see ${LOGS}/${name}.log`);
  return { child, url: `http://127.0.0.1:${port}/v1/chat/completions`, model: opt.character };
}

function clientArgs(s, relay) {
  return loadArgs({ target: relay, concurrency: C, durationS: DURATION, warmupS: WARMUP, rampMs: RAMP_MS, expectTokens: s.maxTokens,
    intervalMs: INTERVAL, ttftMs: TTFT, watch: [`relay=${relay.child.pid}`], label: s.label, maxTokens: s.maxTokens < TOKENS ? s.maxTokens : undefined });
}

async function main() {
  log(`logs: ${LOGS}`);
  const upPort = await freePort();
  const upstream = children.start('upstream', process.execPath, [join(HERE, 'upstream.mjs'), '--port', String(upPort),
    '--tokens', String(TOKENS), '--interval', String(INTERVAL), '--ttft', String(TTFT)]);
  if (!(await waitPort(upstream, upPort, 10))) throw new Error(`upstream did not start; see ${LOGS}/upstream.log`);
  const upBase = `http://127.0.0.1:${upPort}/v1`;
  const rounds = [];
  for (let round = 1; round <= ROUNDS; round++) {
    // Swap which relay starts first, so neither is always the older process.
    const order = round % 2 ? SIDES : [...SIDES].reverse();
    const relays = new Map();
    for (const s of order) relays.set(s.side, await startRelay(s, upBase, round));
    log(`round ${round}/${ROUNDS}: ${C} clients on each of A (${SIDES[0].label}) and B (${SIDES[1].label})`);
    const results = await Promise.all(SIDES.map((s) => runClient(clientArgs(s, relays.get(s.side)), CLIENT_LIMIT_S)));
    for (const r of relays.values()) await children.stop(r.child);
    const row = { round };
    for (const [i, s] of SIDES.entries()) {
      const r = results[i];
      if (r.failed) throw new Error(`${s.side} (${s.label}): ${r.failed}`);
      const w = r.watched.find((x) => x.name === 'relay');
      row[s.side] = {
        label: s.label, tokens: r.tokensInWindow, replies: r.requests.ok, errors: r.requests.errorCount,
        cpuMsPer1kTokens: w.cpuMsPer1kTokens, userMsPer1kTokens: (w.userMs * 1000) / r.tokensInWindow, sysMsPer1kTokens: (w.sysMs * 1000) / r.tokensInWindow,
        ttftP50: r.ttftMs.p50, ttftP99: r.ttftMs.p99, machineCpuPct: r.machineCpuPct,
      };
    }
    row.ratio = row.b.cpuMsPer1kTokens / row.a.cpuMsPer1kTokens;
    rounds.push(row);
    const fmt = (x) => `${x.cpuMsPer1kTokens.toFixed(1)} ms (user ${x.userMsPer1kTokens.toFixed(1)}, sys ${x.sysMsPer1kTokens.toFixed(1)}; ${x.replies} replies, ${x.errors} errors)`;
    log(`   A ${fmt(row.a)}; B ${fmt(row.b)}; B / A ${row.ratio.toFixed(3)}`);
  }
  await children.stopAll();

  console.log(`\n| round | A: ${SIDES[0].label}${SIDES[0].maxTokens < TOKENS ? ` (${SIDES[0].maxTokens}-token replies)` : ''} | B: ${SIDES[1].label}${SIDES[1].maxTokens < TOKENS ? ` (${SIDES[1].maxTokens}-token replies)` : ''} | B / A |`);
  console.log('|---:|---:|---:|---:|');
  for (const r of rounds) console.log(`| ${r.round} | ${r.a.cpuMsPer1kTokens.toFixed(1)} | ${r.b.cpuMsPer1kTokens.toFixed(1)} | ${r.ratio.toFixed(3)} |`);
  const ma = median(rounds.map((r) => r.a.cpuMsPer1kTokens));
  const mb = median(rounds.map((r) => r.b.cpuMsPer1kTokens));
  console.log(`| median | ${ma.toFixed(1)} | ${mb.toFixed(1)} | ${median(rounds.map((r) => r.ratio)).toFixed(3)} |`);
  console.log(`\nCPU ms per 1,000 tokens received, ${C} clients per relay, ${TOKENS}-token upstream replies every ${INTERVAL} ms.`);
  if (opt.out) {
    writeFileSync(opt.out, JSON.stringify({
      date: new Date().toISOString(), config: { concurrency: C, durationS: DURATION, warmupS: WARMUP, rounds: ROUNDS, tokens: TOKENS, intervalMs: INTERVAL, ttftMs: TTFT },
      sides: SIDES.map(({ side, kind, label, root, flags, maxTokens }) => ({ side, kind, label, root: root ? relative(ROOT, root) || '.' : null, flags: flags ?? null, maxTokens })),
      rounds,
    }, null, 1) + '\n');
    log(`results: ${opt.out}`);
  }
}

main().catch(async (err) => {
  console.error(err && err.stack || err);
  await children.stopAll();
  process.exit(1);
});
