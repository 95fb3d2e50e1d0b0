#!/usr/bin/env node
// Render ws-load / idle-sessions JSON results as markdown tables.
//   node bench/lib/report.mjs RESULT.json...   (files that are missing or empty are shown as failed)
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

const load = [];
const idle = [];
for (const f of process.argv.slice(2)) {
  let r = null;
  try {
    const lines = readFileSync(f, 'utf8').trim().split('\n');
    r = JSON.parse(lines[lines.length - 1]);
  } catch { /* missing or not JSON */ }
  if (basename(f).startsWith('idle')) idle.push({ f, r }); else load.push({ f, r });
}

const fix = (x, d = 2) => (x === undefined || x === null || Number.isNaN(x) ? '-' : Number(x).toFixed(d));
const counts = (o) => { const e = Object.entries(o || {}); return e.length ? e.map(([k, v]) => `${k}:${v}`).join(' ') : '0'; };

if (load.length) {
  console.log('| target | mode | conns | turns/s | TTFT p50 ms | TTFT p99 ms | turn p50 ms | turn p99 ms | errors | conn failures | anomalies | ramp s | gen CPU % | server CPU % |');
  console.log('|---|---|---:|---:|---:|---:|---:|---:|---|---:|---|---:|---:|---:|');
  for (const { f, r } of load) {
    if (!r || !r.config) { console.log(`| ${basename(f, '.json')} | run failed | | | | | | | | | | | | |`); continue; }
    const c = r.config;
    const gen = (r.generator || []).map((g) => fix(g.cpuPct, 0)).join('+') || '-';
    console.log(`| ${c.label || '-'} | ${c.mode} | ${c.connections} | ${r.ok === false ? 'no data' : fix(r.turnsPerSec, 0)} | ` +
      `${fix(r.ttftMs?.p50)} | ${fix(r.ttftMs?.p99)} | ${fix(r.turnMs?.p50)} | ${fix(r.turnMs?.p99)} | ` +
      `${counts(r.errors)} | ${r.ramp?.failed ?? '-'} | ${counts(r.anomalies)} | ${fix((r.ramp?.ms ?? NaN) / 1000)} | ${gen} | ${fix(r.server?.cpuPct, 0)} |`);
  }
}
if (idle.length) {
  if (load.length) console.log('');
  console.log('| target | sessions created | kept open | elapsed s | RSS before MiB | RSS after MiB | delta MiB | KiB/session | failures |');
  console.log('|---|---:|---|---:|---:|---:|---:|---:|---|');
  for (const { f, r } of idle) {
    if (!r || r.created === undefined) { console.log(`| ${basename(f, '.json')} | run failed | | | | | | | |`); continue; }
    const mib = (kb) => (kb === null || kb === undefined ? '-' : (kb / 1024).toFixed(1));
    console.log(`| ${r.url} | ${r.created}/${r.requested} | ${r.keepOpen ? 'yes' : 'no'} | ${fix(r.elapsedS)} | ${mib(r.rssBeforeKb)} | ${mib(r.rssAfterKb)} | ` +
      `${mib(r.rssDeltaKb)} | ${r.bytesPerSession === null ? '-' : (r.bytesPerSession / 1024).toFixed(2)} | ${counts(r.failures)} |`);
  }
}
