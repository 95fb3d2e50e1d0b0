/**
 * The whole metric set under realistic traffic: a server with an OpenAI
 * upstream (fake), the parse worker pool and hot reload, many sessions with
 * unique ids over WebSocket and HTTP, HTTP errors and a failing upstream.
 * The scrape must declare every METRIC family (and prom-client's defaults),
 * and every family's label sets must stay few and free of ids and text.
 */
import { randomBytes } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { BUNDLED_CHARACTERS } from '../../src/config/serve.js';
import { METRIC } from '../../src/metrics/metrics.js';
import { startFakeOpenAi } from '../helpers/fake-upstreams.js';
import { postJson, testServer } from '../helpers/server.js';
import { parsePrometheus, type Sample, select, waitForValue } from '../helpers/sidecar-process.js';
import { TestClient } from '../helpers/ws-client.js';

interface Exposition {
  samples: Sample[];
  /** Family name → type, from the # TYPE lines. */
  types: Map<string, string>;
}

/** Parses the text exposition format (0.0.4): # TYPE lines and samples; throws on a line it cannot read. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('#')) continue;
    const m = /^# TYPE (\S+) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (m) types.set(m[1]!, m[2]!);
    else if (!line.startsWith('# HELP ')) throw new Error(`unreadable comment line: ${line}`);
  }
  return { samples: parsePrometheus(text), types };
}

/** The family a sample belongs to (histogram and summary series carry suffixes). */
function familyOf(name: string, types: Map<string, string>): string {
  if (types.has(name)) return name;
  const base = name.replace(/_(bucket|sum|count|created)$/, '');
  return types.has(base) ? base : name;
}

/** Distinct label sets per family, `le` and `quantile` aside (they are the family's buckets). */
function labelSets(e: Exposition): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const s of e.samples) {
    const family = familyOf(s.name, e.types);
    const key = Object.entries(s.labels)
      .filter(([k]) => k !== 'le' && k !== 'quantile')
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    if (!out.has(family)) out.set(family, new Set());
    out.get(family)!.add(key);
  }
  return out;
}

/** Most label sets one family may have here (the largest: status codes × routes × methods of this traffic). */
const MAX_LABEL_SETS = 40;

const CHARACTER = 'tavern-keeper';
const TEXT = 'What is on the menu tonight?';

