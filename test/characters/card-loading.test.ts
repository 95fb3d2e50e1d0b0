/** Character Cards in the characters folder: loaded at start, through the worker pool, reloaded, checked. */
import t, { type Test } from 'tap';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ParsePool } from '../../src/characters/parse-pool.js';
import { CharacterRegistry, listCharacterFiles } from '../../src/characters/registry.js';
import { runCli } from '../helpers/child.js';
import { postJson, testServer } from '../helpers/server.js';
import { sharedFixture } from '../helpers/fixtures.js';

const FIXTURES = sharedFixture('cards/');
const V2_JSON = JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Wren', description: 'A courier.', personality: 'brisk', scenario: '', first_mes: 'Parcel for {{user}}?', mes_example: '', creator_notes: '', system_prompt: '', post_history_instructions: '', alternate_greetings: [], tags: [], creator: '', character_version: '1', extensions: { npcd: { persona: 'trust: 0.4; mood: cheerful' } } } });

function folder(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-cards-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(FIXTURES, 'seraphina.v2.png'), join(dir, 'seraphina.png'));
  copyFileSync(join(FIXTURES, 'eldoria.lorebook.json'), join(dir, 'eldoria.lorebook.json'));
  writeFileSync(join(dir, 'wren.json'), V2_JSON);
  return dir;
}

t.test('a folder with a PNG card, a JSON card and a lorebook', async (t) => {
  const dir = folder(t);
  t.same(listCharacterFiles(dir).map((f) => f.slice(dir.length + 1)), ['seraphina.png', 'wren.json'], 'the lorebook is not a character file');
  const pool = new ParsePool({ threads: 1 });
  t.teardown(() => pool.close());
  const registry = new CharacterRegistry();
  const { loaded, failed } = await registry.loadDirectoryWith(dir, pool);
  t.same(failed, []);
  t.same(loaded.map((c) => c.name).sort(), ['Seraphina', 'Wren']);
  const seraphina = registry.get('Seraphina')!;
  t.equal(seraphina.lorebooks.length, 1, 'the card\'s character_book');
  t.ok(seraphina.lorebooks[0]!.entries.length > 0);
  t.equal(registry.get('Wren')!.personaSpec?.trust, 0.4, 'an npcd persona carried by the card');
  t.ok(registry.cards.get(join(dir, 'seraphina.png')), 'the card is kept for export');
  const inline = new CharacterRegistry();
  inline.loadDirectory(dir);
  t.same(inline.list().map((c) => c.id), registry.list().map((c) => c.id), 'inline loading finds the same characters');
});

t.test('chatting with a card character draws on its lorebook', async (t) => {
  const dir = folder(t);
  const { http } = await testServer(t, { characters: dir, model: 'mock', mockTokens: 3 });
  const r = await postJson(`${http}/v1/chat`, { session_id: 's1', character: 'Seraphina', message: 'What is Eldoria?' });
  t.equal(r.status, 200, JSON.stringify(r.body));
  t.ok(r.body.usage.prompt_tokens > 100, `the prompt holds the card and its lore (${r.body.usage.prompt_tokens} tokens)`);
});

t.test('a card file is reloaded when it changes, and a broken card keeps the last good version', async (t) => {
  const dir = folder(t);
  const { server } = await testServer(t, { characters: dir, watch: true });
  writeFileSync(join(dir, 'wren.json'), V2_JSON.replace('Parcel for', 'Letter for'));
  for (let i = 0; i < 250 && !server.registry.get('Wren')!.greeting.startsWith('Letter'); i++) await sleep(20);
  t.match(server.registry.get('Wren')!.greeting, /^Letter for/);
  writeFileSync(join(dir, 'wren.json'), V2_JSON.slice(0, 60)); // cut short
  for (let i = 0; i < 250 && !server.registry.failures.has(join(dir, 'wren.json')); i++) await sleep(20);
  t.match(server.registry.failures.get(join(dir, 'wren.json')), [{ message: /invalid JSON/ }]);
  t.match(server.registry.get('Wren')!.greeting, /^Letter for/, 'still serving');
});

t.test('npcd check reads cards, lorebooks and persona files', async (t) => {
  const dir = folder(t);
  writeFileSync(join(dir, 'bad.persona'), 'trust: 2\nreact_to_conflict: sulk\n');
  writeFileSync(join(dir, 'good.persona'), 'trust: 0.5 # fine\n');
  const r = await runCli(['check', join(dir, 'seraphina.png'), join(dir, 'wren.json'), join(dir, 'eldoria.lorebook.json'), join(dir, 'good.persona'), join(dir, 'bad.persona')]);
  t.equal(r.code, 1, r.stdout);
  const lines = r.stdout.trim().split('\n');
  t.match(lines[0], /bad\.persona:1:8: .*trust/);
  t.match(lines[1], /bad\.persona:2:20: .*react_to_conflict/);
  t.match(lines.at(-1), /^5 files checked, 1 with problems$/);
});
