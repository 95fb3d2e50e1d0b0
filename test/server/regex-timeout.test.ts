/**
 * Patterns from character files that backtrack catastrophically (shapes
 * checkRegex lets through) cost a turn at most --regex-timeout: the turn goes
 * on without them, and they are counted and disabled.
 */
import t from 'tap';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getJson, postJson, testServer } from '../helpers/server.js';

const BUNDLED = fileURLToPath(new URL('../../characters', import.meta.url));
/** About 2^30 ways to fail on 29 repeats of the letter and a "!". */
const trap = (letter: string) => `(?:${letter}|${letter}){10}(?:${letter}|${letter}){10}(?:${letter}|${letter}){10}$`;

async function timeouts(http: string): Promise<number> {
  const text = (await getJson(`${http}/metrics`)).body as string;
  return Number(/^npcd_regex_timeouts_total (\d+)$/m.exec(text)?.[1]);
}

t.test('a trigger regex and a lorebook regex key that backtrack without end are cut off, counted and disabled', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-regex-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  cpSync(BUNDLED, dir, { recursive: true });
  writeFileSync(join(dir, 'trap-lore.json'), JSON.stringify({ entries: { 0: { uid: 0, key: [`/${trap('b')}/`], content: 'The trap lore.' } } }));
  writeFileSync(
    join(dir, 'trap.yaml'),
    ['id: trap', 'name: Trap', 'lorebooks: [trap-lore.json]', 'triggers:', `  - on_regex: "${trap('c')}"`, '    respond: caught', '  - on_keyword: hello', '    respond: hi'].join('\n') + '\n',
  );
  const { http } = await testServer(t, { characters: dir, watch: true, regexTimeoutMs: 100 });
  t.equal(await timeouts(http), 0);
  const chat = (message: string) => postJson(`${http}/v1/chat`, { session_id: 'regex-trap', character: 'trap', message });
  const first = await chat(`hello ${'c'.repeat(29)}!`);
  t.equal(first.status, 200, JSON.stringify(first.body));
  t.equal(first.body.reply, 'hi', 'the trigger regex counts as not matching; the next trigger answers');
  t.equal(await timeouts(http), 1);
  const second = await chat(`hello ${'b'.repeat(29)}!`);
  t.equal(second.status, 200, JSON.stringify(second.body));
  t.equal(await timeouts(http), 2, 'the lorebook key too');
  const third = await chat(`hello ${'c'.repeat(29)}! ${'b'.repeat(29)}!`);
  t.equal(third.status, 200);
  t.equal(await timeouts(http), 2, 'disabled patterns do not run again');
});
