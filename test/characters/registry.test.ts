import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { checkFile } from '../../src/characters/check.js';
import { CharacterRegistry, formatIssue, listCharacterFiles, looksLikeCard, MAX_SCRIPT_BYTES } from '../../src/characters/registry.js';
import { parseCharacterScript } from '../../src/characters/script.js';
import type { Character } from '../../src/characters/types.js';
import { NpcdError } from '../../src/errors.js';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));
const MIXED = fileURLToPath(new URL('../fixtures/scripts/registry', import.meta.url));

function character(yaml: string, file: string): Character {
  const { character: c, issues } = parseCharacterScript(yaml, file);
  if (!c) throw new Error(`fixture does not load: ${JSON.stringify(issues)}`);
  return c;
}

t.test('loads the bundled characters', async (t) => {
  const r = new CharacterRegistry();
  const { loaded, failed } = r.loadDirectory(BUNDLED);
  t.same(failed, []);
  t.equal(r.size, 3);
  t.same(loaded.map((c) => c.source), ['gufeng-jianke.yaml', 'station-ai.yaml', 'tavern-keeper.yaml'].map((f) => join(BUNDLED, f)), 'files in name order');
  t.same(r.list().map((c) => c.id), ['gufeng-jianke', 'station-ai', 'tavern-keeper'], 'list() is sorted by id');
  t.equal(r.failures.size, 0);
});

t.test('lookup by id, exact name and case-insensitive name', async (t) => {
  const r = new CharacterRegistry();
  r.loadDirectory(BUNDLED);
  t.equal(r.get('gufeng-jianke')?.name, '古风剑客', 'by id');
  t.equal(r.get('古风剑客')?.id, 'gufeng-jianke', 'by exact name');
  t.equal(r.get('Mara Quill')?.id, 'tavern-keeper');
  t.equal(r.get('mara quill')?.id, 'tavern-keeper', 'by case-insensitive name');
  t.equal(r.get('MARA QUILL')?.id, 'tavern-keeper');
  t.equal(r.get('halcyon')?.id, 'station-ai');
  t.equal(r.get('HALCYON')?.id, 'station-ai');
  t.equal(r.get('Mara'), undefined, 'aliases are not lookup keys');
  t.equal(r.get('mara quill '), undefined, 'no trimming');
  t.equal(r.get('GUFENG-JIANKE'), undefined, 'ids are exact');
  t.equal(r.get(''), undefined);
  t.equal(r.get('toString'), undefined, 'no inherited keys');
  t.equal(r.get('__proto__'), undefined);
  t.equal(r.require('station-ai').name, 'HALCYON');
});

t.test('require() throws ERR_CHARACTER_NOT_FOUND', async (t) => {
  const r = new CharacterRegistry();
  r.loadDirectory(BUNDLED);
  t.throws(() => r.require('nobody'), { name: 'NpcdError', code: 'ERR_CHARACTER_NOT_FOUND', status: 404, message: 'no character with id or name "nobody"' });
  let err: unknown;
  try {
    r.require('x'.repeat(1000));
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof NpcdError);
  t.equal((err as NpcdError).message, `no character with id or name "${'x'.repeat(200)}"`, 'the reference is cut to 200 characters in the message');
});

