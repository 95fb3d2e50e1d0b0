import t, { type Test } from 'tap';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readReferencedFile } from '../../src/characters/registry.js';
import { parseCharacterScript } from '../../src/characters/script.js';
import { buildPrompt } from '../../src/dialogue/prompt.js';
import type { Turn } from '../../src/session/types.js';
import { sharedFixture } from '../helpers/fixtures.js';

const WORLD_INFO = sharedFixture('cards/eldoria.lorebook.json');
const ctx = { UserInput: '', CharacterName: 'Seraphina', UserName: 'Ann', State: 'calm', PreviousState: 'calm', Turn: '1' };

function script(t: Test, lorebook: string) {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-lore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'seraphina.yaml');
  const text = `name: Seraphina\nlorebooks:\n  - ${JSON.stringify(lorebook)}\ntriggers:\n  - on_keyword: [zzz]\n    respond: ok\n`;
  writeFileSync(file, text);
  return parseCharacterScript(text, file, { readFile: readReferencedFile });
}

t.test('a script names a World Info file; the prompt carries what the conversation activates', async (t) => {
  const { character, issues } = script(t, WORLD_INFO);
  t.same(issues, []);
  t.equal(character!.lorebooks.length, 1);
  t.same(character!.lorebookFiles, [WORLD_INFO]);
  const history: Turn[] = [];
  const p1 = buildPrompt({ character: character!, state: 'default', history, userText: 'What is Eldoria?', context: ctx });
  const lore = p1.messages.find((m) => m.content.startsWith('World info:'));
  t.ok(lore, 'a lore message');
  t.match(lore!.content, /Eldoria is here, all of the woods/);
  t.notMatch(lore!.content, /\{\{char\}\}|\{\{user\}\}/, 'macros rendered');
  t.match(lore!.content, /Seraphina/);
  const roles = p1.messages.map((m) => m.role);
  t.same(roles.slice(-3), ['system', 'system', 'user'], 'lore, then the state line, then the message');
  const p2 = buildPrompt({ character: character!, state: 'default', history, userText: 'What is Eldoria?', context: ctx });
  t.equal(p2.messages.find((m) => m.content.startsWith('World info:'))!.content, lore!.content, 'the same conversation gives byte-identical lore');
  const none = buildPrompt({ character: character!, state: 'default', history, userText: 'hello there', context: ctx });
  t.notOk(none.messages.some((m) => m.content.startsWith('World info:')), 'nothing activated, no lore message');
  t.ok(p1.tokens > none.tokens, 'lore counts toward the prompt size');
});

t.test('a missing or broken lorebook is a problem of the script, with its line', async (t) => {
  const missing = script(t, 'nope.json');
  t.equal(missing.character, undefined);
  t.match(missing.issues, [{ line: 3, message: /lorebook "nope.json": ENOENT/ }]);
  const dir = mkdtempSync(join(tmpdir(), 'npcd-lore-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, JSON.stringify({ entries: { 0: { uid: 0, key: ['/(a+)+$/'], content: 'x' } } }));
  const unsafe = script(t, bad);
  t.equal(unsafe.character, undefined);
  t.match(unsafe.issues[0]?.message, /lorebook .*\$\.entries.*key/);
  t.equal(parseCharacterScript('name: X\nlorebooks: [a.json]\n', '/x/x.yaml').issues[0]?.message, 'lorebook "a.json": this reader cannot open files', 'parsing itself does no I/O');
});

t.test('lore mentioned a few messages back still activates: the message and the latest 7 are scanned', async (t) => {
  const { character } = script(t, WORLD_INFO);
  const turn = (role: 'user' | 'assistant', text: string, i: number): Turn => ({ id: `m${i}`, role, character: character!.id, text, at: i, tokens: 5 });
  const history: Turn[] = [
    turn('user', 'What is Eldoria?', 1),
    turn('assistant', 'A forest.', 2),
    turn('user', 'and then?', 3),
    turn('assistant', 'Nothing more.', 4),
  ];
  const lore = (h: Turn[]) => buildPrompt({ character: character!, state: 'default', history: h, userText: 'go on', context: ctx }).messages.find((m) => m.content.startsWith('World info:'));
  t.match(lore(history)?.content, /Eldoria is here/, 'four messages back');
  const longAgo = [turn('user', 'What is Eldoria?', 0), ...Array.from({ length: 7 }, (_, i) => turn(i % 2 ? 'user' : 'assistant', 'mm', i + 1))];
  t.equal(lore(longAgo), undefined, 'eight messages back is out of reach');
});

t.test('lore content renders {{char}} and {{user}} in any case, and the older <BOT> and <USER>', async (t) => {
  const dir = t.testdir({
    'book.json': JSON.stringify({ entries: { 0: { uid: 0, key: ['lantern'], content: '{{Char}} and {{ USER }} share the lantern; <BOT> lit it for <user>. {{char}}.' } } }),
  });
  const { character, issues } = script(t, join(dir, 'book.json'));
  t.same(issues, []);
  const p = buildPrompt({ character: character!, state: 'default', history: [], userText: 'the lantern?', context: ctx });
  const lore = p.messages.find((m) => m.content.startsWith('World info:'))!;
  t.match(lore.content, 'Seraphina and Ann share the lantern; Seraphina lit it for Ann. Seraphina.');
});
