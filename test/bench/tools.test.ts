import t from 'tap';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
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

t.test('side-by-side loads two floor relays at once (one reading every event) and reports both, without errors', async (t) => {
  const out = join(mkdtempSync(join(tmpdir(), 'npcd-sbs-')), 'result.json');
  const child = spawn(process.execPath, ['bench/providers/side-by-side.mjs', '--a', 'floor', '--b', 'floor:read', '--b-max-tokens', '4',
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

/** Starts a bench script that prints "listening on PORT"; the child is killed at the end of the test. */
async function listening(t: Test, args: string[]): Promise<number> {
  const child = spawn(process.execPath, [...args, '--port', '0'], { cwd: root });
  t.teardown(() => child.kill());
  let out = '';
  return new Promise((resolve, reject) => {
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (\d+)/.exec(out);
      if (m) resolve(Number(m[1]));
    });
    child.on('exit', (code) => reject(new Error(`${args[0]} exited with ${code}`)));
  });
}

t.test('the reading floor relay sends every event on as its own OpenAI chunk', async (t) => {
  const up = await listening(t, ['bench/providers/upstream.mjs', '--tokens', '5', '--interval', '1', '--ttft', '1']);
  const port = await listening(t, ['bench/providers/floor-relay.mjs', '--read', '--upstream', `http://127.0.0.1:${up}/v1`]);
  type Chunk = { id: string; choices: Array<{ delta: { content?: string }; finish_reason: string | null }>; usage?: { completion_tokens: number } };
  const stream = async (port: number): Promise<Chunk[]> => {
    const res = await fetch(`http://127.0.0.1:${port}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'bench-model', stream: true, stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'hi' }] }),
    });
    t.equal(res.status, 200);
    const events = (await res.text()).split('\n\n').filter(Boolean);
    t.equal(events.at(-1), 'data: [DONE]');
    return events.slice(0, -1).map((e) => {
      t.match(e, /^data: /);
      return JSON.parse(e.slice(6)) as Chunk;
    });
  };
  const text = (chunks: Chunk[]) => chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
  const direct = await stream(up);
  const chunks = await stream(port);
  t.ok(chunks.every((c) => /^chatcmpl-floor-\d+$/.test(c.id)), 'the relay\'s own id on every chunk');
  t.equal(text(chunks), text(direct), 'the upstream\'s text');
  t.equal(chunks.length, direct.length, 'an event for each of the upstream\'s');
  t.same(chunks.map((c) => c.choices[0]?.finish_reason).filter(Boolean), ['stop']);
  t.equal(chunks.at(-1)!.usage?.completion_tokens, 5);
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
