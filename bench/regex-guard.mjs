#!/usr/bin/env node
// What testing character regexes in the guard's helper thread costs against
// testing them inline on the event loop: per scanned text, for the bundled
// kind of patterns (a few on_regex triggers) and for a lorebook with many
// regex keys, over a short chat message and a long one.
// Usage: node bench/regex-guard.mjs [--calls N]   (after npm run build)
import { benchArgs } from './lib/args.mjs';
import { RegexGuard } from '../dist/text/regex-guard.js';

const values = benchArgs(
  { calls: { type: 'string', default: '5000' } },
  `Usage: node bench/regex-guard.mjs [--calls N]

  --calls N   texts tested per case and mode (default 5000)
  -h, --help

Character regexes tested in the regex guard's helper thread against inline
(bench/README.md, "Character regexes under a deadline"). Needs npm run build.`,
);
const calls = Number(values.calls);
const triggers = ['^(再见|告辞)', '\\b(bye|farewell)\\b', '^status\\b', '(?:sword|blade)s?'].map((source) => ({ source, flags: 'iu' }));
const keys = Array.from({ length: 64 }, (_, i) => ({ source: `\\b(?:dragon|wyrm)${i}s?\\b`, flags: 'i' }));
const short = 'Good evening! Tell me about the harbour and the old lighthouse.';
const long = `${short} `.repeat(60).slice(0, 4000);
const cases = [
  ['4 triggers (flags iu)', triggers, short],
  ['4 triggers (flags iu)', triggers, long],
  ['64 lorebook keys (flag i)', keys, short],
  ['64 lorebook keys (flag i)', keys, long],
];

const guard = new RegexGuard({ timeoutMs: 1000 });
const rows = [];
for (const [name, patterns, text] of cases) {
  const compiled = patterns.map((p) => new RegExp(p.source, p.flags));
  let sink = 0;
  const inline = () => compiled.map((re) => re.test(text));
  const guarded = () => guard.test(patterns, text);
  for (const run of [inline, guarded]) for (let i = 0; i < Math.min(500, calls); i++) sink += run().filter(Boolean).length;
  const time = (run) => {
    const t0 = performance.now();
    for (let i = 0; i < calls; i++) sink += run().filter(Boolean).length;
    return ((performance.now() - t0) * 1000) / calls;
  };
  const inlineUs = time(inline);
  const guardUs = time(guarded);
  rows.push({ patterns: name, text: `${text.length} chars`, inlineUs: inlineUs.toFixed(1), guardUs: guardUs.toFixed(1), addedUs: (guardUs - inlineUs).toFixed(1), sink });
}
guard.close();
console.log('| patterns | text | inline µs/text | guard µs/text | added µs |');
console.log('|---|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.patterns} | ${r.text} | ${r.inlineUs} | ${r.guardUs} | ${r.addedUs} |`);
