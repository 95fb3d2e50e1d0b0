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

function character(t: Test) {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-client-prompt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'seraphina.yaml');
  const text = `name: Seraphina\ngreeting: Welcome, {{user}}.\nlorebooks:\n  - ${JSON.stringify(WORLD_INFO)}\n`;
  writeFileSync(file, text);
  return parseCharacterScript(text, file, { readFile: readReferencedFile }).character!;
}

const HISTORY: Turn[] = [
  { id: 'm1', role: 'user', character: 'seraphina', text: 'session history, not sent', at: 0, tokens: 5 },
  { id: 'm1', role: 'assistant', character: 'seraphina', text: 'also not sent', at: 0, tokens: 3 },
];

t.test("the client's messages replace greeting and history, in their order", async (t) => {
  const c = character(t);
  const client = {
    before: [
      { role: 'system' as const, content: 'card description {{char}}' },
      { role: 'user' as const, content: 'hi', name: 'Ann' },
      { role: 'system' as const, content: "author's note" },
    ],
    after: [{ role: 'assistant' as const, content: 'Well,' }],
    userName: 'Ann',
  };
  const p = buildPrompt({ character: c, state: 'default', history: HISTORY, userText: 'and now?', context: ctx, client });
  const m = p.messages;
  t.equal(m[0]!.role, 'system');
  t.match(m[0]!.content, /Seraphina/, "npcd's system prompt first");
  t.same(m.slice(1, 4), client.before, 'client messages as they are (not rendered as templates)');
  t.match(m[4], { role: 'system', content: /current state: default/ });
  t.same(m[5], { role: 'user', content: 'and now?', name: 'Ann' });
  t.same(m.slice(6), client.after, 'messages after the turn come last');
  t.equal(m.length, 7, 'no greeting, no session history');
  t.notOk(m.some((x) => x.content.includes('not sent')));
  const without = buildPrompt({ character: c, state: 'default', history: [], userText: 'and now?', context: ctx, client: { before: [], after: [] } });
  t.ok(p.tokens > without.tokens, "the client's messages count toward the prompt size");
});

t.test("lore scans the client's messages, not the session's history", async (t) => {
  const c = character(t);
  const eldoria = buildPrompt({ character: c, state: 'default', history: [], userText: 'go on', context: ctx, client: { before: [{ role: 'user', content: 'Tell me about Eldoria.' }], after: [] } });
  const lore = eldoria.messages.find((x) => x.content.startsWith('World info:'));
  t.ok(lore);
  t.same(eldoria.messages.slice(-3).map((x) => x.role), ['system', 'system', 'user'], 'lore, then state, then the message');
  const history: Turn[] = [{ id: 'h', role: 'user', character: c.id, text: 'Tell me about Eldoria.', at: 0, tokens: 6 }];
  const none = buildPrompt({ character: c, state: 'default', history, userText: 'go on', context: ctx, client: { before: [{ role: 'system', content: 'Eldoria' }], after: [] } });
  t.notOk(none.messages.some((x) => x.content.startsWith('World info:')), 'system messages and the session history do not activate lore');
});
