/**
 * deploy/prometheus/ through promtool (Debian's `prometheus` package): the
 * rules are valid, their unit tests (npcd.rules.test.yml: every alert firing
 * and quiet, recorded values) pass, and the example configuration loads
 * them. Fails, not skips, without promtool: CI installs it (.ci/run).
 */
import t from 'tap';
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { PROMETHEUS_CONFIG, promtool, RULES, RULES_TEST, toolMissing } from '../helpers/prometheus.js';

const missing = toolMissing('promtool');
if (missing) {
  t.fail(missing);
} else {
  const rules = parse(readFileSync(RULES, 'utf8')) as { groups: { name: string; rules: unknown[] }[] };
  const ruleCount = rules.groups.reduce((n, g) => n + g.rules.length, 0);

  t.test('promtool check rules', async (t) => {
    const r = promtool(['check', 'rules', RULES]);
    t.equal(r.status, 0, `exit 0\n${r.output}`);
    t.match(r.output, new RegExp(`SUCCESS: ${ruleCount} rules found`), `all ${ruleCount} rules found`);
  });

  t.test('promtool test rules', async (t) => {
    const r = promtool(['test', 'rules', RULES_TEST], 120_000);
    t.equal(r.status, 0, `exit 0\n${r.output}`);
    t.match(r.output, /SUCCESS/);
    t.notMatch(r.output, /FAILED/);
  });

  t.test('promtool check config (the example prometheus.yml and the rules it loads)', async (t) => {
    const r = promtool(['check', 'config', PROMETHEUS_CONFIG]);
    t.equal(r.status, 0, `exit 0\n${r.output}`);
    t.match(r.output, /SUCCESS: 1 rule files found/);
    t.match(r.output, new RegExp(`SUCCESS: ${ruleCount} rules found`));
  });

  t.test('the unit tests cover every alert, firing and quiet', async (t) => {
    const tests = parse(readFileSync(RULES_TEST, 'utf8')) as {
      rule_files: string[];
      tests: { alert_rule_test?: { alertname: string; exp_alerts: unknown[] }[]; promql_expr_test?: unknown[] }[];
    };
    t.same(tests.rule_files, ['npcd.rules.yml']);
    const alerts = new Set(rules.groups.flatMap((g) => g.rules as { alert?: string }[]).flatMap((r) => (r.alert ? [r.alert] : [])));
    const cases = tests.tests.flatMap((g) => g.alert_rule_test ?? []);
    for (const name of alerts) {
      t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length > 0), `${name}: a case where it fires`);
      t.ok(cases.some((c) => c.alertname === name && c.exp_alerts.length === 0), `${name}: a case where it does not`);
    }
    t.ok(tests.tests.some((g) => (g.promql_expr_test ?? []).length > 0), 'recorded values are tested');
  });
}
