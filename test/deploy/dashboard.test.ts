/**
 * deploy/grafana/npcd.json and deploy/prometheus/npcd.rules.yml against the
 * code: the dashboard is well-formed Grafana JSON (every panel has the
 * ${DS_PROMETHEUS} datasource and queries), and every metric name any
 * PromQL expression of the dashboard or the rules uses exists: a METRIC
 * constant of src/metrics/metrics.ts, a prom-client default metric, a
 * sidecar metric (src/sidecar/names.ts), `up`/`ALERTS`, or a recording rule
 * of the rules file, with _bucket/_sum/_count only on histograms. A renamed
 * metric fails here instead of leaving an empty panel or a silent alert.
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { METRIC, Metrics } from '../../src/metrics/metrics.js';
import { SIDECAR_METRIC } from '../../src/sidecar/names.js';
import { DASHBOARD, RULES } from '../helpers/prometheus.js';
import { metricNames, selectors, variableQueryExpr } from '../helpers/promql.js';

interface Rule {
  record?: string;
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}
interface Target {
  datasource?: { type?: string; uid?: string };
  refId?: string;
  expr?: string;
}
interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  gridPos: { h: number; w: number; x: number; y: number };
  panels?: Panel[];
}
interface Dashboard {
  __inputs?: { name: string; type: string; pluginId: string }[];
  schemaVersion: number;
  uid: string;
  title: string;
  panels: Panel[];
  templating: { list: { name: string; type: string; query?: string | { query: string }; datasource?: { uid?: string } }[] };
  annotations: { list: { expr?: string; datasource?: { uid?: string } }[] };
}

const DS_UID = '${DS_PROMETHEUS}';
const rules = (parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: Rule[] }[] }).groups.flatMap((g) => g.rules);
const recorded = new Set(rules.flatMap((r) => (r.record ? [r.record] : [])));
const dashboard = JSON.parse(readFileSync(DASHBOARD, 'utf8')) as Dashboard;
const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const queryPanels = panels.filter((p) => p.type !== 'row');

/** name → type of every metric npcd exports: its own (METRIC) and prom-client's defaults. */
async function npcdMetricTypes(): Promise<Map<string, string>> {
  const m = new Metrics();
  const types = new Map<string, string>();
  for (const family of await m.registry.getMetricsAsJSON()) types.set(family.name, String(family.type));
  return types;
}

/** The sidecar's metric families; its histograms are the *_seconds ones (every Log2Histogram in src/sidecar/sidecar.ts). */
function sidecarMetricTypes(): Map<string, string> {
  return new Map(Object.values(SIDECAR_METRIC).map((name) => [name, name.endsWith('_seconds') ? 'histogram' : 'other']));
}

/** Why `name` is not a metric these files may use, or undefined when it is. */
function unknownName(name: string, types: Map<string, string>): string | undefined {
  if (recorded.has(name) || name === 'up' || name === 'ALERTS') return undefined;
  const type = types.get(name);
  if (type === 'histogram') return `${name} is a histogram: use ${name}_bucket, _sum or _count`;
  if (type !== undefined) return undefined;
  const m = /^(.+)_(bucket|sum|count)$/.exec(name);
  if (m) {
    const base = types.get(m[1]!);
    if (base === 'histogram' || (base === 'summary' && m[2] !== 'bucket')) return undefined;
    if (base !== undefined) return `${m[1]} is a ${base}, it has no _${m[2]} series`;
  }
  return `${name} is not an npcd, prom-client default or sidecar metric, nor a recording rule of npcd.rules.yml`;
}

