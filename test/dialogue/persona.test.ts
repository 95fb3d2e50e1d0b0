/** The persona shapes behaviour: scripts test and change traits, sessions keep them, prompts carry them. */
import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseCharacterScript } from '../../src/characters/script.js';
import { buildPrompt } from '../../src/dialogue/prompt.js';
import { postJson, testServer } from '../helpers/server.js';

const SCRIPT = [
  'id: bob',
  'name: Bob',
  "persona: 'trust: 0.7; react_to_conflict: withdraw; core_value: autonomy'",
  'triggers:',
  '  - on_keyword: [fool]',
  '    adjust: {trust: -0.3}',
  '    respond: Hmph.',
  '  - on_keyword: [sorry]',
  '    adjust: {trust: 0.5}',
  '    respond: Fine.',
  '  - on_regex: "."',
  '    if_trait: "trust < 0.5"',
  '    respond: I do not trust you.',
  '  - on_regex: "."',
  '    respond: Welcome, friend.',
  '',
].join('\n');

t.test('trust falls after an insult, within bounds, per session', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-persona-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'bob.yaml'), SCRIPT);
  const { http, server } = await testServer(t, { characters: dir });
  const say = async (session: string, message: string) => (await postJson(`${http}/v1/chat`, { session_id: session, character: 'bob', message })).body.reply as string;
  t.equal(await say('s1', 'hello'), 'Welcome, friend.');
  t.equal(await say('s1', 'you fool'), 'Hmph.');
  t.equal(await say('s1', 'hello'), 'I do not trust you.', 'trust 0.4 now meets "trust < 0.5"');
  t.equal(await say('s2', 'hello'), 'Welcome, friend.', 'another session keeps its own persona');
  t.equal(await say('s1', 'sorry'), 'Fine.');
  t.equal(await say('s1', 'hello'), 'Welcome, friend.');
  t.same((await server.engine.find('s1'))!.data.traits, { bob: { trust: 0.9 } }, '0.4 + 0.5 = 0.9, stored with the session');
  await say('s1', 'sorry');
  t.same((await server.engine.find('s1'))!.data.traits, { bob: { trust: 1 } }, 'clamped to the trait\'s bound 1');
  await say('s1', 'you fool');
  await say('s1', 'you fool');
  await say('s1', 'you fool');
  await say('s1', 'you fool');
  t.same((await server.engine.find('s1'))!.data.traits, { bob: { trust: 0 } }, 'and to 0');
});

t.test('the prompt describes the persona, and the changed traits go with the state', async (t) => {
  const { character } = parseCharacterScript(SCRIPT, '/x/bob.yaml');
  const ctx = { UserInput: '', CharacterName: 'Bob', UserName: 'User', State: 'default', PreviousState: 'default', Turn: '1' };
  const p = buildPrompt({ character: character!, state: 'default', traits: { trust: 0.4 }, history: [], userText: 'hi', context: ctx });
  t.match(p.messages[0]!.content, /Persona: .*Trust: 0\.70/);
  t.match(p.messages[0]!.content, /withdraw/);
  t.match(p.messages.at(-2)!.content, /Bob's current state: default\. Persona now: trust 0\.40\./);
  const plain = buildPrompt({ character: character!, state: 'default', history: [], userText: 'hi', context: ctx });
  t.equal(plain.messages[0]!.content, p.messages[0]!.content, 'the system message does not change with the traits (prompt caches)');
});
