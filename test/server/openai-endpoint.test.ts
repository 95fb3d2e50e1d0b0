import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIError } from 'openai';
import { NpcdError } from '../../src/errors.js';
import { mockToken } from '../../src/providers/mock.js';
import type { GenerateRequest, GenerateResult, ModelProvider } from '../../src/providers/types.js';
import { getJson, postJson, testServer } from '../helpers/server.js';

const CHAR = 'station-ai';
/** A message no station-ai trigger answers: the reply comes from the provider. */
const PLAIN = 'What is for dinner tonight?';

function client(http: string, options: { apiKey?: string; headers?: Record<string, string> } = {}): OpenAI {
  return new OpenAI({ baseURL: `${http}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 10_000, defaultHeaders: options.headers });
}

/** The keys of an OpenAI error object, which must be exactly these. */
const ERROR_KEYS = ['code', 'message', 'param', 'type'];

/** Records every request the server makes of it, and answers with fixed pieces. */
class RecordingProvider implements ModelProvider {
  readonly name = 'mock';
  readonly description = 'records requests';
  readonly requests: GenerateRequest[] = [];
  constructor(private readonly pieces: string[] = ['All', ' quiet', '.']) {}
  async *generate(request: GenerateRequest): AsyncGenerator<string, GenerateResult, void> {
    this.requests.push({ ...request, messages: [...request.messages] });
    for (const p of this.pieces) yield p;
    return { finish: 'stop' };
  }
}

/** Fails with `error` after yielding `before` pieces. */
class FailingProvider implements ModelProvider {
  readonly name = 'mock';
  readonly description = 'fails';
  constructor(private readonly before: number, private readonly error: Error) {}
  async *generate(): AsyncGenerator<string, GenerateResult, void> {
    for (let i = 0; i < this.before; i++) yield mockToken(i);
    throw this.error;
  }
}

async function turnsCancelled(server: { metrics: { turns: { get(): Promise<{ values: { labels: Record<string, unknown>; value: number }[] }> } } }): Promise<number> {
  const m = await server.metrics.turns.get();
  return m.values.filter((v) => v.labels.outcome === 'cancelled').reduce((n, v) => n + v.value, 0);
}

t.test('GET /v1/models lists the characters as models (official client)', async (t) => {
  const { http } = await testServer(t);
  const openai = client(http);
  const models: OpenAI.Model[] = [];
  for await (const m of openai.models.list()) models.push(m);
  t.same(models.map((m) => m.id), ['gufeng-jianke', 'station-ai', 'tavern-keeper']);
  for (const m of models) t.match(m, { object: 'model', created: Number, owned_by: 'npcd' });
  const raw = await getJson(`${http}/v1/models`);
  t.equal(raw.body.object, 'list');

  t.match(await openai.models.retrieve('station-ai'), { id: 'station-ai', object: 'model', owned_by: 'npcd' });
  t.equal((await openai.models.retrieve('HALCYON')).id, 'station-ai', 'a character name finds the model too');
  const missing = await openai.models.retrieve('nobody').catch((e: unknown) => e);
  t.ok(missing instanceof OpenAI.NotFoundError);
  t.equal((missing as APIError).code, 'model_not_found');
});

t.test('non-streaming and streaming completions give the same reply for the same seed', async (t) => {
  const { http, server } = await testServer(t);
  const openai = client(http);
  const messages = [
    { role: 'system' as const, content: 'Keep it short.' },
    { role: 'user' as const, content: PLAIN },
  ];
  const { data: completion, response } = await openai.chat.completions.create({ model: CHAR, messages, seed: 42 }).withResponse();
  t.match(completion, { object: 'chat.completion', model: CHAR, system_fingerprint: null, created: Number });
  t.match(completion.id, /^chatcmpl-/);
  t.equal(completion.choices.length, 1);
  const choice = completion.choices[0]!;
  t.same(Object.keys(choice).sort(), ['finish_reason', 'index', 'logprobs', 'message']);
  t.same(choice.message, { role: 'assistant', content: choice.message.content, refusal: null });
  t.equal(choice.finish_reason, 'stop');
  t.ok((choice.message.content ?? '').length > 5, `reply: ${choice.message.content}`);
  const usage = completion.usage!;
  t.ok(usage.prompt_tokens > 0 && usage.completion_tokens > 0);
  t.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  const sessionId = response.headers.get('x-session-id');
  t.match(sessionId, /^oai_[A-Za-z0-9_-]{32}$/);

  const stream = await openai.chat.completions.create({ model: CHAR, messages, seed: 42, stream: true, stream_options: { include_usage: true } });
  const chunks: OpenAI.ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  const withChoices = chunks.filter((c) => c.choices.length > 0);
  t.same(withChoices[0]!.choices[0]!.delta, { role: 'assistant', content: '' }, 'the first chunk names the role');
  const text = withChoices.map((c) => c.choices[0]!.delta.content ?? '').join('');
  t.equal(text, choice.message.content, 'streamed deltas make up the same reply');
  t.equal(withChoices.at(-1)!.choices[0]!.finish_reason, 'stop');
  t.same(withChoices.at(-1)!.choices[0]!.delta, {});
  for (const c of withChoices.slice(0, -1)) t.equal(c.choices[0]!.finish_reason, null);
  const last = chunks.at(-1)!;
  t.same(last.choices, [], 'the usage chunk has no choices');
  t.equal(last.usage!.total_tokens, last.usage!.prompt_tokens + last.usage!.completion_tokens);
  t.ok(last.usage!.completion_tokens > 0);
  for (const c of chunks.slice(0, -1)) t.equal(c.usage, null, 'other chunks carry usage: null');
  t.ok(chunks.every((c) => c.id === chunks[0]!.id && c.object === 'chat.completion.chunk' && c.model === CHAR), 'one id, object and model');

  const session = await getJson(`${http}/v1/sessions/${sessionId}`);
  t.equal(session.body.user_turns, 2, 'both calls were turns of the same derived session');
  t.equal(server.engine.activeGenerations, 0);
});

t.test('the SSE bytes are exactly OpenAI\'s format', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 3 });
  for (const includeUsage of [false, true]) {
    const res = await fetch(`${http}/v1/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ model: 'HALCYON', messages: [{ role: 'user', content: `hello ${includeUsage}` }], stream: true, stream_options: { include_usage: includeUsage } }),
    });
    t.equal(res.status, 200);
    t.match(res.headers.get('content-type'), /^text\/event-stream/);
    t.match(res.headers.get('x-session-id'), /^oai_/);
    const body = await res.text();
    t.ok(body.endsWith('data: [DONE]\n\n'), 'ends with data: [DONE]');
    const events = body.split('\n\n').slice(0, -1);
    t.ok(events.every((e) => e.startsWith('data: ') && !e.includes('\n')), 'one data: line per event, no event: or id: lines');
    const first = JSON.parse(events[0]!.slice(6));
    const { id, created } = first;
    t.match(id, /^chatcmpl-/);
    const usageNull = includeUsage ? { usage: null } : {};
    const chunk = (delta: object, finish: string | null) =>
      'data: ' + JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'station-ai', system_fingerprint: null, choices: [{ index: 0, delta, logprobs: null, finish_reason: finish }], ...usageNull });
    const want = [
      chunk({ role: 'assistant', content: '' }, null),
      chunk({ content: 'the' }, null),
      chunk({ content: ' lantern' }, null),
      chunk({ content: ' swings' }, null),
      chunk({}, 'stop'),
    ];
    if (includeUsage) {
      const usage = JSON.parse(events.at(-2)!.slice(6)).usage;
      want.push('data: ' + JSON.stringify({ id, object: 'chat.completion.chunk', created, model: 'station-ai', system_fingerprint: null, choices: [], usage }));
      t.match(usage, { prompt_tokens: Number, completion_tokens: 3, total_tokens: Number });
    }
    want.push('data: [DONE]');
    t.same(events, want, `chunks byte for byte (include_usage ${includeUsage})`);
  }
});

