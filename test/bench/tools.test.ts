import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testServer } from '../helpers/server.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

t.test('the load generator\'s frame parser and scanner pass their self-test', async (t) => {
  const r = spawnSync(process.execPath, ['bench/lib/selftest.mjs'], { cwd: root, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /selftest passed/);
});

t.test('ws-load drives a real server for a short run without errors or anomalies', async (t) => {
  const { server } = await testServer(t, { model: 'mock', mockTokens: 4 });
  const child = spawn(process.execPath, ['bench/ws-load.mjs', '--url', `ws://127.0.0.1:${server.port}/v1/ws`, '--connections', '20', '--duration', '1', '--warmup', '0', '--json'], { cwd: root });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0);
  const result = JSON.parse(out) as Record<string, any>;
  t.ok(result.turns > 0, `${result.turns} turns`);
  t.equal(result.errorCount, 0, 'no error frames');
  t.same(result.errors, {});
  t.same(result.anomalies, {}, 'no protocol anomalies');
  t.equal(result.connectionFailures, 0, 'no connection failures');
});

t.test('side-by-side loads two floor relays at once and reports both, without errors', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'npcd-sbs-')), 'result.json');
  const child = spawn(process.execPath, ['bench/providers/side-by-side.mjs', '--a', 'floor', '--b', 'floor', '--b-max-tokens', '4',
    '--rounds', '2', '--duration', '1', '--warmup', '0', '--concurrency', '4', '--tokens', '8', '--interval', '5', '--ttft', '5', '--out', out], { cwd: root });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const code = await new Promise((r) => child.on('close', r));
  t.equal(code, 0, stderr);
  t.match(stdout, /\| median \|/);
  const result = JSON.parse(readFileSync(out, 'utf8')) as { rounds: Array<Record<'a' | 'b', { replies: number; errors: number; tokens: number; cpuMsPer1kTokens: number }>> };
  t.equal(result.rounds.length, 2);
  for (const r of result.rounds) {
    for (const side of ['a', 'b'] as const) {
      // The client checks each reply's text against the upstream's tokens (4 for B: max_tokens cut it).
      t.ok(r[side].replies > 0, `${side}: ${r[side].replies} replies`);
      t.equal(r[side].errors, 0, `${side}: no reply failed its check`);
      t.ok(r[side].tokens > 0 && Number.isFinite(r[side].cpuMsPer1kTokens), `${side}: CPU per token measured`);
    }
  }
});

t.test('the decode bench decodes the mock upstream\'s reply with the built adapter and reports per chunk', async (t) => {
  const r = spawnSync(process.execPath, ['bench/providers/decode.mjs', '--replies', '20', '--rounds', '2', '--tokens', '8', '--json'], { cwd: root, encoding: 'utf8' });
  t.equal(r.status, 0, r.stderr);
  const result = JSON.parse(r.stdout) as { chunks: number; results: Array<{ nsPerChunk: number; rounds: number[] }> };
  // The role chunk, 8 tokens, and one event holding the finish, the usage chunk and [DONE].
  t.equal(result.chunks, 10);
  t.equal(result.results.length, 1);
  t.equal(result.results[0]!.rounds.length, 2);
  t.ok(result.results[0]!.nsPerChunk > 0);
});
