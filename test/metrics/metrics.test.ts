import { spawnSync } from 'node:child_process';
import t from 'tap';
import { METRIC } from '../../src/metrics/metrics.js';
import { toolMissing } from '../helpers/prometheus.js';
import { postJson, testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

function parse(text: string): Sample[] {
  const out: Sample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    out.push({ name: m[1]!, labels, value: Number(m[3]) });
  }
  return out;
}

t.test('/metrics exposes every family with bounded labels', async (t) => {
  const { http, ws } = await testServer(t, { model: 'mock', mockTokens: 4 });
  // Traffic with many distinct ids and paths: none of them may become a label.
  for (let i = 0; i < 5; i++) {
    await postJson(`${http}/v1/chat`, { session_id: `unique-session-${i}`, character: '古风剑客', message: `hello ${i}` });
    await fetch(`${http}/v1/sessions/unique-session-${i}`);
    await fetch(`${http}/no/such/path/${i}`);
  }
  await postJson(`${http}/v1/chat`, { character: 'nobody', message: 'x' });
  const c = await TestClient.connect(ws);
  await c.hello({ session: 'ws-session-1' });
  await c.chat('m1', '古风剑客', 'hi');
  c.sendRaw(Buffer.from([0xc1]));
  await c.waitFor((f) => f.t === 'error');
  await c.close();

  const res = await fetch(`${http}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain/);
  const text = await res.text();
  const samples = parse(text);
  const names = new Set(samples.map((s) => s.name.replace(/_(bucket|sum|count)$/, '')));
  // A family without samples yet (no upstream configured here) is still declared.
  const declared = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1]));
  for (const name of Object.values(METRIC)) t.ok(names.has(name) || declared.has(name), `${name} is exported`);
  for (const name of ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds']) {
    t.ok(names.has(name), `default metric ${name}`);
  }

  const allowedRoutes = new Set(['/v1/chat', '/v1/characters', '/v1/characters/:id', '/v1/sessions/:id', '/v1/sessions/:id/messages', '/healthz', '/readyz', '/metrics', '/v1/ws', 'unmatched']);
  const leaked: string[] = [];
  for (const s of samples) {
    if (s.labels.route !== undefined && !allowedRoutes.has(s.labels.route)) leaked.push(`${s.name} route=${s.labels.route}`);
    for (const [k, v] of Object.entries(s.labels)) {
      if (/unique-session|ws-session|hello \d|nobody|no\/such/.test(v)) leaked.push(`${s.name} ${k}=${v}`);
    }
    if (s.labels.reason?.startsWith('ERR_') && !/^ERR_[A-Z_]+$/.test(s.labels.reason)) leaked.push(s.labels.reason);
  }
  t.same(leaked, [], 'labels hold route templates, methods, codes and enums only');

  const get = (name: string, labels: Record<string, string>) =>
    samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
  t.equal(get('http_requests_total', { route: '/v1/chat', method: 'post', status_code: '200' }), 5);
  t.equal(get('http_requests_total', { route: 'unmatched', status_code: '404' }), 5);
  t.equal(get('http_requests_failed_total', { route: '/v1/chat', reason: 'ERR_CHARACTER_NOT_FOUND' }), 1);
  t.equal(get('http_request_duration_seconds_count', { route: '/v1/chat' }), 6);
  t.equal(get('npcd_ws_frames_total', { direction: 'out', type: 'token' }), 4);
  t.equal(get('npcd_ws_frames_total', { direction: 'in', type: 'invalid' }), 1);
  t.equal(get('npcd_ws_frames_total', { direction: 'in', type: 'hello' }), 1);
  t.equal(get('npcd_tokens_streamed_total', { provider: 'mock' }), 24);
  t.equal(get('npcd_turns_total', { provider: 'mock', outcome: 'completed' }), 6);
  t.equal(get('npcd_turns_total', { provider: 'mock', outcome: 'failed' }), 0);
  t.equal(get('npcd_time_to_first_token_seconds_count', { provider: 'mock' }), 6);
  t.equal(get('npcd_ws_connections_opened_total', {}), 1);
  t.equal(get('npcd_ws_connections', {}), 0);
  t.equal(get('npcd_sessions', {}), 6, 'the request for an unknown character made no session');
  t.equal(get('npcd_resumes_total', { result: 'gap' }), 0, 'known label values start at 0');
  t.equal(get('npcd_characters', {}), 3);
});

t.test("the server's /metrics passes promtool check metrics, process metrics included", async (t) => {
  const missing = toolMissing('promtool');
  if (missing) return t.fail(missing);
  const { http } = await testServer(t, { model: 'mock', mockTokens: 4 });
  await postJson(`${http}/v1/chat`, { session_id: 'promtool', character: '古风剑客', message: 'hello' });
  const text = await (await fetch(`${http}/metrics`)).text();
  t.match(text, /^nodejs_active_handles\{/m, 'active handles by type are there');
  t.notMatch(text, /^nodejs_active_\w+_total/m, 'the gauges named like counters are not');
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  t.equal(r.status, 0, `exit 0\n${r.stdout}${r.stderr}`);
});
