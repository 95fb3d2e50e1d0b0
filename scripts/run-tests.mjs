#!/usr/bin/env node
// Runs the test suite with node-tap and prints one line per test file, the
// details of every failure, and a closing "N passed, N failed" line.
// Arguments are passed to tap (e.g. a test file to run just that one).
// The raw TAP stream is kept in .tap/last.tap.
import { spawn } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser } from 'tap-parser';

const root = fileURLToPath(new URL('..', import.meta.url));
const tap = fileURLToPath(new URL('../node_modules/.bin/tap', import.meta.url));
mkdirSync(new URL('../.tap', import.meta.url), { recursive: true });

const child = spawn(tap, ['-R', 'tap', ...process.argv.slice(2)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
const files = new Parser();
child.stdout.pipe(files);
child.stdout.pipe(createWriteStream(new URL('../.tap/last.tap', import.meta.url)));

files.on('assert', (r) => {
  const time = r.time ? ` (${(r.time / 1000).toFixed(1)} s)` : '';
  process.stdout.write(`${r.ok ? 'ok  ' : 'FAIL'} ${r.name}${time}\n`);
});
// Counts leaf assertions: an assert line that closes a subtest is not one.
const counts = { pass: 0, fail: 0, skip: 0 };
const failures = [];
function watch(parser) {
  let closesSubtest = false;
  parser.on('child', (c) => {
    closesSubtest = true;
    watch(c);
  });
  parser.on('assert', (r) => {
    const leaf = !closesSubtest;
    closesSubtest = false;
    if (r.skip || r.todo) counts.skip++;
    else if (!r.ok) {
      // A failed subtest counts only when none of its assertions failed
      // (a timeout or a thrown error); otherwise its assertions were counted.
      const name = r.fullname || r.name;
      if (leaf || !failures.some((f) => (f.fullname || f.name).startsWith(name))) {
        counts.fail++;
        failures.push(r);
      }
    } else if (leaf) counts.pass++;
  });
}
watch(files);

const [code] = await Promise.all([
  new Promise((resolve) => child.on('close', resolve)),
  new Promise((resolve) => files.on('complete', resolve)),
]);
for (const f of failures) {
  process.stdout.write(`\nnot ok - ${f.fullname || f.name}\n`);
  if (f.diag) process.stdout.write(JSON.stringify(f.diag, null, 2).split('\n').map((l) => '    ' + l).join('\n') + '\n');
}
const failed = counts.fail + (code !== 0 && counts.fail === 0 ? 1 : 0);
process.stdout.write(`\n${counts.pass} passed, ${failed} failed${counts.skip ? `, ${counts.skip} skipped` : ''}\n`);
process.exitCode = failed > 0 || code !== 0 ? 1 : 0;
