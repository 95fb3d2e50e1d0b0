#!/usr/bin/env node
// Runs the test suite — the native module's Rust tests (cargo test) and the
// node-tap tests — and prints one line per test file, the details of every
// failure, and a closing "N passed, N failed" line counting both.
// Arguments are passed to tap (e.g. a test file to run just that one); with
// arguments the Rust tests are skipped.
// The raw TAP stream is kept in .tap/last.tap.
import { spawn, spawnSync } from 'node:child_process';
import { createWriteStream, mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Parser } from 'tap-parser';

const root = fileURLToPath(new URL('..', import.meta.url));
const tap = fileURLToPath(new URL('../node_modules/.bin/tap', import.meta.url));
mkdirSync(new URL('../.tap', import.meta.url), { recursive: true });

const rust = { pass: 0, fail: 0 };
if (process.argv.length <= 2) {
  // Rust unit tests of native/ (MessagePack, vector index), release build.
  const cargo = spawnSync('cargo', ['test', '--release', '--offline', '--manifest-path', 'native/Cargo.toml'], { cwd: root, encoding: 'utf8' });
  if (cargo.error) {
    process.stdout.write(`FAIL native (cargo test): ${cargo.error.message}\n`);
    rust.fail++;
  } else {
    for (const m of cargo.stdout.matchAll(/^test (\S+) \.\.\. (ok|FAILED|ignored)$/gm)) {
      if (m[2] === 'ok') rust.pass++;
      else if (m[2] === 'FAILED') {
        rust.fail++;
        process.stdout.write(`FAIL native: ${m[1]}\n`);
      }
    }
    if (cargo.status !== 0 && rust.fail === 0) {
      rust.fail++;
      process.stdout.write(`FAIL native (cargo test exited ${cargo.status})\n${cargo.stderr.slice(-4000)}\n`);
    }
    process.stdout.write(`${rust.fail ? 'FAIL' : 'ok  '} native/ cargo test: ${rust.pass} passed, ${rust.fail} failed\n`);
    if (rust.fail) process.stdout.write(cargo.stdout.slice(-8000) + '\n');
  }
}

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
const failed = counts.fail + (code !== 0 && counts.fail === 0 ? 1 : 0) + rust.fail;
process.stdout.write(`\n${counts.pass + rust.pass} passed, ${failed} failed${counts.skip ? `, ${counts.skip} skipped` : ''}\n`);
process.exitCode = failed > 0 || code !== 0 ? 1 : 0;