t.test('every family is exported, label sets stay bounded and hold no ids or text', async (t) => {
  const fake = await startFakeOpenAi({ default: { type: 'stream', tokenDelayMs: 2 } });
  t.teardown(() => fake.close());
  const dir = t.testdir();
  cpSync(BUNDLED_CHARACTERS, dir, { recursive: true });
  const { http, ws } = await testServer(t, {
    model: `openai:fake-model?url=${fake.url}&retries=0&ttft=2s`,
    upstreamHealthIntervalMs: 0,
    characters: dir,
    watch: true,
    parseThreads: 1,
  });

  // Everything unique a client sends; none of it may become a label value.
  const run = randomBytes(4).toString('hex');
  const secrets: string[] = [];
  const unique = (what: string, i: number) => {
    const s = `${what}-${run}-${i}`;
    secrets.push(s);
    return s;
  };

  // 50 WebSocket sessions with unique ids, one turn each, ten connections at a time.
  for (let batch = 0; batch < 5; batch++) {
    await Promise.all(
      Array.from({ length: 10 }, async (_, j) => {
        const i = batch * 10 + j;
        const c = await TestClient.connect(ws);
        await c.hello({ session: unique('wssess', i) });
        const done = await c.chat(unique('wsmsg', i), CHARACTER, `${TEXT} ${unique('wstext', i)}`);
        t.equal(done.t, 'done', `ws turn ${i}`);
        await c.close();
      }),
    );
  }
  // HTTP turns, reads and errors with unique paths and ids.
  for (let i = 0; i < 10; i++) {
    const sid = unique('httpsess', i);
    const r = await postJson(`${http}/v1/chat`, { session_id: sid, id: unique('httpmsg', i), character: CHARACTER, message: `${TEXT} ${unique('httptext', i)}` });
    t.equal(r.status, 200, `http turn ${i}`);
    await fetch(`${http}/v1/sessions/${sid}`);
    await fetch(`${http}/v1/sessions/${unique('nosess', i)}`);
    await fetch(`${http}/${unique('nopath', i)}`);
  }
  t.equal((await postJson(`${http}/v1/chat`, '{"not json')).status, 400);
  t.equal((await postJson(`${http}/v1/chat`, { character: unique('nochar', 0), message: 'x' })).status, 404);
  t.equal((await fetch(`${http}/v1/chat`, { method: 'PUT' })).status, 405);
  const completion = await postJson(`${http}/v1/chat/completions`, { model: CHARACTER, messages: [{ role: 'user', content: `${TEXT} ${unique('oaitext', 0)}` }] });
  t.equal(completion.status, 200);
  // A failing upstream: a provider error by reason.
  fake.script({ type: 'status', status: 500 });
  const failed = await postJson(`${http}/v1/chat`, { session_id: unique('failsess', 0), character: CHARACTER, message: TEXT });
  t.equal(failed.status, 503);

  // Hot reload: one good change, one broken file.
  const scrape = async () => parseExposition(await (await fetch(`${http}/metrics`)).text());
  const value = (e: Exposition, name: string, labels: Record<string, string> = {}) =>
    select(e.samples, name, labels)[0]?.value;
  const waitMetric = (name: string, labels: Record<string, string>, min: number) =>
    waitForValue(scrape, (e) => (value(e, name, labels) ?? 0) >= min, 10_000, `${name} ${JSON.stringify(labels)} >= ${min}`, 50);
  const file = join(dir, 'station-ai.yaml');
  writeFileSync(file, readFileSync(file, 'utf8') + '\n# touched\n');
  await waitMetric(METRIC.characterReloads, { result: 'loaded' }, 1);
  writeFileSync(join(dir, 'broken.yaml'), 'name: [unclosed\n');
  await waitMetric(METRIC.characterReloads, { result: 'failed' }, 1);

  const res = await fetch(`${http}/metrics`);
  t.equal(res.status, 200);
  const e = parseExposition(await res.text());

  for (const name of Object.values(METRIC)) t.ok(e.types.has(name), `# TYPE ${name}`);
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_gc_duration_seconds', 'nodejs_heap_size_used_bytes']) {
    t.ok(e.types.has(name), `default metric ${name}`);
  }
  t.ok(e.samples.length > 0);
  for (const s of e.samples) {
    if (!e.types.has(familyOf(s.name, e.types))) t.fail(`sample ${s.name} has no # TYPE`);
  }

  // Bounded: few label sets per family, whatever the number of sessions and paths.
  const sets = labelSets(e);
  const big = [...sets].filter(([, keys]) => keys.size > MAX_LABEL_SETS).map(([family, keys]) => `${family}: ${keys.size}`);
  t.same(big, [], `no family has more than ${MAX_LABEL_SETS} label sets`);
  // No label value holds an id, a path or text a client sent.
  const leaked: string[] = [];
  for (const s of e.samples) {
    for (const [k, v] of Object.entries(s.labels)) {
      if (secrets.some((x) => v.includes(x)) || v.includes(run) || /sess_|msg_|lantern|menu/.test(v)) leaked.push(`${s.name} ${k}=${v}`);
      if (v.length > 64) leaked.push(`${s.name} ${k} is ${v.length} characters long`);
    }
  }
  t.same(leaked, [], 'label values are enums, never ids or text');

  // The new families carry what this traffic produced.
  t.ok((value(e, `${METRIC.interTokenGap}_count`, { provider: 'openai' }) ?? 0) >= 61 * 3, 'a gap between each pair of tokens');
  t.ok((value(e, `${METRIC.interTokenGap}_bucket`, { provider: 'openai', le: '0.0001' }) ?? -1) >= 0, 'sub-millisecond buckets');
  t.ok((value(e, `${METRIC.workerTaskDuration}_count`, { pool: 'parse' }) ?? 0) >= 5, 'parse tasks timed (3 at start, 2 reloads)');
  t.equal(value(e, METRIC.workerQueueDepth, { pool: 'parse' }), 0, 'parse queue read at scrape time');
  t.equal(value(e, METRIC.providerErrors, { provider: 'openai:fake-model', reason: 'unavailable' }), 1);
  t.equal(value(e, METRIC.providerErrors, { provider: 'openai:fake-model', reason: 'timeout' }), 0, 'known reasons start at 0');
  t.ok((value(e, `${METRIC.providerDuration}_count`, { provider: 'openai:fake-model' }) ?? 0) >= 62);
  t.ok(value(e, METRIC.upstreamConnections, { upstream: 'openai:fake-model', state: 'idle' }) !== undefined, 'upstream pool by state');
  t.equal(value(e, METRIC.turns, { provider: 'openai', outcome: 'completed' }), 61);
  t.ok((value(e, METRIC.sessions) ?? 0) >= 61, 'sessions held');
  t.ok((value(e, METRIC.httpFailed, { route: 'unmatched', reason: 'ERR_HTTP_NOT_FOUND' }) ?? 0) >= 10);
  t.equal(value(e, METRIC.characterReloads, { result: 'failed' }), 1);
});