t.test('the PromQL lexer finds metric names and only those', async (t) => {
  t.same(
    metricNames('histogram_quantile(0.99, sum by (job, le) (rate(npcd_ttft_bucket{job="npcd", le=~"1|1\\\\.0"}[5m]))) > 0.5 and on(job) up == 1'),
    ['npcd_ttft_bucket', 'up'],
  );
  t.same(metricNames('sum(rate(a_total{route!~"/metrics|/x{y}"}[$__rate_interval])) by (route) / ignoring(route) group_left b offset 5m'), ['a_total', 'b']);
  t.same(metricNames('1 - job:x:ratio_rate5m / 0.001 + 1e-3 * count_values("le", c) + absent(d{job="npcd"})'), ['job:x:ratio_rate5m', 'c', 'd']);
  t.same(metricNames('max_over_time(e[1h:5m]) unless bool f'), ['e', 'f']);
  t.same(selectors('x{job="npcd", a="b"} / y'), [
    { name: 'x', matchers: 'job="npcd", a="b"' },
    { name: 'y', matchers: '' },
  ]);
  t.equal(variableQueryExpr('label_values(npcd_ws_connections, job)'), 'npcd_ws_connections');
  t.equal(variableQueryExpr('label_values(job)'), undefined);
  const types = await npcdMetricTypes();
  t.match(unknownName('npcd_no_such_metric', types), /not an npcd/, 'an unknown name is reported');
  t.match(unknownName('npcd_time_to_first_token_seconds', types), /is a histogram/, 'a histogram without a suffix is reported');
  t.match(unknownName('npcd_turns_total_bucket', types), /is a counter/, 'a suffix on a counter is reported');
  t.equal(unknownName('nodejs_gc_duration_seconds_sum', types), undefined, 'a default histogram with a suffix is fine');
});

t.test('the dashboard is Grafana JSON with ${DS_PROMETHEUS} everywhere', async (t) => {
  t.ok(dashboard.schemaVersion >= 36 && dashboard.schemaVersion <= 41, `schemaVersion ${dashboard.schemaVersion}`);
  t.ok(dashboard.uid && dashboard.title, 'uid and title');
  t.same(
    dashboard.__inputs?.map((i) => [i.name, i.type, i.pluginId]),
    [['DS_PROMETHEUS', 'datasource', 'prometheus']],
    'one datasource input (asked for on import)',
  );
  const dsVar = dashboard.templating.list.find((v) => v.name === 'DS_PROMETHEUS');
  t.equal(dsVar?.type, 'datasource', 'and a datasource variable of that name (for provisioning from file)');
  t.equal(dsVar?.query, 'prometheus');

  const ids = panels.map((p) => p.id);
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  t.ok(queryPanels.length >= 20, `${queryPanels.length} panels with queries`);
  for (const p of queryPanels) {
    t.same(p.datasource, { type: 'prometheus', uid: DS_UID }, `${p.title}: datasource`);
    t.ok(Array.isArray(p.targets) && p.targets.length > 0, `${p.title}: has targets`);
    const refIds = (p.targets ?? []).map((x) => x.refId);
    t.equal(new Set(refIds).size, refIds.length, `${p.title}: refIds are unique`);
    for (const target of p.targets ?? []) {
      t.ok(typeof target.expr === 'string' && target.expr.trim() !== '', `${p.title} ${target.refId}: expr`);
      t.equal(target.datasource?.uid ?? DS_UID, DS_UID, `${p.title} ${target.refId}: datasource`);
    }
    const g = p.gridPos;
    t.ok(g.x >= 0 && g.w > 0 && g.x + g.w <= 24 && g.h > 0, `${p.title}: fits the 24-column grid`);
  }
  // No two panels overlap.
  const overlaps: string[] = [];
  for (let i = 0; i < panels.length; i++) {
    for (let j = i + 1; j < panels.length; j++) {
      const a = panels[i]!.gridPos;
      const b = panels[j]!.gridPos;
      if (a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h) overlaps.push(`${panels[i]!.title} / ${panels[j]!.title}`);
    }
  }
  t.same(overlaps, [], 'no panels overlap');

  const titles = queryPanels.map((p) => p.title).join('\n');
  for (const want of [/requests\/s/i, /time to first token/i, /latency/i, /success ratio/i, /error budget/i, /tokens\/s/i, /websocket connections/i, /upstream health/i, /provider request errors/i, /store up/i, /rtt/i, /connect latency/i]) {
    t.match(titles, want, `a panel for ${want.source}`);
  }
});

