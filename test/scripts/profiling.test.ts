/**
 * The profiling scripts: scripts/flamegraph.mjs (perf script → folded stacks
 * → SVG), scripts/perf-flamegraph.sh (npcd under perf and load) and
 * scripts/profile.mjs (`npm run profile`, npcd under clinic flame).
 */
import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../helpers/fake-upstreams.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const FIXTURE = join(root, 'test/fixtures/perf/perf-script.txt');

function tmp(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-profiling-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function run(cmd: string, args: string[], timeout = 60_000) {
  return spawnSync(cmd, args, { cwd: root, encoding: 'utf8', timeout, maxBuffer: 64 * 1024 * 1024 });
}

/** `data-n` names of the frames of an SVG written by flamegraph.mjs. */
function frames(svg: string): string[] {
  return [...svg.matchAll(/<g class="f"[^>]* data-n="([^"]*)"/g)].map((m) => m[1]!.replace(/&amp;/g, '&').replace(/&lt;/g, '<').replace(/&gt;/g, '>'));
}

t.test('flamegraph.mjs folds perf script stacks and draws them', async (t) => {
  const dir = tmp(t);
  const folded = join(dir, 'out.folded');
  const r = run(process.execPath, ['scripts/flamegraph.mjs', '--input', FIXTURE, '--folded', folded, '--title', 'fixture']);
  t.equal(r.status, 0, r.stderr);
  t.same(readFileSync(folded, 'utf8').trim().split('\n').sort(), [
    'libuv-worker;uv__worker;[unknown] (npcd-native.linux-x64-gnu.node) 1',
    'node;__send;__x64_sys_sendto_[k];tcp_sendmsg_[k] 1',
    'node;start_thread;node::(anonymous namespace)::PlatformWorkerThread 1',
    'node;uv_run;uv__run_timers;node::Environment::RunTimers;v8::internal::(anonymous namespace)::Invoke;Builtins_RunMicrotasks_[i];JS:*relayReply /work/main/dist/providers/relay.js:4:33_[j];JS:^generate /work/main/dist/providers/mock.js:19:20_[j] 2',
  ], 'root first, thread name at the root, offsets and argument lists dropped, kinds marked, the idle epoll_wait sample left out');

  const svg = r.stdout;
  t.match(svg, /^<\?xml/);
  t.match(svg, /<svg [^>]*width="1200"/);
  const names = frames(svg);
  t.ok(names.includes('all') && names.includes('node') && names.includes('libuv-worker'), 'the root and one frame per thread name');
  t.ok(names.includes('JS:^generate /work/main/dist/providers/mock.js:19:20'), 'JS frames, named with their file');
  t.ok(names.includes('uv_run') && names.includes('tcp_sendmsg'), 'native and kernel frames');
  t.match(svg, /<title>all \(5 samples, 100\.00%\)<\/title>/);
  t.match(svg, /<title>JS:\*relayReply [^<]* \(2 samples, 40\.00%\)<\/title>/);
  // Colours: JS green, kernel orange, native red-yellow.
  const fill = (name: string) => new RegExp(`data-n="${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}"><title>[^<]*</title><rect [^>]*fill="rgb\\((\\d+),(\\d+),(\\d+)\\)"`).exec(svg)!.slice(1).map(Number);
  const [jr, jg] = fill('JS:^generate /work/main/dist/providers/mock.js:19:20');
  t.ok(jg! > jr!, 'JS frames are green');
  const [nr, , nb] = fill('uv_run');
  t.ok(nr! > 200 && nb! < 80, 'native frames are red/yellow');

  const again = run(process.execPath, ['scripts/flamegraph.mjs', '--from-folded', folded]);
  t.equal(again.status, 0);
  t.same(frames(again.stdout).sort(), names.sort(), 'the folded file draws the same graph');
  const empty = spawnSync(process.execPath, ['scripts/flamegraph.mjs'], { cwd: root, input: '', encoding: 'utf8' });
  t.equal(empty.status, 2);
  t.match(empty.stderr, /no stacks in the input/);
});

function perfWorks(): string | undefined {
  const which = spawnSync('perf', ['--version'], { encoding: 'utf8' });
  if (which.error) return 'perf is not installed';
  const probe = spawnSync('perf', ['record', '-F', '99', '-g', '-o', '/dev/null', '--', 'true'], { encoding: 'utf8' });
  if (probe.status !== 0) return `perf record is not permitted here: ${probe.stderr.trim().split('\n')[0]}`;
  if (!existsSync(join(root, 'dist/cli.js'))) return 'npcd is not built (npm run build)';
  return undefined;
}

const perfMissing = perfWorks();
t.test('perf-flamegraph.sh draws npcd under load with JS and native frames', { skip: perfMissing ?? false }, async (t) => {
  const out = tmp(t);
  const r = run('bash', ['scripts/perf-flamegraph.sh', '--duration', '3', '--connections', '20', '--port', String(await freePort()), '--out', out, '--no-build'], 90_000);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, new RegExp(`flamegraph: ${out}/npcd-flamegraph.svg`));
  const names = frames(readFileSync(join(out, 'npcd-flamegraph.svg'), 'utf8'));
  const js = names.filter((n) => /^JS:.*\/dist\/.*\.js:\d+:\d+$/.test(n));
  t.ok(js.length >= 3, `JS frames of npcd's own code (${js.slice(0, 5).join(' | ')})`);
  t.ok(names.some((n) => /^(uv_|uv__)/.test(n)), 'libuv frames');
  t.ok(names.some((n) => /^(node::|v8::)/.test(n)), 'node and V8 C++ frames');
  t.ok(names.some((n) => /^(__libc|start_thread|__send|__GI_|_int_malloc|malloc|epoll)/.test(n)), 'libc frames');
  t.match(readFileSync(join(out, 'load.txt'), 'utf8'), /turns: +\d+ in/, 'the load ran');
});

const clinicMissing = !existsSync(join(root, 'node_modules/.bin/clinic')) ? 'clinic is not installed' : !existsSync(join(root, 'dist/cli.js')) ? 'npcd is not built (npm run build)' : false;
t.test('npm run profile: npcd under clinic flame writes an HTML flamegraph', { skip: clinicMissing }, async (t) => {
  const bad = run(process.execPath, ['scripts/profile.mjs', '--tool', 'nope']);
  t.equal(bad.status, 2);
  t.match(bad.stderr, /--tool must be one of flame, doctor, bubbleprof/);
  const r = run(process.execPath, ['scripts/profile.mjs', '--duration', '2', '--connections', '20', '--port', String(await freePort()), '--no-build'], 120_000);
  t.equal(r.status, 0, r.stderr.slice(-3000));
  const report = /^report: (.*\.clinic-flame\.html)$/m.exec(r.stdout)?.[1];
  t.ok(report && existsSync(report), `the report exists (${report})`);
  if (report) {
    t.teardown(() => rmSync(report.replace(/\.html$/, ''), { recursive: true, force: true }));
    t.teardown(() => rmSync(report, { force: true }));
    t.ok(readFileSync(report, 'utf8').length > 100_000, 'and holds the flamegraph');
  }
});