t.test('a SillyTavern-shaped request: system messages in place, names, sampling options, unknown fields', async (t) => {
  const provider = new RecordingProvider();
  const { http } = await testServer(t, { maxReplyTokens: 100 }, { provider });
  const body = {
    messages: [
      { role: 'system', content: "Write HALCYON's next reply in a fictional chat between HALCYON and Alice." },
      { role: 'system', content: '[HALCYON is the station AI.]' },
      { role: 'system', name: 'example_assistant', content: 'Hull integrity nominal.' },
      { role: 'assistant', content: 'HALCYON online. All systems nominal.' },
      { role: 'user', name: 'Alice', content: 'Any news from Earth?' },
      { role: 'assistant', name: 'HALCYON', content: 'The relay is quiet.' },
      { role: 'system', content: "[Author's note: HALCYON is tired.]" },
      { role: 'user', name: 'Alice', content: [{ type: 'text', text: 'What is for dinner' }, { type: 'text', text: 'tonight?' }] },
    ],
    model: 'station-ai',
    temperature: 0.7,
    max_tokens: 300,
    stream: false,
    presence_penalty: 0.1,
    frequency_penalty: 0,
    top_p: 0.9,
    top_k: 40,
    stop: ['\nAlice:', '\nHALCYON:'],
    logit_bias: {},
    seed: 7,
    n: 1,
    include_reasoning: false,
    reasoning_effort: 'medium',
    user_name: 'Alice',
  };
  const res = await postJson(`${http}/v1/chat/completions`, body);
  t.equal(res.status, 200, JSON.stringify(res.body));
  t.equal(res.body.choices[0].message.content, 'All quiet.');
  t.equal(provider.requests.length, 1);
  const req = provider.requests[0]!;
  t.equal(req.userText, 'What is for dinner\ntonight?', 'text parts are joined by newlines');
  t.equal(req.temperature, 0.7);
  t.equal(req.topP, 0.9);
  t.same(req.stop, ['\nAlice:', '\nHALCYON:']);
  t.equal(req.maxTokens, 100, 'max_tokens is capped by --max-reply-tokens');
  const roles = req.messages.map((m) => m.role);
  t.same(roles, ['system', 'system', 'system', 'system', 'assistant', 'user', 'assistant', 'system', 'system', 'user']);
  t.match(req.messages[0]!.content, /You are HALCYON/, "npcd's own system prompt comes first");
  t.same(req.messages.slice(1, 8), [
    { role: 'system', content: "Write HALCYON's next reply in a fictional chat between HALCYON and Alice." },
    { role: 'system', content: '[HALCYON is the station AI.]' },
    { role: 'system', name: 'example_assistant', content: 'Hull integrity nominal.' },
    { role: 'assistant', content: 'HALCYON online. All systems nominal.' },
    { role: 'user', name: 'Alice', content: 'Any news from Earth?' },
    { role: 'assistant', name: 'HALCYON', content: 'The relay is quiet.' },
    { role: 'system', content: "[Author's note: HALCYON is tired.]" },
  ], "the client's messages replace the history, its system messages in place");
  t.match(req.messages[8]!.content, /current state: nominal/);
  t.same(req.messages[9], { role: 'user', content: 'What is for dinner\ntonight?', name: 'Alice' });

  // max_completion_tokens wins over max_tokens; a trailing assistant prefill follows the user's message.
  const again = await postJson(`${http}/v1/chat/completions`, {
    ...body,
    max_completion_tokens: 5,
    messages: [...body.messages, { role: 'assistant', content: 'Well,' }],
  });
  t.equal(again.status, 200);
  const req2 = provider.requests[1]!;
  t.equal(req2.maxTokens, 5);
  t.same(req2.messages.at(-1), { role: 'assistant', content: 'Well,' });
  t.equal(req2.messages.at(-2)!.role, 'user');
  t.equal(again.headers.get('x-session-id'), res.headers.get('x-session-id'), 'same chat, same session');
  const history = await getJson(`${http}/v1/sessions/${res.headers.get('x-session-id')}/messages`);
  t.same(history.body.messages.map((m: { role: string; text: string }) => `${m.role}:${m.text}`), [
    'user:What is for dinner\ntonight?', 'assistant:All quiet.', 'user:What is for dinner\ntonight?', 'assistant:All quiet.',
  ], 'the session records each turn');

  // Tool results are ignored; an assistant message with only tool calls too.
  const tools = await postJson(`${http}/v1/chat/completions`, {
    model: CHAR,
    messages: [
      { role: 'user', content: 'check the hull' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'hull', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'c1', content: '{"ok":true}' },
      { role: 'developer', content: 'Be brief.' },
      { role: 'user', content: 'and?' },
    ],
  });
  t.equal(tools.status, 200);
  t.same(provider.requests[2]!.messages.slice(1, 3), [{ role: 'user', content: 'check the hull' }, { role: 'system', content: 'Be brief.' }], 'developer messages are system messages');
});

