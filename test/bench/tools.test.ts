import t from 'tap';
import { spawnSync } from 'node:child_process';
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
  const { spawn } = await import('node:child_process');
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
