import t from 'tap';
import { getJson, parseSse, postJson, testServer } from '../helpers/server.js';

const CURL_BODY = { session_id: 'sess_abc123', character: '古风剑客', message: '天色已晚，你为何独坐山崖？' };

t.test('POST /v1/chat answers in character as JSON', async (t) => {
  const { http } = await testServer(t);
  const res = await postJson(`${http}/v1/chat`, CURL_BODY);
  t.equal(res.status, 200);
  t.equal(res.headers.get('x-session-id'), 'sess_abc123');
  t.match(res.body, { session_id: 'sess_abc123', character: 'gufeng-jianke', state: 'calm', finish: 'stop', reply: String, seq: Number });
  t.ok(res.body.reply.length > 4, `reply: ${res.body.reply}`);
  t.match(res.body.reply, /[\u4e00-\u9fff]/, 'answers in Chinese, in the character\'s voice');
  t.match(res.body.usage, { prompt_tokens: Number, completion_tokens: Number });

  // The seed trigger: mentioning the character.
  const mention = await postJson(`${http}/v1/chat`, { ...CURL_BODY, message: '  古风剑客，请赐教  ' });
  t.equal(mention.body.reply, '古风剑客，请赐教 → 古风剑客微笑点头');
  t.ok(mention.body.seq > res.body.seq, 'seq grows across turns of the session');

  // curl -d sends application/x-www-form-urlencoded; the body is still JSON.
  const form = await fetch(`${http}/v1/chat`, { method: 'POST', body: JSON.stringify(CURL_BODY), headers: { 'content-type': 'application/x-www-form-urlencoded' } });
  t.equal(form.status, 200);

  const history = await getJson(`${http}/v1/sessions/sess_abc123/messages`);
  t.equal(history.status, 200);
  t.equal(history.body.total, 6);
  t.same(history.body.messages.map((m: { role: string }) => m.role), ['user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
  t.equal(history.body.messages[3].text, mention.body.reply);
  const page = await getJson(`${http}/v1/sessions/sess_abc123/messages?offset=2&limit=2`);
  t.equal(page.body.messages.length, 2);
  t.equal(page.body.messages[0].text, '  古风剑客，请赐教  ');
  t.equal((await getJson(`${http}/v1/sessions/sess_abc123/messages?limit=0`)).body.error.code, 'ERR_PROTOCOL_INVALID_FIELD');
  for (const bad of ['0x10', '%205', '5e0', '1.0', '-1', '+3']) {
    t.equal((await getJson(`${http}/v1/sessions/sess_abc123/messages?limit=${bad}`)).body.error?.code, 'ERR_PROTOCOL_INVALID_FIELD', `limit=${bad}`);
  }

  const session = await getJson(`${http}/v1/sessions/sess_abc123`);
  t.match(session.body, { session_id: 'sess_abc123', user_turns: 3, messages: 6, generating: null, connected: false, states: { 'gufeng-jianke': 'calm' } });
});

t.test('a session id is made up when none is given', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 3 });
  const res = await postJson(`${http}/v1/chat`, { character: 'station-ai', message: 'hello' });
  t.equal(res.status, 200);
  t.match(res.body.session_id, /^sess_/);
  t.equal(res.headers.get('x-session-id'), res.body.session_id);
  t.equal(res.body.reply, 'the lantern swings');
});

for (const how of ['stream flag', 'Accept header'] as const) {
  t.test(`POST /v1/chat streams SSE (${how})`, async (t) => {
    const { http } = await testServer(t, { model: 'mock', mockTokens: 4, mockTokenDelayMs: 5 });
    const body = how === 'stream flag' ? { ...CURL_BODY, stream: true } : CURL_BODY;
    const headers: Record<string, string> = how === 'Accept header' ? { accept: 'text/event-stream' } : {};
    const res = await postJson(`${http}/v1/chat`, body, headers);
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/event-stream/);
    t.equal(res.headers.get('x-session-id'), 'sess_abc123');
    const events = parseSse(res.body);
    t.same(events.map((e) => e.event), ['start', 'token', 'token', 'token', 'token', 'done']);
    t.same(events.map((e) => e.id), [1, 2, 3, 4, 5, 6], 'SSE ids are the stream seqs');
    t.same(events.map((e) => e.data.seq), [1, 2, 3, 4, 5, 6]);
    t.equal(events.at(-1)!.data.text, events.filter((e) => e.event === 'token').map((e) => e.data.text).join(''));
  });
}