t.test('every metric name in the dashboard and the rules exists', async (t) => {
  const types = new Map([...(await npcdMetricTypes()), ...sidecarMetricTypes()]);
  for (const name of Object.values(METRIC)) t.ok(types.has(name), `METRIC ${name} is registered`);

  const exprs: { where: string; expr: string }[] = [];
  for (const p of queryPanels) for (const target of p.targets ?? []) exprs.push({ where: `dashboard "${p.title}" ${target.refId}`, expr: target.expr ?? '' });
  for (const a of dashboard.annotations.list) if (a.expr) exprs.push({ where: 'dashboard annotation', expr: a.expr });
  for (const v of dashboard.templating.list) {
    if (v.type !== 'query') continue;
    t.equal(v.datasource?.uid, DS_UID, `variable ${v.name}: datasource`);
    const q = typeof v.query === 'string' ? v.query : v.query?.query ?? '';
    const expr = variableQueryExpr(q);
    if (expr) exprs.push({ where: `dashboard variable ${v.name}`, expr });
  }
  for (const r of rules) exprs.push({ where: `rule ${r.record ?? r.alert}`, expr: r.expr });

  const bad: string[] = [];
  const used = new Set<string>();
  for (const { where, expr } of exprs) {
    const names = metricNames(expr);
    if (names.length === 0) bad.push(`${where}: no metric in ${expr}`);
    for (const name of names) {
      used.add(name);
      const why = unknownName(name, types);
      if (why) bad.push(`${where}: ${why}`);
    }
  }
  t.same(bad, [], `${exprs.length} expressions, ${used.size} distinct names, all known`);
  for (const name of ['http_requests_total', 'npcd_turns_total', 'npcd_time_to_first_token_seconds_bucket', 'npcd_upstream_healthy', 'npcd_store_up', 'npcd_tcp_srtt_seconds_bucket', 'npcd_tcp_connect_duration_seconds_bucket']) {
    t.ok(used.has(name), `${name} is used`);
  }
  const dashboardNames = new Set(exprs.filter((e) => e.where.startsWith('dashboard')).flatMap((e) => metricNames(e.expr)));
  const unused = [...recorded].filter((r) => !dashboardNames.has(r) && !rules.some((x) => metricNames(x.expr).includes(r)));
  t.same(unused, [], 'every recording rule is used by the dashboard, an alert or another rule');
});

t.test('the rules: names, selectors, labels, annotations', async (t) => {
  const slo = readFileSync(new URL('../../docs/slo.md', import.meta.url), 'utf8');
  // GitHub's heading anchors: lower case, punctuation dropped, spaces to dashes.
  const anchors = new Set([...slo.matchAll(/^#+\s+(.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, '').replace(/ /g, '-')));
  for (const r of rules) {
    if (r.record) {
      t.match(r.record, /^[a-z]+(_[a-z]+)*:[a-z][a-z0-9_]*:[a-z0-9_]+$/, `${r.record}: level:metric:operations`);
    } else {
      t.ok(r.alert && /^Npcd[A-Z]\w+$/.test(r.alert), `${r.alert}: alert name`);
      t.ok(['page', 'ticket'].includes(r.labels?.severity ?? ''), `${r.alert}: severity page or ticket`);
      t.ok(r.annotations?.summary && r.annotations.description, `${r.alert}: summary and description`);
      const anchor = /^docs\/slo\.md#(.+)$/.exec(r.annotations?.runbook ?? '')?.[1];
      t.ok(anchor && anchors.has(anchor), `${r.alert}: runbook ${r.annotations?.runbook} is a heading of docs/slo.md`);
    }
    // Every raw metric is selected with job="npcd" (docs/slo.md tells users to change it in one sweep).
    for (const s of selectors(r.expr)) {
      if (recorded.has(s.name)) continue;
      t.match(s.matchers, /(^|,\s*)job="npcd"(\s*,|$)/, `${r.record ?? r.alert}: ${s.name} selects job="npcd"`);
    }
  }
});
