/** Profiling routes: GET /debug/profile (V8 CPU profile) and GET /debug/heap (heap snapshot), admin keys only. */
import t from 'tap';
import { readdirSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { getJson, postJson, testServer } from '../helpers/server.js';

const KEY = 'pr0f';
const AUTH = { authorization: `Bearer ${KEY}` };

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string; lineNumber: number }; children?: number[] }[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Chat turns over HTTP until `stop` says so; resolves with how many completed. */
async function chatUntil(http: string, stop: () => boolean): Promise<number> {
  let n = 0;
  while (!stop()) {
    const r = await postJson(`${http}/v1/chat`, { session_id: `prof${n % 4}`, character: 'gufeng-jianke', message: `第${n}回：天色已晚，你为何独坐山崖？` });
    if (r.status !== 200) throw new Error(`chat answered ${r.status}: ${JSON.stringify(r.body)}`);
    n++;
  }
  return n;
}

/** Asks for a one-second profile until one is taken (the slot may still be held): the last status, 200 once it was. */
async function profileOnceFree(http: string, tries: number): Promise<number> {
  let status = 0;
  for (let i = 0; i < tries && status !== 200; i++) {
    await new Promise((r) => setTimeout(r, 20));
    const r = await fetch(`${http}/debug/profile?seconds=1`, { headers: AUTH });
    status = r.status;
    await r.arrayBuffer();
  }
  return status;
}

t.test('the routes need an admin key, and are off without --admin-keys', async (t) => {
  const off = await testServer(t, { apiKeys: ['user'] });
  for (const path of ['/debug/profile?seconds=1', '/debug/heap']) {
    t.match(await getJson(`${off.http}${path}`, { authorization: 'Bearer user' }), { status: 403, body: { error: { code: 'ERR_ADMIN_DISABLED' } } }, `${path} off`);
  }
  const on = await testServer(t, { adminKeys: [KEY], apiKeys: ['user'] });
  for (const path of ['/debug/profile?seconds=1', '/debug/heap']) {
    t.match(await getJson(`${on.http}${path}`), { status: 401, body: { error: { code: 'ERR_AUTH_REQUIRED' } } }, `${path} without a key`);
    t.match(await getJson(`${on.http}${path}`, { authorization: 'Bearer user' }), { status: 401, body: { error: { code: 'ERR_AUTH_INVALID' } } }, `${path}: an API key is not an admin key`);
    t.match(await getJson(`${on.http}${path}`, { authorization: 'Bearer nope' }), { status: 401, body: { error: { code: 'ERR_AUTH_INVALID' } } }, `${path} with a wrong key`);
  }
  t.match(await postJson(`${on.http}/debug/profile`, {}, AUTH), { status: 405, body: { error: { code: 'ERR_HTTP_METHOD_NOT_ALLOWED' } } });
});

t.test('seconds must be an integer from 1 to --profile-max-seconds', async (t) => {
  const { http } = await testServer(t, { adminKeys: [KEY], profileMaxSeconds: 5 });
  for (const bad of ['0', '6', '-1', '1.5', 'abc', '1e3']) {
    t.match(await getJson(`${http}/debug/profile?seconds=${bad}`, AUTH), { status: 400, body: { error: { code: 'ERR_PROTOCOL_INVALID_FIELD', field: 'seconds', message: /from 1 to 5/ } } }, `seconds=${bad}`);
  }
});

t.test('a 1-second CPU profile under chat turns is a .cpuprofile with npcd frames', async (t) => {
  const { http } = await testServer(t, { adminKeys: [KEY], model: 'mock', mockTokens: 32 });
  let done = false;
  const load = chatUntil(http, () => done);
  const started = performance.now();
  const res = await fetch(`${http}/debug/profile?seconds=1`, { headers: AUTH });
  const elapsed = performance.now() - started;
  done = true;
  const turns = await load;
  t.equal(res.status, 200);
  t.match(res.headers.get('content-disposition'), /^attachment; filename="npcd-.*\.cpuprofile"$/);
  t.ok(elapsed >= 1000 && elapsed < 5000, `took about a second (${Math.round(elapsed)} ms)`);
  t.ok(turns >= 5, `the event loop kept serving chat turns during the profile (${turns})`);

  const profile = (await res.json()) as CpuProfile;
  t.ok(Array.isArray(profile.nodes) && profile.nodes.length > 10, 'nodes');
  t.ok(profile.samples.length > 0 && profile.samples.length === profile.timeDeltas.length, 'samples and timeDeltas');
  t.ok(profile.startTime < profile.endTime, 'startTime < endTime');
  const span = (profile.endTime - profile.startTime) / 1e6;
  t.ok(span >= 0.9 && span < 3, `spans about a second (${span.toFixed(2)} s)`);
  const ids = new Set(profile.nodes.map((n) => n.id));
  t.ok(profile.samples.every((s) => ids.has(s)), 'every sample names a node');
  const ours = profile.nodes.filter((n) => /\/(src|dist)\/[\w/-]+\.(ts|js)$/.test(n.callFrame.url) && !n.callFrame.url.includes('node_modules'));
  const files = new Set(ours.map((n) => n.callFrame.url.replace(/^.*\/(src|dist)\//, '')));
  t.ok(files.size >= 3, `frames from npcd's own files: ${[...files].slice(0, 12).join(', ')}`);
  t.ok(ours.some((n) => n.callFrame.functionName !== ''), 'with function names');
});

t.test('one profile at a time; a client that goes away releases it', async (t) => {
  const { http } = await testServer(t, { adminKeys: [KEY] });
  const first = fetch(`${http}/debug/profile?seconds=2`, { headers: AUTH });
  await new Promise((r) => setTimeout(r, 200));
  t.match(await getJson(`${http}/debug/profile?seconds=1`, AUTH), { status: 409, body: { error: { code: 'ERR_PROFILE_BUSY' } } }, 'a second profile');
  t.match(await getJson(`${http}/debug/heap`, AUTH), { status: 409, body: { error: { code: 'ERR_PROFILE_BUSY' } } }, 'a heap snapshot meanwhile');
  t.equal((await first).status, 200, 'the first one finishes');

  // A client that disconnects mid-profile: the profile stops and the next one may start.
  const ac = new AbortController();
  const abandoned = fetch(`${http}/debug/profile?seconds=30`, { headers: AUTH, signal: ac.signal }).catch((e: Error) => e.name);
  await new Promise((r) => setTimeout(r, 300));
  ac.abort();
  t.equal(await abandoned, 'AbortError');
  t.equal(await profileOnceFree(http, 50), 200, 'a new profile starts after the abandoned one');
  t.equal((await getJson(`${http}/healthz`)).status, 200, 'and the server is fine');
});

t.test('a heap snapshot is V8 heap snapshot JSON, sent as an attachment', async (t) => {
  const { http } = await testServer(t, { adminKeys: [KEY], model: 'mock' });
  t.equal((await postJson(`${http}/v1/chat`, { session_id: 'heap1', character: 'gufeng-jianke', message: 'hi' })).status, 200);
  const res = await fetch(`${http}/debug/heap`, { headers: AUTH });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-disposition'), /^attachment; filename="npcd-.*\.heapsnapshot"$/);
  const text = await res.text();
  t.equal(Number(res.headers.get('content-length')), Buffer.byteLength(text), 'Content-Length is the whole snapshot');
  const snap = JSON.parse(text) as { snapshot: { meta: { node_fields: string[] }; node_count: number }; nodes: number[]; strings: string[] };
  t.ok(snap.snapshot.meta.node_fields.includes('name'), 'snapshot.meta');
  t.equal(snap.nodes.length, snap.snapshot.node_count * snap.snapshot.meta.node_fields.length, 'every node is there');
  t.ok(snap.strings.includes('SessionEngine'), 'npcd\'s classes are in it');
});

t.test('a heap snapshot reaches a client that reads slowly, whole (backpressure)', async (t) => {
  const { server } = await testServer(t, { adminKeys: [KEY] });
  const socket = connect(server.port, '127.0.0.1');
  t.teardown(() => socket.destroy());
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(`GET /debug/heap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\nConnection: close\r\n\r\n`);
  // Do not read for a while: npcd's send buffer fills, and it must wait for onWritable.
  socket.pause();
  await new Promise((r) => setTimeout(r, 1500));
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.resume();
  await new Promise<void>((resolve) => socket.once('end', resolve));
  const all = Buffer.concat(chunks);
  const headerEnd = all.indexOf('\r\n\r\n');
  const head = all.subarray(0, headerEnd).toString();
  t.match(head, /^HTTP\/1\.1 200 OK/);
  const length = Number(/content-length: (\d+)/i.exec(head)?.[1]);
  const body = all.subarray(headerEnd + 4);
  t.equal(body.length, length, `all ${length} bytes arrived`);
  t.ok(length > 1_000_000, 'larger than the socket buffers');
  t.ok(JSON.parse(body.toString()).snapshot.meta, 'and it parses');
});

t.test('a client that leaves mid-snapshot frees the slot and the temporary file', async (t) => {
  const { server, http } = await testServer(t, { adminKeys: [KEY] });
  const socket = connect(server.port, '127.0.0.1');
  await new Promise<void>((resolve) => socket.once('connect', resolve));
  socket.write(`GET /debug/heap HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${KEY}\r\n\r\n`);
  await new Promise<void>((resolve) => socket.once('data', () => resolve()));
  socket.destroy();
  t.equal(await profileOnceFree(http, 100), 200, 'the next profile runs');
  const left = readdirSync(tmpdir()).filter((f) => f.startsWith('npcd-heap-'));
  t.same(left, [], 'no snapshot left in the temporary folder');
});