t.test('a folder with good, bad, clashing and non-YAML files', async (t) => {
  const r = new CharacterRegistry();
  const { loaded, failed } = r.loadDirectory(MIXED);
  t.same(loaded.map((c) => c.id), ['alpha', 'beta'], 'the good files load (beta.yml gets its id from the file name)');
  t.equal(r.size, 2);
  t.equal(r.get('notes'), undefined, 'notes.txt is skipped');
  t.equal(r.get('README'), undefined, 'README.md is skipped');

  const file = (name: string) => join(MIXED, name);
  t.same([...r.failures.keys()].sort(), [file('broken.yaml'), file('dup-name.yaml'), file('zz-dup-id.yaml')]);
  t.same(failed.map(formatIssue), [
    `${file('broken.yaml')}:3:1: unknown character key "colour"; expected one of id, name, aliases, description, persona, system_prompt, greeting, user_name, examples, initial_state, states, triggers, lorebooks`,
    `${file('broken.yaml')}:6:11: unknown state "nowhere"; states are [default]`,
    `${file('dup-name.yaml')}:1:1: ${file('dup-name.yaml')}: id "other-wolf" or name "ALPHA WOLF" is already used by ${file('alpha.yaml')}`,
    `${file('zz-dup-id.yaml')}:1:1: ${file('zz-dup-id.yaml')}: id "alpha" or name "Someone Else" is already used by ${file('alpha.yaml')}`,
  ]);
  t.same(r.failures.get(file('broken.yaml'))?.map((i) => i.line), [3, 6]);
  t.equal(r.get('alpha')?.name, 'Alpha Wolf', 'the first file keeps its id');
  t.equal(r.get('alpha wolf')?.source, file('alpha.yaml'), 'and its name');
  t.equal(r.get('other-wolf'), undefined);
  t.equal(r.get('Someone Else'), undefined);
});

t.test('set() rejects an id or name used by another file, replaces from the same file', async (t) => {
  const r = new CharacterRegistry();
  const a = character('id: a\nname: Alpha\n', 'f1.yaml');
  r.set(a);
  t.throws(() => r.set(character('id: a\nname: Other\n', 'f2.yaml')), { code: 'ERR_CHARACTER_INVALID', message: 'f2.yaml: id "a" or name "Other" is already used by f1.yaml' });
  t.throws(() => r.set(character('id: b\nname: Alpha\n', 'f2.yaml')), { code: 'ERR_CHARACTER_INVALID' });
  t.throws(() => r.set(character('id: b\nname: alpha\n', 'f2.yaml')), { code: 'ERR_CHARACTER_INVALID' }, 'names clash case-insensitively');
  t.equal(r.get('a'), a, 'nothing changed');
  t.equal(r.size, 1);

  const a2 = character('id: a\nname: Alpha Two\n', 'f1.yaml');
  r.set(a2);
  t.equal(r.get('a'), a2, 'the same file replaces its character');
  t.equal(r.get('Alpha'), undefined, 'the old name is gone');
  t.equal(r.get('alpha'), undefined);
  t.equal(r.get('alpha two'), a2);
  t.equal(r.size, 1);

  t.equal(r.delete('a'), true);
  t.equal(r.delete('a'), false);
  t.equal(r.get('Alpha Two'), undefined);
  t.equal(r.size, 0);
});

t.test('a file that later loads is removed from failures', async (t) => {
  const dir = t.testdir({ 'c.yaml': 'name: C\nbad: 1\n' });
  const r = new CharacterRegistry();
  const file = join(dir, 'c.yaml');
  t.equal(r.loadFile(file).character, undefined);
  t.ok(r.failures.has(file));
  writeFileSync(file, 'name: C\n');
  const { character: c, issues } = r.loadFile(file);
  t.equal(c?.id, 'c');
  t.same(issues, []);
  t.notOk(r.failures.has(file));
});

t.test('files over MAX_SCRIPT_BYTES are refused unread', async (t) => {
  t.equal(MAX_SCRIPT_BYTES, 1024 * 1024);
  const head = 'name: Big\n#';
  const dir = t.testdir({
    'big.yaml': head + 'x'.repeat(MAX_SCRIPT_BYTES + 1 - head.length - 1) + '\n',
    'limit.yaml': 'name: Limit\n#' + 'x'.repeat(MAX_SCRIPT_BYTES - 13 - 1) + '\n',
  });
  const r = new CharacterRegistry();
  const { loaded, failed } = r.loadDirectory(dir);
  t.same(loaded.map((c) => c.name), ['Limit'], 'exactly the limit is fine');
  t.same(failed, [{ file: join(dir, 'big.yaml'), line: 1, column: 1, message: `file is ${MAX_SCRIPT_BYTES + 1} bytes; the limit is ${MAX_SCRIPT_BYTES}` }]);
});

