/** Admin card import: conflicts with characters and files already in the folder, and replacing a card imported before. */
import t from 'tap';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { folder, upload } from '../helpers/admin.js';
import { getJson, testServer } from '../helpers/server.js';
import { sharedFixture } from '../helpers/fixtures.js';

const FIXTURE = sharedFixture('cards/seraphina.v2.png');

t.test('bad cards and conflicts', async (t) => {
  const { http } = await testServer(t, { characters: folder(t), watch: true, adminKeys: ['adm1n'] });
  t.match(await upload(`${http}/v1/admin/characters`, '{"spec":"chara_card_v2","data":'), { status: 400, body: { error: { code: 'ERR_CARD_INVALID', message: /invalid JSON/ } } });
  const clash = JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Mara Quill', description: '', personality: '', scenario: '', first_mes: 'hi', mes_example: '', extensions: {} } });
  t.match(await upload(`${http}/v1/admin/characters`, clash), { status: 409, body: { error: { code: 'ERR_CARD_CONFLICT' } } });
});

t.test('importing the same card again in the other format replaces it; a script with its id is still a conflict', async (t) => {
  const dir = folder(t);
  const { http, server } = await testServer(t, { characters: dir, watch: true, adminKeys: ['adm1n'] });
  const png = await upload(`${http}/v1/admin/characters`, readFileSync(FIXTURE));
  t.equal(png.status, 201, JSON.stringify(png.body));
  t.equal(png.body.file, 'seraphina.png');
  const json = JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Seraphina', description: 'Edited as JSON.', personality: '', scenario: '', first_mes: 'Hello again.', mes_example: '', extensions: {} } });
  const again = await upload(`${http}/v1/admin/characters`, json);
  t.equal(again.status, 201, JSON.stringify(again.body));
  t.match(again.body, { id: 'seraphina', file: 'seraphina.json' });
  t.notOk(existsSync(join(dir, 'seraphina.png')), 'the PNG it replaces is gone');
  t.ok(existsSync(join(dir, 'seraphina.json')));
  t.equal((await getJson(`${http}/v1/characters/seraphina`)).body.description, 'Edited as JSON.');
  t.equal(server.registry.get('seraphina')?.source, join(dir, 'seraphina.json'));
  // A card named like a scripted character is not the same card: still a conflict.
  const clash = JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'Tavern Keeper', description: '', personality: '', scenario: '', first_mes: 'hi', mes_example: '', extensions: {} } });
  t.match(await upload(`${http}/v1/admin/characters`, clash), { status: 409, body: { error: { code: 'ERR_CARD_CONFLICT' } } });
});

t.test('an import never overwrites another file of the folder: a lorebook, or a card whose name gives the same id', async (t) => {
  const dir = folder(t);
  const lorebook = JSON.stringify({ entries: { 0: { uid: 0, key: ['harbour'], content: 'The harbour is old.' } } });
  writeFileSync(join(dir, 'world.json'), lorebook);
  const { http } = await testServer(t, { characters: dir, watch: true, adminKeys: ['adm1n'] });
  const world = JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'World', description: 'd', first_mes: 'hi' } });
  const r = await upload(`${http}/v1/admin/characters`, world);
  t.match(r, { status: 409, body: { error: { code: 'ERR_CARD_CONFLICT', message: /world\.json already exists/ } } });
  t.equal(readFileSync(join(dir, 'world.json'), 'utf8'), lorebook, 'the lorebook is untouched');
  // Two names that give the same id are two cards.
  const x1 = await upload(`${http}/v1/admin/characters`, JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: '../../x', description: 'first', first_mes: 'hi' } }));
  t.match(x1, { status: 201, body: { id: 'x', file: 'x.json' } });
  const x2 = await upload(`${http}/v1/admin/characters`, JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: 'X!!', description: 'second', first_mes: 'hi' } }));
  t.match(x2, { status: 409, body: { error: { code: 'ERR_CARD_CONFLICT', message: /x\.json already exists in the characters folder and holds character x \(\.\.\/\.\.\/x\)/ } } });
  t.equal((await getJson(`${http}/v1/characters/x`)).body.description, 'first', 'the first card still serves');
  // The same card again (same id and name) is an update.
  const again = await upload(`${http}/v1/admin/characters`, JSON.stringify({ spec: 'chara_card_v2', spec_version: '2.0', data: { name: '../../X', description: 'updated', first_mes: 'hi' } }));
  t.match(again, { status: 201, body: { id: 'x' } });
  t.equal((await getJson(`${http}/v1/characters/x`)).body.description, 'updated');
});