t.test('SSE reports a refused turn as an HTTP error', async (t) => {
  const { http } = await testServer(t);
  const res = await postJson(`${http}/v1/chat`, { ...CURL_BODY, character: 'nobody', stream: true });
  t.equal(res.status, 404);
  t.equal(res.body.error.code, 'ERR_CHARACTER_NOT_FOUND');
});

t.test('an HTTP client that goes away does not stop the reply', async (t) => {
  const { http, server } = await testServer(t, { model: 'mock', mockTokens: 20, mockTokenDelayMs: 10 });
  const ac = new AbortController();
  const res = await fetch(`${http}/v1/chat`, { method: 'POST', body: JSON.stringify({ ...CURL_BODY, stream: true }), signal: ac.signal });
  const reader = res.body!.getReader();
  await reader.read();
  ac.abort();
  await new Promise((r) => setTimeout(r, 400));
  const history = await getJson(`${http}/v1/sessions/sess_abc123/messages`);
  t.equal(history.body.messages.length, 2, 'the reply finished and was kept');
  t.equal(history.body.messages[1].finish, 'stop');
  t.equal(server.engine.activeGenerations, 0);
});

t.test('bad requests get their error codes', async (t) => {
  const { http } = await testServer(t, { maxBodyBytes: 1024, maxMessageChars: 100 });
  const cases: [string, unknown, number, string][] = [
    ['not JSON', '{"session_id": ', 400, 'ERR_PROTOCOL_MALFORMED'],
    ['not an object', '[1,2]', 400, 'ERR_PROTOCOL_INVALID_FRAME'],
    ['missing character', { message: 'hi' }, 400, 'ERR_PROTOCOL_MISSING_FIELD'],
    ['missing message', { character: '古风剑客' }, 400, 'ERR_PROTOCOL_MISSING_FIELD'],
    ['message not a string', { character: '古风剑客', message: 5 }, 400, 'ERR_PROTOCOL_INVALID_FIELD'],
    ['bad session id', { session_id: '../../etc', character: '古风剑客', message: 'hi' }, 400, 'ERR_PROTOCOL_INVALID_FIELD'],
    ['stream not boolean', { character: '古风剑客', message: 'hi', stream: 'yes' }, 400, 'ERR_PROTOCOL_INVALID_FIELD'],
    ['message too long', { character: '古风剑客', message: 'x'.repeat(101) }, 413, 'ERR_CHAT_TEXT_TOO_LONG'],
    ['unknown character', { character: 'Nobody', message: 'hi' }, 404, 'ERR_CHARACTER_NOT_FOUND'],
    ['body too large', { character: '古风剑客', message: 'x'.repeat(2000) }, 413, 'ERR_HTTP_BODY_TOO_LARGE'],
  ];
  for (const [what, body, status, code] of cases) {
    const res = await postJson(`${http}/v1/chat`, body);
    t.equal(res.status, status, `${what}: status`);
    t.equal(res.body?.error?.code, code, `${what}: ${code}`);
    t.type(res.body?.error?.message, 'string');
  }
  // A body without Content-Length (chunked) is limited while it arrives.
  const chunked = await fetch(`${http}/v1/chat`, {
    method: 'POST',
    body: new ReadableStream({
      start(c) {
        for (let i = 0; i < 8; i++) c.enqueue(new TextEncoder().encode('x'.repeat(512)));
        c.close();
      },
    }),
    duplex: 'half',
  } as RequestInit);
  t.equal(chunked.status, 413);
  t.equal(((await chunked.json()) as { error: { code: string } }).error.code, 'ERR_HTTP_BODY_TOO_LARGE');
  // The server is fine afterwards.
  t.equal((await postJson(`${http}/v1/chat`, { character: '古风剑客', message: 'hi' })).status, 200);
});

