/**
 * A real Prometheus (Debian's /usr/bin/prometheus) scrapes a real npcd
 * (dist/cli.js serve --model mock: run `npm run build` first) every second
 * with deploy/prometheus/npcd.rules.yml loaded and evaluated every second,
 * while the test drives a few seconds of load: WebSocket chat turns, HTTP
 * chats, character listings and 404s. Then the recording rules answer with
 * plausible values, every rule evaluates without error, no alert fires, and
 * every query of the Grafana dashboard runs. As root with bpftrace, the eBPF
 * sidecar watches npcd's port and is scraped too (its part is skipped
 * otherwise; CI runs it).
 *
 * Fails, not skips, without prometheus: CI installs it (.ci/run).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { startCli } from '../helpers/child.js';
import { DASHBOARD, type InstantSample, PrometheusProcess, RULES, toolMissing } from '../helpers/prometheus.js';
import { postJson } from '../helpers/server.js';
import { freeServicePorts, liveSkipReason, SidecarProcess, waitForValue } from '../helpers/sidecar-process.js';
import { TestClient } from '../helpers/ws-client.js';

const CHARACTER = 'gufeng-jianke';
const MOCK_TOKENS = 16;
/** How long the load runs: several 1 s scrapes, so every rate sees increases. */
const LOAD_MS = 4_000;
const WS_CLIENTS = 3;

interface LoadCounts {
  wsTurns: number;
  httpChats: number;
  listings: number;
  notFound: number;
}

/** WebSocket chat turns from a few clients, and HTTP requests (chats, listings, 404s), for `ms`. */
async function driveLoad(http: string, ws: string, ms: number): Promise<LoadCounts> {
  const counts: LoadCounts = { wsTurns: 0, httpChats: 0, listings: 0, notFound: 0 };
  const until = Date.now() + ms;
  const clients = await Promise.all(Array.from({ length: WS_CLIENTS }, () => TestClient.connect(ws)));
  try {
    await Promise.all(clients.map((c, i) => c.hello({ session: `prometheus-test-${i}` })));
    const wsLoops = clients.map(async (c, i) => {
      for (let n = 0; Date.now() < until; n++) {
        const done = await c.chat(`m${i}-${n}`, CHARACTER, `hello ${n}`);
        if (done.t !== 'done') throw new Error(`turn m${i}-${n} ended with ${JSON.stringify(done)}`);
        counts.wsTurns++;
        await sleep(100);
      }
    });
    const httpLoop = (async () => {
      for (let n = 0; Date.now() < until; n++) {
        const list = await fetch(`${http}/v1/characters`);
        await list.arrayBuffer();
        if (list.status !== 200) throw new Error(`GET /v1/characters: ${list.status}`);
        counts.listings++;
        const missing = await fetch(`${http}/no/such/path/${n}`);
        await missing.arrayBuffer();
        if (missing.status !== 404) throw new Error(`GET /no/such/path: ${missing.status}, not 404`);
        counts.notFound++;
        if (n % 3 === 0) {
          const chat = await postJson(`${http}/v1/chat`, { session_id: `prometheus-http-${n}`, character: CHARACTER, message: 'hi' });
          if (chat.status !== 200) throw new Error(`POST /v1/chat: ${chat.status}`);
          counts.httpChats++;
        }
        await sleep(100);
      }
    })();
    await Promise.all([...wsLoops, httpLoop]);
  } finally {
    await Promise.all(clients.map((c) => c.close()));
  }
  return counts;
}

const one = (r: readonly InstantSample[]): number | undefined => (r.length === 1 ? r[0]!.value : undefined);

