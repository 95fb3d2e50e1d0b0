#!/usr/bin/env node
// profile.mjs (`npm run profile`) — builds npcd, starts it under Clinic.js
// (`clinic flame` by default, or `doctor` / `bubbleprof`) with the mock
// model, drives it with scripts/load-mix.mjs (WebSocket turns from
// bench/ws-load.mjs plus HTTP JSON/SSE/OpenAI turns and /metrics scrapes) for
// a bounded time, stops it the way Ctrl-C would, and prints the path of the
// HTML report Clinic writes under .clinic/. See docs/profiling.md.
//
// Usage: npm run profile -- [--tool flame|doctor|bubbleprof] [--duration 15]
//          [--connections 200] [--port 18090] [--no-build] [-- extra npcd serve flags]
// Example output (last line): report: /work/main/.clinic/12345.clinic-flame.html
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const root = fileURLToPath(new URL('..', import.meta.url));
const TOOLS = ['flame', 'doctor', 'bubbleprof'];
const HELP = `Usage: npm run profile -- [options] [-- npcd serve flags]

Starts npcd (dist/cli.js serve --model mock) under Clinic.js, drives it with
scripts/load-mix.mjs for --duration seconds, stops it and prints the report.

  --tool T            flame (default; flamegraph of where CPU time goes),
                      doctor (event loop delay, CPU, memory, handles),
                      bubbleprof (where async time goes)
  --duration S        seconds of load (default 15; bubbleprof 5)
  --connections N     WebSocket connections (default 200; bubbleprof 20)
  --port P            port npcd listens on, on 127.0.0.1 (default 18090)
  --no-build          skip npm run build
  -h, --help

Default server flags: --model mock --mock-tokens 32 --mock-token-delay 5ms
--mock-ttft 20ms --log-level warn; flags after -- are added to them.
The report is .clinic/<pid>.clinic-<tool>.html (open it in a browser).
`;

/**
 * clinic doctor and bubbleprof preload their samplers through NODE_OPTIONS
 * (`-r sampler.js` / `-r logger.js`, found through NODE_PATH), so they also
 * run in every worker thread (npcd parses characters in worker threads), where
 * each opens the same data file again, truncating it: the report then fails
 * with "Decoded message is not valid". A bare `-r NAME` is looked up in the
 * node_modules folders above the working directory before NODE_PATH, so a
 * working directory whose node_modules holds a shim of that name that loads
 * the real sampler in the main thread only keeps the file whole.
 */
function mainThreadOnlyShims(tool) {
  const dir = mkdtempSync(join(tmpdir(), `npcd-clinic-${tool}-`));
  mkdirSync(join(dir, 'node_modules'));
  const injects = `${root}node_modules/@clinic/${tool}/injects/`;
  for (const name of tool === 'doctor' ? ['sampler.js'] : ['logger.js']) {
    writeFileSync(join(dir, 'node_modules', name), `if (require('node:worker_threads').isMainThread) require(${JSON.stringify(injects + name)});\n`);
  }
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * When Node's trace log grew past one file (node_trace.1.log, .2.log, …:
 * about half a million events each), clinic bubbleprof joins the files with a
 * stream pipeline that fails on Node 20 ("premature close") and leaves them
 * behind. Each file is one {"traceEvents":[…]} document: join their arrays
 * into the data folder's traceevent file, as clinic would have. Returns the
 * data folder, or undefined when there is nothing to join.
 */
function joinTraceLogs(dir) {
  const logs = readdirSync(dir).filter((f) => /^node_trace\.\d+\.log$/.test(f)).sort((a, b) => Number(a.split('.')[1]) - Number(b.split('.')[1]));
  if (!existsSync(`${root}.clinic`)) return undefined;
  const data = readdirSync(`${root}.clinic`)
    .filter((f) => f.endsWith('.clinic-bubbleprof') && statSync(`${root}.clinic/${f}`).mtimeMs >= startedAt)
    .sort()
    .pop();
  if (logs.length < 2 || !data) return undefined;
  process.stderr.write(`joining ${logs.length} trace logs (clinic could not) ...\n`);
  const out = openSync(`${root}.clinic/${data}/${data}-traceevent`, 'w');
  writeSync(out, '{"traceEvents":[');
  let first = true;
  for (const log of logs) {
    const text = readFileSync(join(dir, log));
    const start = text.indexOf('[') + 1;
    const end = text.lastIndexOf(']');
    const body = text.subarray(start, end);
    if (start <= 0 || end < start || body.toString('latin1').trim() === '') continue;
    if (!first) writeSync(out, ',');
    writeSync(out, body);
    first = false;
  }
  writeSync(out, ']}');
  closeSync(out);
  for (const log of logs) rmSync(join(dir, log));
  return `${root}.clinic/${data}`;
}