t.test('routes, methods and lookups', async (t) => {
  const { http } = await testServer(t);
  const chars = await getJson(`${http}/v1/characters`);
  t.equal(chars.status, 200);
  t.same(chars.body.characters.map((c: { id: string }) => c.id), ['gufeng-jianke', 'station-ai', 'tavern-keeper']);
  for (const ref of ['gufeng-jianke', encodeURIComponent('古风剑客'), 'mara%20quill']) {
    const one = await getJson(`${http}/v1/characters/${ref}`);
    t.equal(one.status, 200, `character by ${ref}`);
    t.ok(one.body.triggers.length > 0);
  }
  t.equal((await getJson(`${http}/v1/characters/nobody`)).body.error.code, 'ERR_CHARACTER_NOT_FOUND');
  t.equal((await getJson(`${http}/v1/sessions/nope`)).status, 404);
  t.equal((await getJson(`${http}/v1/sessions/nope`)).body.error.code, 'ERR_SESSION_NOT_FOUND');
  t.equal((await getJson(`${http}/v1/sessions/nope/messages`)).body.error.code, 'ERR_SESSION_NOT_FOUND');
  const missing = await getJson(`${http}/v1/nothing-here`);
  t.equal(missing.status, 404);
  t.equal(missing.body.error.code, 'ERR_HTTP_NOT_FOUND');
  const put = await fetch(`${http}/v1/chat`, { method: 'PUT', body: '{}' });
  t.equal(put.status, 405);
  t.equal(put.headers.get('allow'), 'POST');
  t.equal(((await put.json()) as { error: { code: string } }).error.code, 'ERR_HTTP_METHOD_NOT_ALLOWED');
  const getChat = await getJson(`${http}/v1/chat`);
  t.equal(getChat.status, 405);
  const ws = await getJson(`${http}/v1/ws`);
  t.equal(ws.status, 426);
  t.equal(ws.body.error.code, 'ERR_HTTP_UPGRADE_REQUIRED');
  const postWs = await postJson(`${http}/v1/ws`, {});
  t.equal(postWs.status, 405, 'the WebSocket path is known: another method is 405, not 404');
  t.equal(postWs.headers.get('allow'), 'GET');
  t.equal(postWs.body.error.code, 'ERR_HTTP_METHOD_NOT_ALLOWED');
  t.same((await getJson(`${http}/healthz`)).body, { status: 'ok' });
  const ready = await getJson(`${http}/readyz`);
  t.equal(ready.status, 200);
  t.match(ready.body, { status: 'ready', characters: 3, provider: 'script' });
});

t.test('API keys', async (t) => {
  const { http, ws } = await testServer(t, { apiKeys: ['k-one', 'k-two'], model: 'mock', mockTokens: 2 });
  const body = { character: '古风剑客', message: 'hi' };
  const none = await postJson(`${http}/v1/chat`, body);
  t.equal(none.status, 401);
  t.equal(none.body.error.code, 'ERR_AUTH_REQUIRED');
  const wrong = await postJson(`${http}/v1/chat`, body, { authorization: 'Bearer nope' });
  t.equal(wrong.body.error.code, 'ERR_AUTH_INVALID');
  t.equal((await postJson(`${http}/v1/chat`, body, { authorization: 'Bearer k-two' })).status, 200);
  t.equal((await getJson(`${http}/v1/characters`)).status, 401);
  t.equal((await getJson(`${http}/healthz`)).status, 200, 'health, readiness and metrics stay open');
  t.equal((await getJson(`${http}/metrics`)).status, 200);

  const { TestClient } = await import('../helpers/ws-client.js');
  const bad = await TestClient.connect(ws);
  const err = await bad.hello({ token: 'nope' });
  t.equal(err.code, 'ERR_AUTH_INVALID');
  await bad.closed();
  t.equal(bad.closeCode, 4401);
  const good = await TestClient.connect(ws);
  t.teardown(() => good.close());
  t.equal((await good.hello({ token: 'k-one' })).t, 'welcome');
});