t.test('unreadable files and folders', async (t) => {
  const r = new CharacterRegistry();
  const missing = join(MIXED, 'missing.yaml');
  const res = r.loadFile(missing);
  t.equal(res.character, undefined);
  t.equal(res.issues.length, 1);
  t.match(res.issues[0], { file: missing, line: 1, column: 1, message: /ENOENT/ });
  t.ok(r.failures.has(missing));
  t.throws(() => r.loadDirectory(join(MIXED, 'no-such-dir')), { name: 'NpcdError', code: 'ERR_CONFIG_INVALID', message: /^--characters .*no-such-dir: ENOENT/ });
});

t.test('a file that changes its id must not take another file\'s id', async (t) => {
  // f1 first defines "a"/"Alpha"; f2 defines "b"/"Beta". f1 is then reloaded
  // with id "b". The clash check looks up the name first, finds f1's own old
  // entry, and never checks the id: f2's character is silently replaced and
  // f1's old "a" entry stays behind.
  const r = new CharacterRegistry();
  r.set(character('id: a\nname: Alpha\n', 'f1.yaml'));
  const beta = character('id: b\nname: Beta\n', 'f2.yaml');
  r.set(beta);
  let threw = false;
  try {
    r.set(character('id: b\nname: Alpha\n', 'f1.yaml'));
  } catch (err) {
    threw = (err as NpcdError).code === 'ERR_CHARACTER_INVALID';
  }
  t.ok(threw, 'id "b" of f2.yaml is refused');
  t.equal(r.get('b'), beta, 'f2.yaml keeps "b"');
  t.equal(r.get('Beta'), beta, 'and "Beta" still resolves');
});

t.test('JSON files are told apart by shape: cards in any field order and without first_mes load; lorebooks and other JSON do not', async (t) => {
  const dir = t.testdir({
    'v1-no-first-mes.json': JSON.stringify({ name: 'V1 NoFirst', description: 'A quiet clerk.', mes_example: '<START>\n{{char}}: Yes?' }),
    'data-no-spec.json': JSON.stringify({ data: { name: 'NoSpec', description: 'No spec field.' }, spec_version: '3.0' }),
    // The card's data (a 70 KB description) before its spec: the spec is past the first 64 KiB.
    'spec-last.json': `{"data":{"name":"Spec Last","description":"${'x'.repeat(70_000)}","first_mes":"Hi."},"spec":"chara_card_v2","spec_version":"2.0"}`,
    'world-info.json': JSON.stringify({ entries: { 0: { uid: 0, key: ['dragon'], content: 'Dragons sleep.' } } }),
    'settings.json': JSON.stringify({ theme: 'dark' }),
    // A card cut short is still a card: it is reported, not skipped.
    'broken-card.json': '{"spec":"chara_card_v2","data":{"name":"Bro',
  });
  const files = listCharacterFiles(dir).map((f) => f.slice(dir.length + 1));
  t.same(files, ['broken-card.json', 'data-no-spec.json', 'spec-last.json', 'v1-no-first-mes.json']);
  const r = new CharacterRegistry();
  const { loaded, failed } = r.loadDirectory(dir);
  t.same(loaded.map((c) => c.name).sort(), ['NoSpec', 'Spec Last', 'V1 NoFirst']);
  t.same(failed.map((i) => i.file.slice(dir.length + 1)), ['broken-card.json']);
  // npcd check reads them as cards too, not as lorebooks.
  for (const f of ['v1-no-first-mes.json', 'data-no-spec.json', 'spec-last.json']) t.same(checkFile(join(dir, f)), [], `${f}: checked as a card`);
  t.same(checkFile(join(dir, 'world-info.json')), [], 'the lorebook is checked as a lorebook');
  t.equal(looksLikeCard({ name: 'Only a name' }), false, 'a name alone is not a card');
  t.equal(looksLikeCard([]), false);
});
