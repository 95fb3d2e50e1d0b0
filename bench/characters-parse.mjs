#!/usr/bin/env node
// Cost of parsing character files in the worker pool vs inline on the event
// loop: per-file latency, throughput, and how long the event loop is held.
// Between files every mode yields to the event loop, so the delay columns
// show how long one parse holds it.
// Usage: node bench/characters-parse.mjs [--rounds N]   (after npm run build)
import { readFileSync, readdirSync } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { benchArgs } from './lib/args.mjs';
import { ParsePool } from '../dist/characters/parse-pool.js';
import { parseCharacterScript } from '../dist/characters/script.js';

const values = benchArgs(
  { rounds: { type: 'string', default: '300' } },
  `Usage: node bench/characters-parse.mjs [--rounds N]

  --rounds N   parses per file and mode (default 300)
  -h, --help

Parsing character files in the worker pool against inline on the event loop
(bench/README.md, "Parsing character files"). Needs npm run build.`,
);
const rounds = Number(values.rounds);
const dir = new URL('../characters/', import.meta.url);
const files = readdirSync(dir).filter((n) => n.endsWith('.yaml')).map((n) => ({ file: n, text: readFileSync(new URL(n, dir), 'utf8') }));
// A large file too: 2,000 example lines (about 100 KB).
const big = files[0].text + 'examples:\n' + Array.from({ length: 2000 }, (_, i) => `  - "line ${i} of the character speaking at some length about the road"`).join('\n') + '\n';
const bigText = big.replace(/^examples:\n(?:  - .*\n)+/m, '');
const sets = [['bundled characters (3 files, 2-4 KB)', files], ['one 100 KB file', [{ file: 'big.yaml', text: bigText }]]];

async function measure(name, work) {
  const h = monitorEventLoopDelay({ resolution: 1 });
  h.enable();
  const t0 = performance.now();
  await work();
  const ms = performance.now() - t0;
  h.disable();
  return { name, ms, maxLoopDelayMs: h.max / 1e6, p99LoopDelayMs: h.percentile(99) / 1e6 };
}

const pool = new ParsePool({ threads: 1 });
await pool.parseScript('warm.yaml', files[0].text); // worker started
console.log(`rounds: ${rounds}; Node ${process.version}`);
console.log('| files | mode | per file ms | files/s | event loop max delay ms | p99 delay ms |');
console.log('|---|---|---:|---:|---:|---:|');
for (const [label, set] of sets) {
  for (const [mode, run] of [
    ['inline', async () => { for (let r = 0; r < rounds; r++) for (const f of set) { parseCharacterScript(f.text, f.file); await new Promise(setImmediate); } }],
    ['pool, one at a time', async () => { for (let r = 0; r < rounds; r++) for (const f of set) await pool.parseScript(f.file, f.text); }],
    ['pool, 8 in flight', async () => { const all = []; for (let r = 0; r < rounds; r++) for (const f of set) all.push(() => pool.parseScript(f.file, f.text)); for (let i = 0; i < all.length; i += 8) await Promise.all(all.slice(i, i + 8).map((g) => g())); }],
  ]) {
    const m = await measure(mode, run);
    const n = rounds * set.length;
    console.log(`| ${label} | ${mode} | ${(m.ms / n).toFixed(3)} | ${Math.round((n / m.ms) * 1000)} | ${m.maxLoopDelayMs.toFixed(1)} | ${m.p99LoopDelayMs.toFixed(1)} |`);
  }
}
await pool.close();