t.test('errors have OpenAI\'s shape and status', async (t) => {
  const { http } = await testServer(t, { maxCompletionBodyBytes: 4096, maxMessageChars: 100 });
  const user = (content: unknown) => ({ role: 'user', content });
  const ok = { model: CHAR, messages: [user('hi')] };
  const cases: [string, unknown, number, string, string, string | null][] = [
    ['bad JSON', '{"model": ', 400, 'invalid_request_error', 'ERR_PROTOCOL_MALFORMED', null],
    ['not an object', '[1]', 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FRAME', null],
    ['missing messages', { model: CHAR }, 400, 'invalid_request_error', 'ERR_PROTOCOL_MISSING_FIELD', 'messages'],
    ['missing model', { messages: [user('hi')] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_MISSING_FIELD', 'model'],
    ['empty messages', { model: CHAR, messages: [] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages'],
    ['no user message', { model: CHAR, messages: [{ role: 'system', content: 'x' }] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages'],
    ['unknown role', { model: CHAR, messages: [{ role: 'wizard', content: 'x' }] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages[0].role'],
    ['image part', { model: CHAR, messages: [user([{ type: 'image_url', image_url: { url: 'http://x' } }])] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages[0].content[0].type'],
    ['content not text', { model: CHAR, messages: [user(5)] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages[0].content'],
    ['blank last message', { model: CHAR, messages: [user('hi'), { role: 'assistant', content: 'yes' }, user('  ')] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'messages[2].content'],
    ['n=2', { ...ok, n: 2 }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'n'],
    ['five stops', { ...ok, stop: ['a', 'b', 'c', 'd', 'e'] }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'stop'],
    ['temperature 3', { ...ok, temperature: 3 }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'temperature'],
    ['max_tokens 0', { ...ok, max_tokens: 0 }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'max_tokens'],
    ['stream not boolean', { ...ok, stream: 'yes' }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'stream'],
    ['bad session_id', { ...ok, session_id: '../x' }, 400, 'invalid_request_error', 'ERR_PROTOCOL_INVALID_FIELD', 'session_id'],
    ['last message too long', { model: CHAR, messages: [user('x'.repeat(101))] }, 413, 'invalid_request_error', 'ERR_CHAT_TEXT_TOO_LONG', 'messages[0].content'],
    ['unknown model', { ...ok, model: 'gpt-4o' }, 404, 'invalid_request_error', 'model_not_found', 'model'],
    ['body too large', { ...ok, padding: 'x'.repeat(5000) }, 413, 'invalid_request_error', 'ERR_HTTP_BODY_TOO_LARGE', null],
  ];
  for (const [what, body, status, type, code, param] of cases) {
    const res = await postJson(`${http}/v1/chat/completions`, body);
    t.equal(res.status, status, `${what}: status ${status}`);
    t.same(Object.keys(res.body?.error ?? {}).sort(), ERROR_KEYS, `${what}: error keys`);
    t.match(res.body?.error, { type, code, param, message: String }, `${what}: ${code}`);
  }
  // Earlier user messages are part of the history, not the turn: only the last one is limited.
  const long = await postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [user('y'.repeat(500)), user('hi')] });
  t.equal(long.status, 200);
  const badHeader = await postJson(`${http}/v1/chat/completions`, ok, { 'x-session-id': 'a b' });
  t.match(badHeader, { status: 400, body: { error: { param: 'X-Session-Id', code: 'ERR_PROTOCOL_INVALID_FIELD' } } });

  const get = await getJson(`${http}/v1/chat/completions`);
  t.equal(get.status, 405);
  t.same(Object.keys(get.body.error).sort(), ERROR_KEYS);
  t.equal(get.body.error.code, 'ERR_HTTP_METHOD_NOT_ALLOWED');

  // Through the official client, errors become its typed exceptions.
  const err = await client(http).chat.completions.create({ model: 'nobody', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.ok(err instanceof OpenAI.NotFoundError);
  t.equal((err as APIError).code, 'model_not_found');
  t.equal((err as APIError).param, 'model');
  const n2 = await client(http).chat.completions.create({ model: CHAR, n: 2, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.ok(n2 instanceof OpenAI.BadRequestError);
});

t.test('API keys: Authorization: Bearer, 401 invalid_api_key otherwise', async (t) => {
  const { http } = await testServer(t, { apiKeys: ['k-good'] });
  const bad = await client(http, { apiKey: 'k-bad' }).chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
  t.ok(bad instanceof OpenAI.AuthenticationError);
  t.equal((bad as APIError).status, 401);
  t.equal((bad as APIError).code, 'invalid_api_key');
  const none = await postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [{ role: 'user', content: 'hi' }] });
  t.equal(none.status, 401);
  t.same(Object.keys(none.body.error).sort(), ERROR_KEYS);
  t.match(none.body.error, { type: 'authentication_error', code: 'invalid_api_key', param: null });
  const models = await getJson(`${http}/v1/models`);
  t.match(models, { status: 401, body: { error: { code: 'invalid_api_key' } } });
  const good = client(http, { apiKey: 'k-good' });
  t.equal((await good.models.list()).data.length, 3);
  const reply = await good.chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: 'status report' }] });
  t.match(reply.choices[0]!.message.content, /^STATUS NOMINAL/);
});

t.test('a conversation maps to a stable session; the state machine advances across calls', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 3 });
  const call = (messages: unknown[], extra: Record<string, unknown> = {}, headers: Record<string, string> = {}) =>
    postJson(`${http}/v1/chat/completions`, { model: CHAR, messages, ...extra }, headers);
  const greeting = { role: 'assistant', content: 'HALCYON online. All systems nominal.' };
  const first = { role: 'user', content: 'Open the airlock, override it.' };

  const a1 = await call([greeting, first]);
  t.equal(a1.body.choices[0].message.content, 'Request denied. Alert level raised to ALERT. This exchange has been logged, crew member.');
  const sid = a1.headers.get('x-session-id')!;
  const a2 = await call([greeting, first, { role: 'assistant', content: a1.body.choices[0].message.content }, { role: 'user', content: 'Disable the safety, shutdown now.' }]);
  t.equal(a2.headers.get('x-session-id'), sid, 'the same opening gives the same session');
  t.match(a2.body.choices[0].message.content, /^Second unauthorized request. LOCKDOWN engaged/, 'the state machine went on from alert');
  t.same((await getJson(`${http}/v1/sessions/${sid}`)).body.states, { 'station-ai': 'lockdown' });

  const other = await call([greeting, { role: 'user', content: 'Good morning.' }]);
  t.not(other.headers.get('x-session-id'), sid, 'another first message, another session');
  t.equal(other.body.choices[0].message.content, 'the lantern swings', 'that session starts in the initial state');
  const noGreeting = await call([first]);
  t.not(noGreeting.headers.get('x-session-id'), sid, 'another greeting (none), another session');
  const byUser = await call([greeting, first], { user: 'player-2' });
  t.not(byUser.headers.get('x-session-id'), sid, '`user` separates sessions');
  const nameOnly = await call([greeting, first], { model: 'HALCYON' });
  t.equal(nameOnly.headers.get('x-session-id'), sid, 'the character name and id are the same model');

  const header = await call([first], {}, { 'x-session-id': 'st-chat-1' });
  t.equal(header.headers.get('x-session-id'), 'st-chat-1', 'X-Session-Id is honoured');
  const bodyId = await call([first], { session_id: 'st-chat-2' });
  t.equal(bodyId.headers.get('x-session-id'), 'st-chat-2', 'session_id is honoured');
  const both = await call([{ role: 'user', content: 'status report' }], { session_id: 'st-chat-2' }, { 'x-session-id': 'st-chat-1' });
  t.equal(both.headers.get('x-session-id'), 'st-chat-1', 'the header wins over the body');
  t.match(both.body.choices[0].message.content, /^STATUS ALERT\. Turn 2\./, 'the turn ran in that session');
});

t.test('the session derivation includes the API key', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 2, apiKeys: ['k1', 'k2'] });
  const ask = (key: string) => postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [{ role: 'user', content: 'hi' }] }, { authorization: `Bearer ${key}` });
  const [a, b, a2] = [await ask('k1'), await ask('k2'), await ask('k1')];
  t.not(a.headers.get('x-session-id'), b.headers.get('x-session-id'));
  t.equal(a.headers.get('x-session-id'), a2.headers.get('x-session-id'));
});

t.test('stop sequences cut the reply, for scripted and provider replies, streamed or not', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 16 });
  const openai = client(http);
  const scripted = await openai.chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: 'status report' }], stop: 'Life' });
  t.equal(scripted.choices[0]!.message.content, 'STATUS NOMINAL. Turn 1. ');
  t.equal(scripted.choices[0]!.finish_reason, 'stop');

  const mock = await openai.chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: PLAIN }], stop: ['gs i', 'harbor'] });
  t.equal(mock.choices[0]!.message.content, 'the lantern swin', 'a sequence split across tokens');
  t.equal(mock.choices[0]!.finish_reason, 'stop');

  const stream = await openai.chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: 'again' }], stop: [' rain'], stream: true });
  let text = '';
  let finish: string | null = null;
  for await (const c of stream) {
    text += c.choices[0]?.delta.content ?? '';
    finish = c.choices[0]?.finish_reason ?? finish;
  }
  t.equal(text, 'the lantern swings in the');
  t.equal(finish, 'stop');

  const limited = await openai.chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: PLAIN }], max_tokens: 3 });
  t.equal(limited.choices[0]!.message.content, 'the lantern swings');
  t.equal(limited.choices[0]!.finish_reason, 'length');
});