const missing = toolMissing('prometheus');
if (missing) {
  t.fail(missing);
} else {
  t.test('Prometheus scrapes npcd under load and answers the SLO queries', async (t) => {
    const sidecarSkip = liveSkipReason();
    const [npcdPort, promPort] = (await freeServicePorts(2)) as [number, number];
    // The sidecar attaches its bpftrace programs meanwhile (a few seconds).
    const [npcd, sidecar] = await Promise.all([
      startCli(t, ['--port', String(npcdPort), '--model', 'mock', '--mock-tokens', String(MOCK_TOKENS)]),
      sidecarSkip ? undefined : SidecarProcess.start(t, ['--ports', String(npcdPort)]),
    ]);
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      '  evaluation_interval: 1s',
      'rule_files:',
      `  - ${JSON.stringify(RULES)}`,
      'scrape_configs:',
      '  - job_name: npcd',
      '    static_configs:',
      `      - targets: ['127.0.0.1:${npcd.port}']`,
      ...(sidecar ? ['  - job_name: npcd-sidecar', '    static_configs:', `      - targets: ['127.0.0.1:${sidecar.port}']`] : []),
      '',
    ].join('\n');
    const prom = await PrometheusProcess.start(t, { port: promPort, config });
    await waitForValue(() => prom.query('up{job="npcd"}'), (r) => one(r) === 1, 15_000, 'Prometheus scraped npcd');

    const http = `http://127.0.0.1:${npcd.port}`;
    const counts = await driveLoad(http, `ws://127.0.0.1:${npcd.port}/v1/ws`, LOAD_MS);
    const turns = counts.wsTurns + counts.httpChats;
    t.comment(`load: ${counts.wsTurns} WebSocket turns, ${counts.httpChats} HTTP chats, ${counts.listings} listings, ${counts.notFound} 404s`);
    t.ok(counts.wsTurns >= 10 && counts.notFound >= 10, 'the load made turns and 404s');

    // Prometheus has scraped everything the load did: its counters equal the test's.
    await waitForValue(
      async () => ({
        completed: one(await prom.query('sum(npcd_turns_total{job="npcd", outcome="completed"})')),
        notFound: one(await prom.query('sum(http_requests_total{job="npcd", route="unmatched", status_code="404"})')),
        tokens: one(await prom.query('sum(npcd_tokens_streamed_total{job="npcd"})')),
      }),
      (v) => v.completed === turns && v.notFound === counts.notFound && v.tokens === turns * MOCK_TOKENS,
      10_000,
      `Prometheus holds ${turns} completed turns, ${counts.notFound} 404s and ${turns * MOCK_TOKENS} tokens`,
    );
    t.pass(`Prometheus counted ${turns} turns, ${counts.notFound} 404s, ${turns * MOCK_TOKENS} tokens, as the test did`);

    // The recording rules, evaluated every second over the load.
    const q = async (expr: string) => one(await prom.query(expr));
    const v = await waitForValue(
      async () => ({
        qps: await q('job:http_requests:rate1m{job="npcd"}'),
        qps404: await q('job_route:http_requests:rate1m{job="npcd", route="unmatched"}'),
        turnRate: await q('job:npcd_turns:rate1m{job="npcd"}'),
        tokenRate: await q('job:npcd_tokens_streamed:rate1m{job="npcd"}'),
        httpP99: await q('job_route:http_request_duration_seconds:p99_rate5m{job="npcd", route="/v1/characters"}'),
        turnP99: await q('job:npcd_turn_duration_seconds:p99_rate5m{job="npcd"}'),
        ttftP50: await q('job:npcd_time_to_first_token_seconds:p50_rate5m{job="npcd"}'),
        ttftP99: await q('job:npcd_time_to_first_token_seconds:p99_rate5m{job="npcd"}'),
        httpSuccess: await q('job:npcd_slo_http_success:ratio_rate5m{job="npcd"}'),
        turnSuccess: await q('job:npcd_slo_turn_success:ratio_rate5m{job="npcd"}'),
        ttftFast: await q('job:npcd_slo_ttft_fast:ratio_rate5m{job="npcd"}'),
        httpBudget: await q('job:npcd_slo_http_error_budget:remaining_ratio30d{job="npcd"}'),
        turnBurn1h: await q('job:npcd_slo_turn_errors_per_turn:ratio_rate1h{job="npcd"}'),
      }),
      (v) => Object.values(v).every((x) => x !== undefined && Number.isFinite(x)),
      10_000,
      'every recording rule has a finite value',
    );
    t.comment(`recorded: ${JSON.stringify(v)}`);
    t.ok(v.qps! > 0, `HTTP QPS > 0 (${v.qps})`);
    t.ok(v.qps404! > 0 && v.qps404! < v.qps!, `404s per second > 0 and part of the total (${v.qps404})`);
    t.ok(v.turnRate! > 0, `turns per second > 0 (${v.turnRate})`);
    t.ok(v.tokenRate! > v.turnRate!, `tokens per second > turns per second (${v.tokenRate})`);
    t.ok(v.httpP99! > 0 && v.httpP99! < 1, `HTTP p99 of /v1/characters in (0, 1 s) (${v.httpP99})`);
    t.ok(v.turnP99! > 0 && v.turnP99! < 1, `turn duration p99 in (0, 1 s) (${v.turnP99})`);
    t.ok(v.ttftP50! > 0 && v.ttftP50! <= v.ttftP99!, `TTFT p50 > 0 and <= p99 (${v.ttftP50})`);
    t.ok(v.ttftP99! > 0 && v.ttftP99! < 1, `TTFT p99 in (0, 1 s) with the mock model (${v.ttftP99})`);
    t.ok(v.httpSuccess! >= 0 && v.httpSuccess! <= 1, `HTTP success ratio in [0, 1] (${v.httpSuccess})`);
    t.equal(v.httpSuccess, 1, 'the 404s are not failures: HTTP success ratio 1');
    t.equal(v.turnSuccess, 1, 'the mock never fails a turn: turn success ratio 1');
    t.equal(v.ttftFast, 1, 'every first token within 1 s');
    t.equal(v.httpBudget, 1, 'the HTTP error budget is untouched');
    t.equal(v.turnBurn1h, 0, 'turn error ratio over 1h is 0');

    const rules = await prom.rules();
    t.ok(rules.length >= 60, `${rules.length} rules loaded`);
    const unhealthy = rules.filter((r) => r.health !== 'ok' || r.lastError).map((r) => `${r.name}: ${r.health} ${r.lastError ?? ''}`);
    t.same(unhealthy, [], 'every rule evaluates without error');
    const firing = await prom.query('ALERTS{alertstate="firing"}');
    t.same(firing.map((a) => a.labels.alertname), [], 'no alert fires');

    // Every query of the dashboard runs here; the ones below also have data.
    const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as { panels: { type: string; title: string; targets?: { refId: string; expr: string }[] }[] };
    const results = new Map<string, number>();
    const errors: string[] = [];
    for (const p of dashboard.panels.filter((p) => p.type !== 'row')) {
      for (const target of p.targets ?? []) {
        const expr = target.expr.replaceAll('$job', 'npcd').replaceAll('$sidecar_job', 'npcd-sidecar').replaceAll('$__rate_interval', '1m');
        try {
          const r = await prom.query(expr);
          results.set(p.title, (results.get(p.title) ?? 0) + r.length);
        } catch (err) {
          errors.push(`${p.title} ${target.refId}: ${(err as Error).message}`);
        }
      }
    }
    t.same(errors, [], `all ${[...results.keys()].length} dashboard panels' queries run`);
    const withData = ['Success ratio', 'HTTP requests/s by route', 'Chat turns/s by outcome', 'Tokens/s by provider', 'WebSocket connections', 'Time to first token', 'HTTP latency p95 / p99 by route', 'Memory store up', 'CPU', 'Error budget remaining (30d)'];
    for (const title of withData) t.ok((results.get(title) ?? 0) > 0, `dashboard "${title}" has data`);

    t.test('the eBPF sidecar, scraped by the same Prometheus', { skip: sidecarSkip }, async (t) => {
      const srtt = await waitForValue(
        () => prom.query(`sum(npcd_tcp_srtt_seconds_count{job="npcd-sidecar", direction="inbound", port="${npcdPort}"})`),
        (r) => (one(r) ?? 0) > 0,
        10_000,
        'inbound srtt samples on npcd\'s port in Prometheus',
      );
      t.ok(one(srtt)! > 0, `inbound srtt samples on npcd's port: ${one(srtt)}`);
      const rttPanel = dashboard.panels.find((p) => p.title === 'TCP smoothed RTT p50 / p99');
      const rtt = await prom.query(rttPanel!.targets![1]!.expr.replaceAll('$sidecar_job', 'npcd-sidecar').replaceAll('$__rate_interval', '1m'));
      const mine = rtt.find((s) => s.labels.direction === 'inbound' && s.labels.port === String(npcdPort));
      // Loopback RTTs are microseconds to a few milliseconds (delayed ACKs); the buckets are powers of two.
      t.ok(mine && mine.value > 0 && mine.value < 0.25, `dashboard "TCP smoothed RTT p50 / p99": inbound p99 on npcd's port in (0, 250 ms): ${mine?.value}`);
    });
  });
}
