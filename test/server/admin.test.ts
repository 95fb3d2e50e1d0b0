/** Admin routes: importing Character Cards over HTTP and exporting characters as cards. */
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseCard } from '../../src/characters/cards/card.js';
import { readPngChunks, textChunkKeyword } from '../../src/characters/cards/png.js';
import { AUTH, folder, upload } from '../helpers/admin.js';
import { getJson, postJson, testServer } from '../helpers/server.js';
import { sharedFixture } from '../helpers/fixtures.js';
import { waitFor } from '../helpers/wait.js';

const FIXTURE = sharedFixture('cards/seraphina.v2.png');

t.test('admin routes are off without --admin-keys, and need the key', async (t) => {
  const { http } = await testServer(t, { characters: folder(t), watch: true });
  t.match(await upload(`${http}/v1/admin/characters`, '{}'), { status: 403, body: { error: { code: 'ERR_ADMIN_DISABLED' } } });
  const on = await testServer(t, { characters: folder(t), watch: true, adminKeys: ['adm1n'], apiKeys: ['user'] });
  t.match(await upload(`${on.http}/v1/admin/characters`, '{}', {}), { status: 401, body: { error: { code: 'ERR_AUTH_REQUIRED' } } });
  t.match(await upload(`${on.http}/v1/admin/characters`, '{}', { authorization: 'Bearer user' }), { status: 401, body: { error: { code: 'ERR_AUTH_INVALID' } } }, 'an API key is not an admin key');
});

t.test('import a PNG card, chat with it, export it as JSON and PNG', async (t) => {
  const dir = folder(t);
  const { http } = await testServer(t, { characters: dir, watch: true, adminKeys: ['adm1n'], model: 'mock', mockTokens: 2 });
  const png = readFileSync(FIXTURE);
  const r = await upload(`${http}/v1/admin/characters`, png);
  t.equal(r.status, 201, JSON.stringify(r.body));
  t.match(r.body, { id: 'seraphina', name: 'Seraphina', file: 'seraphina.png' });
  t.ok(r.body.lorebook_entries > 0);
  t.ok(existsSync(join(dir, r.body.file)), 'written to the characters folder');
  t.equal((await getJson(`${http}/v1/characters/${r.body.id}`)).status, 200);
  t.equal((await postJson(`${http}/v1/chat`, { session_id: 's', character: 'Seraphina', message: 'hi' })).status, 200);

  const json = await fetch(`${http}/v1/admin/characters/${r.body.id}/card?format=json`, { headers: AUTH });
  t.equal(json.status, 200);
  const exported = parseCard(await json.text());
  const original = parseCard(png);
  t.same(exported.card?.data, original.card?.data, 'the JSON export holds the card as imported');
  const back = await fetch(`${http}/v1/admin/characters/${r.body.id}/card?format=png`, { headers: AUTH });
  t.equal(back.headers.get('content-type'), 'image/png');
  const bytes = new Uint8Array(await back.arrayBuffer());
  const keywords = readPngChunks(bytes).chunks!.filter((c) => c.type === 'tEXt').map((c) => textChunkKeyword(c));
  t.ok(keywords.includes('chara') && keywords.includes('ccv3'), `both chunks (${keywords})`);
  t.same(parseCard(bytes).card?.data, original.card?.data, 'and the PNG export too');
});

t.test('export a scripted character as a card; unknown extensions survive an import and export', async (t) => {
  const { http } = await testServer(t, { characters: folder(t), watch: true, adminKeys: ['adm1n'] });
  const res = await fetch(`${http}/v1/admin/characters/gufeng-jianke/card`, { headers: AUTH });
  const card = parseCard(await res.text()).card!;
  t.equal(card.data.name, '古风剑客');
  t.match(card.data.extensions, { npcd: { id: 'gufeng-jianke', persona: /trust: 0\.7/ } });
  t.match(card.data.mes_example, /<START>\n\{\{char\}\}: /);
  const withExt = JSON.stringify({ spec: 'chara_card_v3', spec_version: '3.0', data: { name: 'Ivo', description: '', personality: '', scenario: '', first_mes: 'yo', mes_example: '', creator_notes: '', system_prompt: '', post_history_instructions: '', alternate_greetings: [], tags: [], creator: '', character_version: '', group_only_greetings: [], extensions: { someone: { deep: [1, { x: true }] } } } });
  const r = await upload(`${http}/v1/admin/characters`, withExt);
  t.equal(r.status, 201, JSON.stringify(r.body));
  t.match(r.body, { id: 'ivo', file: 'ivo.json' }, 'each card gets its own file');
  t.equal((await getJson(`${http}/v1/characters`)).body.characters.length, 4, 'the bundled three and Ivo');
  const out = parseCard(await (await fetch(`${http}/v1/admin/characters/${r.body.id}/card`, { headers: AUTH })).text()).card!;
  t.same(out.data.extensions, { someone: { deep: [1, { x: true }] } });
});

t.test('an import answers with the warnings of what the card has that npcd read anyway', async (t) => {
  const { http } = await testServer(t, { characters: folder(t), watch: true, adminKeys: ['adm1n'] });
  const card = { spec: 'chara_card_v3', spec_version: '3.5', data: { name: 'Future', description: 'From a newer spec.', first_mes: 'Hello.' } };
  const r = await upload(`${http}/v1/admin/characters`, JSON.stringify(card));
  t.equal(r.status, 201, JSON.stringify(r.body));
  t.match(r.body.warnings, [/spec_version: "3\.5" is newer than "3\.0"/]);
  const clean = await upload(`${http}/v1/admin/characters`, readFileSync(FIXTURE));
  t.same(clean.body.warnings, [], 'none for a card without problems');
});

t.test('a PNG card whose file is no longer a PNG still exports, on the default image', async (t) => {
  const dir = folder(t);
  const { http, server } = await testServer(t, { characters: dir, watch: true, adminKeys: ['adm1n'] });
  const r = await upload(`${http}/v1/admin/characters`, readFileSync(FIXTURE));
  t.equal(r.status, 201, JSON.stringify(r.body));
  const file = join(dir, r.body.file);
  writeFileSync(file, 'not a png');
  await waitFor(() => server.registry.failures.has(file), 5_000, 'the broken file to fail its reload');
  const res = await fetch(`${http}/v1/admin/characters/${r.body.id}/card?format=png`, { headers: AUTH });
  t.equal(res.status, 200);
  const card = parseCard(new Uint8Array(await res.arrayBuffer())).card;
  t.equal(card?.data.name, 'Seraphina', 'the last good version, exported');
});