const startedAt = Date.now() - 1000;
const { values: o, positionals: extra } = parseArgs({
  allowPositionals: true,
  options: {
    tool: { type: 'string', default: 'flame' },
    duration: { type: 'string' },
    connections: { type: 'string' },
    port: { type: 'string', default: '18090' },
    'no-build': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (o.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
function fail(message) {
  process.stderr.write(`profile: ${message}\n`);
  process.exit(2);
}
if (!TOOLS.includes(o.tool)) fail(`--tool must be one of ${TOOLS.join(', ')}, not ${JSON.stringify(o.tool)}`);
// bubbleprof records every async operation (about 40 MB/s of data under this
// load, and its analysis holds it all), so its defaults are lighter.
const light = o.tool === 'bubbleprof';
const duration = Number(o.duration ?? (light ? 5 : 15));
if (!Number.isFinite(duration) || duration <= 0 || duration > 600) fail('--duration must be a number of seconds from 1 to 600');
const port = Number(o.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) fail('--port must be a port number (1 to 65535)');

const clinic = `${root}node_modules/.bin/clinic`;
if (!existsSync(clinic)) fail('clinic is not installed (it is a devDependency: npm install)');

if (!o['no-build']) {
  process.stderr.write('building (npm run build) ...\n');
  const b = spawnSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) fail('npm run build failed');
}

const serverArgs = ['dist/cli.js', 'serve', '--host', '127.0.0.1', '--port', String(port), '--model', 'mock', '--mock-tokens', '32', '--mock-token-delay', '5ms', '--mock-ttft', '20ms', '--log-level', 'warn', ...extra];
// NO_INSIGHT: clinic otherwise asks (on a terminal) whether it may send usage
// statistics, and without one silently exits; the update check needs the network.
const env = { ...process.env, NO_INSIGHT: '1', NO_UPDATE_NOTIFIER: '1' };
process.stderr.write(`starting: clinic ${o.tool} -- node ${serverArgs.join(' ')}\n`);
// Its own process group, so that stopping it can be what Ctrl-C does in a
// terminal: SIGINT to clinic and to the node process it runs (npcd shuts down
// gracefully, then clinic analyses what it collected). clinic doctor and
// bubbleprof relay a SIGINT to npcd themselves (a second one would make npcd
// exit at once), so they get theirs alone; clinic flame (0x) does not.
const cwd = o.tool === 'flame' ? root : mainThreadOnlyShims(o.tool);
const preload = o.tool === 'flame' ? [] : ['-r', `${root}scripts/lib/flush-before-exit.cjs`];
// Collect first, then analyse in a second run (--visualize-only): analysing
// in the same run fails now and then for bubbleprof ("premature close") on
// data that --visualize-only reads fine.
const child = spawn(clinic, [o.tool, '--collect-only', '--dest', `${root}.clinic`, '--', 'node', ...preload, ...serverArgs.map((a) => (a === 'dist/cli.js' ? `${root}dist/cli.js` : a))], { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
let output = '';
child.stdout.on('data', (c) => {
  output += c;
  process.stderr.write(c);
});
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal)));
const stop = () => {
  try {
    process.kill(o.tool === 'flame' ? -child.pid : child.pid, 'SIGINT');
  } catch {
    // already gone
  }
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const connections = o.connections ?? (light ? '20' : '200');
const load = spawn(process.execPath, ['scripts/load-mix.mjs', '--url', `http://127.0.0.1:${port}`, '--duration', String(duration), '--connections', connections, '--http-loops', light ? '1' : '2'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
let loadDone = false;
void exited.then((code) => {
  if (loadDone) return;
  load.kill();
  fail(`clinic exited (${code}) before the load finished; is port ${port} free?`);
});
const loadCode = await new Promise((resolve) => load.on('exit', (code) => resolve(code ?? 1)));
loadDone = true;
if (loadCode !== 0) process.stderr.write(`profile: the load generator exited with ${loadCode}\n`);
process.stderr.write('load done; stopping npcd and waiting for clinic to analyse ...\n');
stop();
const code = await exited;
let data = /Output file is (\S+)/.exec(output)?.[1];
if (code !== 0 && o.tool === 'bubbleprof') data = joinTraceLogs(cwd) ?? data;
if (!data) fail(`clinic ${o.tool} exited with ${code} and collected no data`);
const dataDir = isAbsolute(data) ? data : join(cwd, data);
process.stderr.write(`analysing ${dataDir} ...\n`);
const viz = spawnSync(clinic, [o.tool, '--visualize-only', dataDir, '--open=false'], { cwd: root, env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
process.stderr.write(viz.stdout ?? '');
const m = /file:\/\/(\S+\.html)/.exec(viz.stdout ?? '');
if (viz.status !== 0 || !m) fail(`clinic ${o.tool} --visualize-only exited with ${viz.status} and wrote no report`);
process.stdout.write(`report: ${decodeURIComponent(m[1])}\n`);