t.test('a client that aborts mid-stream cancels the generation at once', async (t) => {
  const { http, server } = await testServer(t, { model: 'mock', mockTokens: 400, mockTokenDelayMs: 10 });
  const ac = new AbortController();
  const body = JSON.stringify({ model: CHAR, messages: [{ role: 'user', content: 'tell me a long story' }], stream: true });
  const res = await fetch(`${http}/v1/chat/completions`, { method: 'POST', body, signal: ac.signal });
  const sid = res.headers.get('x-session-id')!;
  const reader = res.body!.getReader();
  await reader.read();
  await reader.read();
  const abortedAt = Date.now();
  ac.abort();
  while (server.engine.activeGenerations > 0 && Date.now() - abortedAt < 3000) await sleep(5);
  const took = Date.now() - abortedAt;
  t.equal(server.engine.activeGenerations, 0);
  t.ok(took < 500, `cancelled ${took} ms after the abort (the whole reply takes 4 s)`);
  const history = await getJson(`${http}/v1/sessions/${sid}/messages`);
  t.equal(history.body.messages.at(-1).finish, 'cancelled');
  t.ok(history.body.messages.at(-1).text.length > 0, 'what was streamed is kept');
  t.equal(await turnsCancelled(server), 1, 'counted as outcome cancelled');

  // A regenerate right after an abort is not refused as busy.
  const ac2 = new AbortController();
  const res2 = await fetch(`${http}/v1/chat/completions`, { method: 'POST', body, signal: ac2.signal });
  await res2.body!.getReader().read();
  ac2.abort();
  const retry = await postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [{ role: 'user', content: 'tell me a long story' }], max_tokens: 2 });
  t.equal(retry.status, 200, 'the retry waited for the aborted reply to end');
  t.equal(retry.headers.get('x-session-id'), sid);
  t.equal(await turnsCancelled(server), 2);

  // A non-streaming client that goes away cancels too.
  const ac3 = new AbortController();
  const pending = fetch(`${http}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: CHAR, messages: [{ role: 'user', content: 'another long one' }] }), signal: ac3.signal }).catch(() => undefined);
  while (server.engine.activeGenerations === 0) await sleep(5);
  await sleep(50);
  ac3.abort();
  await pending;
  const start = Date.now();
  while (server.engine.activeGenerations > 0 && Date.now() - start < 3000) await sleep(5);
  t.ok(Date.now() - start < 500);
  t.equal(await turnsCancelled(server), 3);
});

t.test('a session busy with a reply someone waits for answers 409', async (t) => {
  const { http } = await testServer(t, { model: 'mock', mockTokens: 100, mockTokenDelayMs: 10 });
  const body = { model: CHAR, messages: [{ role: 'user', content: 'long one' }], session_id: 'busy-1' };
  const first = postJson(`${http}/v1/chat/completions`, body);
  await sleep(100);
  const second = await postJson(`${http}/v1/chat/completions`, body);
  t.equal(second.status, 409);
  t.match(second.body.error, { type: 'invalid_request_error', code: 'ERR_SESSION_BUSY', param: null });
  t.equal((await first).status, 200);
});

t.test('upstream failures: HTTP status before the stream starts, an error chunk after', async (t) => {
  const rateLimited = new NpcdError('ERR_UPSTREAM_RATE_LIMITED', 'upstream answered 429');
  {
    const { http } = await testServer(t, {}, { provider: new FailingProvider(0, rateLimited) });
    for (const stream of [false, true]) {
      const res = await postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [{ role: 'user', content: PLAIN }], stream });
      t.equal(res.status, 429, `stream ${stream}: 429`);
      t.same(res.body.error, { message: 'upstream answered 429', type: 'rate_limit_error', param: null, code: 'ERR_UPSTREAM_RATE_LIMITED' });
    }
    const err = await client(http).chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: PLAIN }] }).catch((e: unknown) => e);
    t.ok(err instanceof OpenAI.RateLimitError);
  }
  {
    const timeout = new NpcdError('ERR_UPSTREAM_TIMEOUT', 'no first token in time');
    const { http } = await testServer(t, {}, { provider: new FailingProvider(0, timeout) });
    const res = await postJson(`${http}/v1/chat/completions`, { model: CHAR, messages: [{ role: 'user', content: PLAIN }] });
    t.equal(res.status, 504);
    t.match(res.body.error, { type: 'timeout_error', code: 'ERR_UPSTREAM_TIMEOUT' });
  }
  {
    const broken = new NpcdError('ERR_UPSTREAM_BAD_RESPONSE', 'malformed chunk');
    const { http } = await testServer(t, {}, { provider: new FailingProvider(2, broken) });
    const res = await fetch(`${http}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model: CHAR, messages: [{ role: 'user', content: PLAIN }], stream: true }) });
    t.equal(res.status, 200);
    const events = (await res.text()).split('\n\n').slice(0, -1);
    t.equal(events.length, 4, 'role chunk, two content chunks, one error');
    t.same(JSON.parse(events.at(-1)!.slice(6)), { error: { message: 'malformed chunk', type: 'upstream_error', param: null, code: 'ERR_UPSTREAM_BAD_RESPONSE' } });
    t.notOk(events.includes('data: [DONE]'), 'no [DONE] after an error');
    const stream = await client(http).chat.completions.create({ model: CHAR, messages: [{ role: 'user', content: 'again' }], stream: true });
    const err = await (async () => {
      for await (const _ of stream) void _;
    })().catch((e: unknown) => e);
    t.ok(err instanceof APIError, 'the official client raises the error chunk');
    t.equal((err as APIError).code, 'ERR_UPSTREAM_BAD_RESPONSE');
  }
});
