import t from 'tap';
import { SERVE_FLAGS } from '../../src/config/serve.js';
import { runCli, startCli } from '../helpers/child.js';

t.test('npcd serve --help documents every flag and its environment variable', async (t) => {
  const { code, stdout } = await runCli(['serve', '--help']);
  t.equal(code, 0);
  for (const spec of Object.values(SERVE_FLAGS)) {
    t.match(stdout, `--${spec.flag}`, `--${spec.flag} is documented`);
    if (spec.env) t.match(stdout, spec.env, `${spec.env} is documented`);
  }
  t.match(stdout, /--model/);
  t.match(stdout, /--port/);
  t.match(stdout, /--characters/);
});

t.test('npcd help and version', async (t) => {
  t.match((await runCli(['help'])).stdout, /serve/);
  t.match((await runCli(['--version'])).stdout, /^npcd \d+\.\d+\.\d+/);
  const bad = await runCli(['frobnicate']);
  t.equal(bad.code, 2);
  t.match(bad.stderr, /unknown command/);
});

t.test('bad options fail at start with a message naming the option', async (t) => {
  const cases: [string[], Record<string, string>, RegExp][] = [
    [['serve', '--port', 'eighty'], {}, /--port must be an integer/],
    [['serve', '--port', '70000'], {}, /--port must be <= 65535/],
    [['serve', '--nope'], {}, /--nope is not a known option/],
    [['serve', '--model', 'gpt-17'], {}, /--model "gpt-17": unknown provider "gpt-17"/],
    [['serve', '--model', 'openai:m?ttft=soon'], {}, /--model "openai:m\?ttft=soon" option ttft must be a duration/],
    [['serve'], { NPCD_MAX_FRAME_BYTES: 'huge' }, /NPCD_MAX_FRAME_BYTES must be a size/],
    [['serve', '--idle-timeout', '1s', '--heartbeat-interval', '2s'], {}, /--idle-timeout .* must be longer than --heartbeat-interval/],
    [['serve', '--characters', '/nonexistent/dir'], {}, /--characters \/nonexistent\/dir/],
    [['serve', '--config', '/nonexistent.yaml'], {}, /cannot read config file/],
  ];
  for (const [args, env, message] of cases) {
    const { code, stderr } = await runCli(args, env);
    t.equal(code, 2, `${args.join(' ')} exits 2`);
    t.match(stderr, /ERR_CONFIG_INVALID/);
    t.match(stderr, message);
  }
});

t.test('environment variables and a config file set options; flags win', async (t) => {
  const { writeFileSync, mkdtempSync } = await import('node:fs');
  const { join } = await import('node:path');
  const { tmpdir } = await import('node:os');
  const dir = mkdtempSync(join(tmpdir(), 'npcd-'));
  const file = join(dir, 'npcd.yaml');
  writeFileSync(file, 'model: mock\nmock-tokens: 7\nheartbeat-interval: 9s\n');
  const p = await startCli(t, ['--config', file, '--mock-tokens', '3'], { NPCD_HEARTBEAT_INTERVAL: '11s' });
  const res = await fetch(`http://127.0.0.1:${p.port}/v1/chat`, { method: 'POST', body: JSON.stringify({ character: 'gufeng-jianke', message: 'hi' }) });
  const body = (await res.json()) as { usage: { completion_tokens: number } };
  t.equal(body.usage.completion_tokens, 3, 'flag beats the file');
  const ready = (await (await fetch(`http://127.0.0.1:${p.port}/readyz`)).json()) as { provider: string };
  t.equal(ready.provider, 'mock', 'the file sets the model');
  const { TestClient } = await import('../helpers/ws-client.js');
  const c = await TestClient.connect(`ws://127.0.0.1:${p.port}/v1/ws`);
  t.equal((await c.hello()).heartbeat_ms, 11000, 'the environment beats the file');
  await c.close();
  p.child.kill('SIGTERM');
  await p.exited;
});
