/**
 * Hot reload against a real server: files edited, broken, added and removed
 * in its characters folder, also while clients chat.
 */
import t, { type Test } from 'tap';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { getJson, testServer } from '../helpers/server.js';
import { TestClient } from '../helpers/ws-client.js';

const script = (greeting: string, reply = '{{.UserInput}}') =>
  `id: echo\nname: Echo\ngreeting: ${JSON.stringify(greeting)}\nexamples:\n  - I repeat what I hear.\ntriggers:\n  - on_regex: "."\n    respond: ${JSON.stringify(reply)}\n`;
// Line 8, column 17 holds the bad template field.
const broken = `id: echo\nname: Echo\ngreeting: "broken"\nexamples:\n  - I repeat what I hear.\ntriggers:\n  - on_regex: "."\n    respond: "{{.Nope}}"\n`;

function folder(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-reload-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'echo.yaml'), script('v1'));
  return dir;
}

/** Writes like an editor or deploy tool: a temporary file renamed over the old one. */
function replace(dir: string, name: string, text: string): void {
  const tmp = join(dir, `.${name}.tmp`);
  writeFileSync(tmp, text);
  renameSync(tmp, join(dir, name));
}

async function until<T>(what: string, f: () => Promise<T | undefined>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

t.test('edit, break, fix, add and remove character files while serving', async (t) => {
  const dir = folder(t);
  const { http, server } = await testServer(t, { characters: dir, watch: true });
  const greeting = async () => (await getJson(`${http}/v1/characters/echo`)).body;
  t.equal((await greeting()).greeting, 'v1');

  replace(dir, 'echo.yaml', script('v2'));
  await until('v2', async () => ((await greeting()).greeting === 'v2' ? true : undefined));
  t.pass('an edit is served without a restart');

  writeFileSync(join(dir, 'echo.yaml'), broken);
  const failed = await until('the failure', async () => {
    const b = await greeting();
    return b.load_error ? b : undefined;
  });
  t.equal(failed.greeting, 'v2', 'the last good version keeps serving');
  t.match(failed.load_error, { file: 'echo.yaml', issues: [{ file: 'echo.yaml', line: 8, column: 17 }] });
  t.match(failed.load_error.issues[0].message, /Nope/);
  const list = (await getJson(`${http}/v1/characters`)).body;
  t.match(list.failures, [{ file: 'echo.yaml' }]);
  const metrics = await server.metrics.registry.metrics();
  t.match(metrics, /npcd_character_reloads_total\{result="failed"\} [1-9]/);

  writeFileSync(join(dir, 'echo.yaml'), script('v3'));
  await until('v3', async () => ((await greeting()).greeting === 'v3' ? true : undefined));
  t.equal((await greeting()).load_error, undefined, 'the error is gone once the file is fixed');

  writeFileSync(join(dir, 'second.yaml'), script('hello').replace('id: echo', 'id: second').replace('name: Echo', 'name: Second'));
  await until('second', async () => ((await getJson(`${http}/v1/characters/second`)).status === 200 ? true : undefined));
  t.equal(server.registry.size, 2, 'a new file appears');
  rmSync(join(dir, 'second.yaml'));
  await until('second gone', async () => ((await getJson(`${http}/v1/characters/second`)).status === 404 ? true : undefined));
  t.equal(server.registry.size, 1, 'a deleted file disappears');
  t.match(await server.metrics.registry.metrics(), /npcd_character_reloads_total\{result="removed"\} 1/);
});

t.test('many reloads, good and bad, while clients chat: no request fails', async (t) => {
  const dir = folder(t);
  const { ws, server } = await testServer(t, { characters: dir, watch: true });
  const clients = await Promise.all(Array.from({ length: 8 }, () => TestClient.connect(ws)));
  t.teardown(() => Promise.all(clients.map((c) => c.close())));
  for (const c of clients) await c.hello();
  let stop = false;
  let turns = 0;
  const chatters = clients.map(async (c, i) => {
    for (let n = 0; !stop; n++) {
      const done = await c.chat(`m${i}-${n}`, 'echo', `hello ${i} ${n}`);
      // Each turn sees one consistent version: the reply is the message (v*) or "x<message>" (w*).
      if (!/^x?hello \d+ \d+$/.test(done.text)) throw new Error(`inconsistent reply ${JSON.stringify(done.text)}`);
      turns++;
    }
  });
  const file = join(dir, 'echo.yaml');
  let reloads = 0;
  for (let k = 0; k < 30; k++) {
    // Each write is waited for, so every version (and every failure) is really swapped in while the chats go on.
    if (k % 3 === 2) {
      writeFileSync(file, broken);
      await until(`failure ${k}`, async () => (server.registry.failures.has(file) ? true : undefined));
    } else {
      replace(dir, 'echo.yaml', k % 2 ? script(`v${k}`) : script(`w${k}`, 'x{{.UserInput}}'));
      await until(`version ${k}`, async () => (server.registry.get('echo')?.greeting.endsWith(String(k)) && !server.registry.failures.has(file) ? true : undefined));
    }
    reloads++;
  }
  writeFileSync(join(dir, 'echo.yaml'), script('final'));
  await until('final', async () => (server.registry.get('echo')?.greeting === 'final' ? true : undefined));
  stop = true;
  await Promise.all(chatters);
  const errors = clients.flatMap((c) => c.frames.filter((f) => f.t === 'error'));
  t.same(errors, [], 'no error frame');
  t.ok(turns > 100, `${turns} turns during ${reloads} reloads`);
  const m = await server.metrics.registry.metrics();
  t.match(m, /npcd_character_reloads_total\{result="loaded"\} [1-9]/);
  t.match(m, /npcd_character_reloads_total\{result="failed"\} [1-9]/);
});

t.test('a lorebook file in the folder reloads the scripts that use it', async (t) => {
  const dir = folder(t);
  const book = (content: string) => JSON.stringify({ entries: { 0: { uid: 0, key: ['lantern'], content } } });
  writeFileSync(join(dir, 'lore.json'), book('The lantern is blue.'));
  writeFileSync(join(dir, 'echo.yaml'), script('v1') + 'lorebooks: [lore.json]\n');
  const { server } = await testServer(t, { characters: dir, watch: true });
  await until('lorebook loaded', async () => (server.registry.get('echo')?.lorebooks.length === 1 ? true : undefined));
  t.equal(server.registry.get('echo')!.lorebooks[0]!.entries[0]!.content, 'The lantern is blue.');
  replace(dir, 'lore.json', book('The lantern is red.'));
  await until('new lore', async () => (server.registry.get('echo')?.lorebooks[0]?.entries[0]?.content === 'The lantern is red.' ? true : undefined));
  t.pass('the script was rebuilt with the new lorebook');
  rmSync(join(dir, 'lore.json'));
  await until('failure', async () => (server.registry.failures.has(join(dir, 'echo.yaml')) ? true : undefined));
  t.equal(server.registry.get('echo')?.lorebooks[0]?.entries[0]?.content, 'The lantern is red.', 'a missing lorebook keeps the last good version');
  writeFileSync(join(dir, 'lore.json'), book('The lantern is green.'));
  await until('back', async () => (server.registry.get('echo')?.lorebooks[0]?.entries[0]?.content === 'The lantern is green.' ? true : undefined));
  t.notOk(server.registry.failures.has(join(dir, 'echo.yaml')), 'the failed script loads once its lorebook is back');
});

t.test('a renamed file keeps its character; a file refused as a duplicate loads once the other is gone', async (t) => {
  const dir = folder(t);
  // No id: it comes from the file name, and the name stays the same across the rename.
  writeFileSync(join(dir, 'wanderer.yaml'), script('hello').replace('id: echo\n', '').replace('name: Echo', 'name: Wanderer'));
  const { http } = await testServer(t, { characters: dir, watch: true });
  const byName = async () => (await getJson(`${http}/v1/characters/Wanderer`)).body;
  t.equal((await byName()).id, 'wanderer');
  renameSync(join(dir, 'wanderer.yaml'), join(dir, 'wanderer-2.yaml'));
  const moved = await until('the renamed file to serve', async () => {
    const b = await byName();
    return b.id === 'wanderer-2' ? b : undefined;
  });
  t.equal(moved.greeting, 'hello', 'served from the new file name');
  t.same((await getJson(`${http}/v1/characters`)).body.failures, [], 'no failure left behind');

  // A second file with echo's id is refused while echo.yaml holds it…
  writeFileSync(join(dir, 'copy.yaml'), script('from the copy'));
  await until('the duplicate refused', async () => ((await getJson(`${http}/v1/characters`)).body.failures.length > 0 ? true : undefined));
  t.equal((await getJson(`${http}/v1/characters/echo`)).body.greeting, 'v1');
  // …and takes over when echo.yaml is deleted.
  rmSync(join(dir, 'echo.yaml'));
  await until('the copy to serve', async () => ((await getJson(`${http}/v1/characters/echo`)).body.greeting === 'from the copy' ? true : undefined));
  t.same((await getJson(`${http}/v1/characters`)).body.failures, []);
});
