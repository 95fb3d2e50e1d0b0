import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli } from '../helpers/child.js';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));

t.test('npcd check: valid files', async (t) => {
  const r = await runCli(['check', BUNDLED]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  t.match(r.stdout, /^3 files checked, 0 with problems$/m);
});

t.test('npcd check: every problem as file:line:column: message, exit 1', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-check-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, 'name: Bad\nstates: [calm]\ntriggers:\n  - on_mention: true\n    respond: "{{.Nope}}"\n  - on_keyword: [x]\n    goto: nowhere\n');
  writeFileSync(join(dir, 'good.yaml'), 'name: Good\ntriggers:\n  - on_mention: true\n    respond: hi\n');
  const r = await runCli(['check', dir, join(dir, 'missing.yaml')]);
  t.equal(r.code, 1);
  const lines = r.stdout.trim().split('\n');
  t.match(lines, [new RegExp(`^${bad}:5:17: template: unknown field`), new RegExp(`^${bad}:7:11: .*nowhere`), /missing\.yaml:1:1: ENOENT/, /^2 files checked, 2 with problems$/]);
});

t.test('npcd check: usage', async (t) => {
  const none = await runCli(['check']);
  t.equal(none.code, 2);
  t.match(none.stdout, /Usage: npcd check PATH/);
  const help = await runCli(['check', '--help']);
  t.equal(help.code, 0);
  t.equal((await runCli(['check', '--frobnicate'])).code, 2);
});

t.test('npcd check: a folder is checked as the server loads it, so a duplicate id or name is a problem', async (t) => {
  const dir = t.testdir({
    'aaa.yaml': 'id: mara\nname: First\ntriggers:\n  - on_mention: true\n    respond: hi\n',
    'bbb.yaml': 'id: mara\nname: Second\ntriggers:\n  - on_mention: true\n    respond: hi\n',
    'ccc.yaml': 'id: other\nname: first\ntriggers:\n  - on_mention: true\n    respond: hi\n',
    'ddd.yaml': 'id: fine\nname: Fine\ntriggers:\n  - on_mention: true\n    respond: hi\n',
  });
  const r = await runCli(['check', dir]);
  t.equal(r.code, 1, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines, [/bbb\.yaml:1:1: .*id "mara" or name "Second" is already used by .*aaa\.yaml/, /ccc\.yaml:1:1: .*is already used by .*aaa\.yaml/, /^4 files checked, 2 with problems$/]);
});

t.test('npcd check: warnings are printed, and alone they do not fail the check', async (t) => {
  const dir = t.testdir({
    'warny.yaml': 'name: Warny\npersona: "trust: 0.5; trsut: 0.7"\ntriggers:\n  - on_mention: true\n    respond: hi\n',
    'future.json': JSON.stringify({ spec: 'chara_card_v3', spec_version: '3.5', data: { name: 'Future', description: 'd', first_mes: 'hi' } }),
  });
  const r = await runCli(['check', dir]);
  t.equal(r.code, 0, r.stdout + r.stderr);
  const lines = r.stdout.trim().split('\n');
  t.match(lines, [/future\.json:1:1: warning: spec_version: "3\.5" is newer than "3\.0"/, /warny\.yaml:2:\d+: warning: persona: .*trsut/, /^2 files checked, 0 with problems, 2 warnings$/]);
});
