import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { Pool } from 'undici';
import { CharacterRegistry } from '../../src/characters/registry.js';
import { type ApiAdapter, type StreamEvent, type UpstreamRequest, UpstreamError } from '../../src/providers/api.js';
import { codeReason, DashScopeAdapter } from '../../src/providers/dashscope.js';
import { decodeStream, EVENTS_AFTER_END, quote } from '../../src/providers/http-api.js';
import { parseNdjson } from '../../src/providers/ndjson.js';
import { keepAliveValue, OllamaAdapter } from '../../src/providers/ollama.js';
import { openAiName, OpenAiAdapter, streamErrorReason } from '../../src/providers/openai.js';
import { parseSse, type SseEvent } from '../../src/providers/sse.js';
import type { GenerateRequest } from '../../src/providers/types.js';
import { type Behaviour, closedPortUrl, DEFAULT_TOKENS, type FakeKind, type FakeUpstream, startFakeUpstream } from '../helpers/fake-upstreams.js';
import { waitFor } from '../helpers/wait.js';

const registry = new CharacterRegistry();
registry.loadDirectory(fileURLToPath(new URL('../../characters', import.meta.url)));
const MARA = registry.require('tavern-keeper');

const enc = new TextEncoder();

/** The bytes as one chunk per entry. */
async function* chunks(...parts: (string | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const p of parts) yield typeof p === 'string' ? enc.encode(p) : p;
}

/** The bytes of `text` cut at the given offsets. */
function split(text: string | Uint8Array, ...at: number[]): Uint8Array[] {
  const bytes = typeof text === 'string' ? enc.encode(text) : text;
  const out: Uint8Array[] = [];
  let from = 0;
  for (const i of [...at, bytes.length]) {
    out.push(bytes.subarray(from, i));
    from = i;
  }
  return out;
}

async function collect<T>(gen: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const x of gen) out.push(x);
  return out;
}

/** What a generator yielded before it threw, and what it threw. */
async function failing<T>(gen: AsyncIterable<T>): Promise<{ items: T[]; error: unknown }> {
  const items: T[] = [];
  try {
    for await (const x of gen) items.push(x);
  } catch (error) {
    return { items, error };
  }
  throw new Error(`expected a failure, got ${items.length} items`);
}

function upstreamError(t: Test, err: unknown, reason: string, message?: RegExp, what = ''): void {
  const label = what ? `${what}: ` : '';
  t.ok(err instanceof UpstreamError, `${label}an UpstreamError (${String(err)})`);
  if (!(err instanceof UpstreamError)) return;
  t.equal(err.reason, reason, `${label}reason ${reason}: ${err.message}`);
  if (message) t.match(err.message, message, `${label}message`);
}

function request(overrides: Partial<GenerateRequest> = {}): GenerateRequest {
  return {
    character: MARA,
    messages: [
      { role: 'system', content: 'You are Mara, keeper of the Drowned Lantern.' },
      { role: 'assistant', content: 'Welcome in, out of the rain.' },
      { role: 'user', content: 'A room for the night?', name: 'Old Tom' },
    ],
    userText: 'A room for the night?',
    state: MARA.initialState,
    maxTokens: 128,
    seed: 0xdeadbeef,
    ...overrides,
  };
}

function bodyOf(r: UpstreamRequest): Record<string, any> {
  t.ok(r.body, 'has a body');
  return JSON.parse(r.body ?? 'null');
}

/** Texts joined, and the end event. */
async function run(adapter: ApiAdapter, body: AsyncIterable<Uint8Array>): Promise<{ text: string; pieces: string[]; end: StreamEvent | undefined; events: StreamEvent[] }> {
  const events = await collect(decodeStream(adapter.decoder(), body));
  const pieces = events.flatMap((e) => (e.type === 'text' ? [e.text] : []));
  return { text: pieces.join(''), pieces, end: events.find((e) => e.type === 'end'), events };
}

// ---------------------------------------------------------------- SSE parser

const RECORDED_SSE = [
  'id:1\r\nevent:result\r\n:HTTP_STATUS/200\r\ndata:{"output":{"choices":[{"message":{"content":"你好","role":"assistant"},"finish_reason":"null"}]}}\r\n\r\n',
  ': keep-alive\n\n',
  'event: update\ndata: line one\ndata:  two spaces\ndata\nretry: 3000\n\n',
  'id: 7\rdata: after a CR 😀\r\r',
  'data: no id field, id carries over\n\n',
  'data: trailing, never dispatched',
].join('');

const RECORDED_EVENTS: SseEvent[] = [
  { event: 'result', data: '{"output":{"choices":[{"message":{"content":"你好","role":"assistant"},"finish_reason":"null"}]}}', id: '1', comments: ['HTTP_STATUS/200'] },
  { event: 'update', data: 'line one\n two spaces\n', id: '1', retry: 3000 },
  { event: 'message', data: 'after a CR 😀', id: '7' },
  { event: 'message', data: 'no id field, id carries over', id: '7' },
];

t.test('parseSse reads fields, comments and line ends as the spec says', async (t) => {
  t.same(await collect(parseSse(chunks(RECORDED_SSE))), RECORDED_EVENTS);
});

t.test('parseSse gives the same events whatever the chunking', async (t) => {
  const bytes = enc.encode(RECORDED_SSE);
  for (let i = 0; i <= bytes.length; i++) {
    const got = await collect(parseSse(chunks(...split(bytes, i))));
    if (JSON.stringify(got) !== JSON.stringify(RECORDED_EVENTS)) {
      t.same(got, RECORDED_EVENTS, `split at byte ${i}`);
      return;
    }
  }
  t.same(await collect(parseSse(chunks(...split(bytes, ...Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))))), RECORDED_EVENTS, 'one byte a chunk');
  t.pass(`all ${bytes.length + 1} two-chunk splits agree`);
});

t.test('parseSse line ends: LF, CRLF, CR, and a CRLF split across chunks', async (t) => {
  const want = [{ event: 'message', data: 'a\nb' }];
  t.same(await collect(parseSse(chunks('data: a\ndata: b\n\n'))), want, 'LF');
  t.same(await collect(parseSse(chunks('data: a\r\ndata: b\r\n\r\n'))), want, 'CRLF');
  t.same(await collect(parseSse(chunks('data: a\rdata: b\r\r'))), want, 'CR');
  t.same(await collect(parseSse(chunks('data: a\r', '\ndata: b\r', '\n\r', '\n'))), want, 'CR | LF across chunks is one line end');
  t.same(await collect(parseSse(chunks('data: a\r', '', '\ndata: b\r\n\r\n'))), want, 'an empty chunk between CR and LF');
  t.same(await collect(parseSse(chunks('data: a\r\r\ndata: b\n\n'))), [{ event: 'message', data: 'a' }, { event: 'message', data: 'b' }], 'CR then CRLF is a line end and a blank line');
  t.same(await collect(parseSse(chunks('data: a\n\r\ndata: b\r\n\n'))), [{ event: 'message', data: 'a' }, { event: 'message', data: 'b' }], 'mixed line ends');
});

t.test('parseSse data, event, id and retry fields', async (t) => {
  t.same(await collect(parseSse(chunks('data:x\n\n'))), [{ event: 'message', data: 'x' }], 'no space after the colon');
  t.same(await collect(parseSse(chunks('data:  x \n\n'))), [{ event: 'message', data: ' x ' }], 'only one space is stripped');
  t.same(await collect(parseSse(chunks('data\n\n'))), [{ event: 'message', data: '' }], 'a bare "data" line is an empty data line');
  t.same(await collect(parseSse(chunks('data: \ndata: \n\n'))), [{ event: 'message', data: '\n' }], 'two empty data lines');
  t.same(await collect(parseSse(chunks('event: x\n\ndata: y\n\n'))), [{ event: 'message', data: 'y' }], 'an event without data is not dispatched; its type does not carry over');
  t.same(await collect(parseSse(chunks('event:\ndata: y\n\n'))), [{ event: 'message', data: 'y' }], 'an empty event type is "message"');
  t.same(await collect(parseSse(chunks('id: a\0b\ndata: y\n\n'))), [{ event: 'message', data: 'y' }], 'an id with NULL is ignored');
  t.same(await collect(parseSse(chunks('id: 5\ndata: y\n\nid\ndata: z\n\n'))), [{ event: 'message', data: 'y', id: '5' }, { event: 'message', data: 'z', id: '' }], 'a bare id resets the last id');
  t.same(await collect(parseSse(chunks('retry: 12a\ndata: y\n\n'))), [{ event: 'message', data: 'y' }], 'a retry that is not digits is ignored');
  t.same(await collect(parseSse(chunks('foo: bar\ndata: y\n\n'))), [{ event: 'message', data: 'y' }], 'unknown fields are ignored');
  t.same(await collect(parseSse(chunks('\ufeffdata: y\n\n'))), [{ event: 'message', data: 'y' }], 'a leading BOM is dropped');
  t.same(await collect(parseSse(chunks(':one\n: two\ndata: y\n\n:alone\n\ndata: z\n\n'))), [{ event: 'message', data: 'y', comments: ['one', ' two'] }, { event: 'message', data: 'z' }], 'comments belong to their event; a comment-only block is dropped');
  t.same(await collect(parseSse(chunks('data: y\n\ndata: never ended\n'))), [{ event: 'message', data: 'y' }], 'the last event without a blank line is not dispatched');
  t.same(await collect(parseSse(chunks(''))), [], 'an empty body has no events');
});

t.test('parseSse decodes UTF-8 split anywhere inside a character', async (t) => {
  const text = 'data: 你好😀é\n\n';
  const bytes = enc.encode(text);
  for (let i = 0; i <= bytes.length; i++) {
    for (let j = i; j <= bytes.length; j++) {
      const got = await collect(parseSse(chunks(...split(bytes, i, j))));
      if (got.length !== 1 || got[0]?.data !== '你好😀é') {
        t.fail(`split at ${i}, ${j}: ${JSON.stringify(got)}`);
        return;
      }
    }
  }
  t.same(await collect(parseSse(chunks(new Uint8Array([0x64, 0x61, 0x74, 0x61, 0x3a, 0xff, 0x0a, 0x0a])))), [{ event: 'message', data: '\ufffd' }], 'an invalid byte becomes U+FFFD');
});

t.test('parseSse bounds lines and events', async (t) => {
  const opts = { maxEventBytes: 64 };
  const long = 'x'.repeat(100);
  upstreamError(t, (await failing(parseSse(chunks(`data: ${long}`), opts))).error, 'bad_response', /line longer than 64 bytes/);
  upstreamError(t, (await failing(parseSse(chunks(...split(`data: ${long}`, 10, 20, 30, 40, 50, 60, 70)), opts))).error, 'bad_response', /line longer/);
  upstreamError(t, (await failing(parseSse(chunks(`data: ${long}\n\n`), opts))).error, 'bad_response', /line longer/);
  upstreamError(t, (await failing(parseSse(chunks(`data: ${'你'.repeat(20)}\n\n`), opts))).error, 'bad_response', /line longer/, 'counted in UTF-8 bytes');
  upstreamError(t, (await failing(parseSse(chunks('data: 0123456789\n'.repeat(6) + '\n'), opts))).error, 'bad_response', /event longer than 64 bytes/);
  upstreamError(t, (await failing(parseSse(chunks(':0123456789012345678\n'.repeat(4) + 'data: x\n\n'), opts))).error, 'bad_response', /event longer/, 'comments count too');
  const fits = 'x'.repeat(64 - 'data: '.length);
  t.same(await collect(parseSse(chunks(`data: ${fits}\n\n`), opts)), [{ event: 'message', data: fits }], 'a line of exactly the bound is fine');
  t.same(await collect(parseSse(chunks('data: 0123456789\n\n'.repeat(20)), opts)), Array(20).fill({ event: 'message', data: '0123456789' }), 'the bound is per event');
  const big = 'y'.repeat(200_000);
  t.same(await collect(parseSse(chunks(...split(`data: ${big}\n\n`, 70_000, 140_000)))), [{ event: 'message', data: big }], 'the default bound is 1 MiB');
});

// ---------------------------------------------------------------- NDJSON parser

t.test('parseNdjson yields one value a line, in any chunking', async (t) => {
  const text = '{"a":1}\n\n{"b":"你好"}\r\n  \n[1,2]\n{"c":true}';
  const want = [{ a: 1 }, { b: '你好' }, [1, 2], { c: true }];
  t.same(await collect(parseNdjson(chunks(text))), want, 'blank lines skipped, CRLF read, last line without LF parsed');
  const bytes = enc.encode(text);
  for (let i = 0; i <= bytes.length; i++) {
    const got = await collect(parseNdjson(chunks(...split(bytes, i))));
    if (JSON.stringify(got) !== JSON.stringify(want)) {
      t.same(got, want, `split at byte ${i}`);
      return;
    }
  }
  t.same(await collect(parseNdjson(chunks(''))), []);
});

t.test('parseNdjson rejects malformed and over-long lines', async (t) => {
  const bad = '{"model":"x","message":' + '"y'.repeat(100);
  const { items, error } = await failing(parseNdjson(chunks('{"ok":1}\n', bad + '\n', '{"ok":2}\n')));
  t.same(items, [{ ok: 1 }], 'lines before it were yielded');
  upstreamError(t, error, 'bad_response', /^malformed NDJSON line at line 2: \{"model":"x","message":"y/);
  t.ok(error instanceof Error && error.message.length < 160, 'quotes the first 100 characters');
  upstreamError(t, (await failing(parseNdjson(chunks('{"ok":1}\n{"cut')))).error, 'bad_response', /stream ended inside NDJSON line 2/);
  upstreamError(t, (await failing(parseNdjson(chunks('x'.repeat(100)), { maxLineBytes: 64 }))).error, 'bad_response', /longer than 64 bytes/);
  upstreamError(t, (await failing(parseNdjson(chunks(`"${'x'.repeat(70)}"\n`), { maxLineBytes: 64 }))).error, 'bad_response', /longer than 64 bytes/);
});

t.test('quote keeps error text short, on one line, without secrets', async (t) => {
  t.equal(quote('a\n  b\tc', 100), 'a b c');
  t.equal(quote('abcdef', 3), 'abc…');
  t.equal(quote('key sk-secret-123 was wrong', 100, 'sk-secret-123'), 'key *** was wrong');
  t.equal(quote('sent Authorization: Bearer abc.def', 100), 'sent Authorization: Bearer ***');
  t.equal(quote('ab😀', 3), 'ab…', 'does not cut a surrogate pair');
});

t.test('a malformed stream quoted in an error never shows the API key (message, stack or cause)', async (t) => {
  const SECRET = 'sk-LEAK-CHECK-7f3a';
  const bad: Record<FakeKind, { adapter: OpenAiAdapter | OllamaAdapter | DashScopeAdapter; bodies: string[] }> = {
    openai: {
      adapter: new OpenAiAdapter({ model: 'm', apiKey: SECRET }),
      bodies: [`data: unauthorized key ${SECRET}\n\n`, `data: ["${SECRET}"]\n\n`, `data: {"msg":"key ${SECRET}"}\n\n`],
    },
    ollama: {
      adapter: new OllamaAdapter({ model: 'm', apiKey: SECRET }),
      bodies: [`unauthorized key ${SECRET}\n`, `["${SECRET}"]\n`, `{"note":"${SECRET}`],
    },
    dashscope: {
      adapter: new DashScopeAdapter({ model: 'm', apiKey: SECRET }),
      bodies: [`data:unauthorized key ${SECRET}\n\n`, `data:{"note":"key ${SECRET}"}\n\n`, `data:{"output":{"note":"${SECRET}"}}\n\n`],
    },
  };
  for (const [kind, { adapter, bodies }] of Object.entries(bad)) {
    for (const body of bodies) {
      const { error } = await failing(adapter.parseStream(chunks(body)));
      upstreamError(t, error, 'bad_response', /\*\*\*/, `${kind} ${JSON.stringify(body.slice(0, 24))}: the key is masked`);
      const shown: string[] = [];
      for (let e: unknown = error, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) shown.push(e.message, e.stack ?? '');
      t.notOk(shown.some((text) => text.includes(SECRET)), `${kind}: not in any message or stack of the error and its causes`);
    }
  }
});

// ---------------------------------------------------------------- OpenAI

const OPENAI_STREAM = [
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}',
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":"Aye"},"logprobs":null,"finish_reason":null}],"usage":null}',
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":", a room"},"logprobs":null,"finish_reason":null}],"usage":null}',
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{"content":" 🌧 upstairs."},"logprobs":null,"finish_reason":null}],"usage":null}',
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}',
  'data: {"id":"chatcmpl-A1","object":"chat.completion.chunk","created":1718000000,"model":"gpt-4o-mini-2024-07-18","system_fingerprint":"fp_0ba0d124f1","choices":[],"usage":{"prompt_tokens":42,"completion_tokens":6,"total_tokens":48,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}',
  'data: [DONE]',
  '',
].join('\n\n');

function openAiChunk(choices: unknown[], extra: Record<string, unknown> = {}): string {
  return `data: ${JSON.stringify({ id: 'c', object: 'chat.completion.chunk', created: 1, model: 'm', choices, ...extra })}\n\n`;
}

t.test('OpenAI request: model, messages, options, headers', async (t) => {
  const a = new OpenAiAdapter({ model: 'gpt-4o-mini', apiKey: 'sk-test' });
  t.equal(a.kind, 'openai');
  t.equal(a.model, 'gpt-4o-mini');
  const r = a.chatRequest(request({ temperature: 0.7, topP: 0.9, stop: ['\nUser:'], traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' }));
  t.equal(r.method, 'POST');
  t.equal(r.path, '/chat/completions');
  t.same(r.headers, {
    'content-type': 'application/json',
    accept: 'text/event-stream',
    authorization: 'Bearer sk-test',
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  });
  t.strictSame(bodyOf(r), {
    model: 'gpt-4o-mini',
    messages: [
      { role: 'system', content: 'You are Mara, keeper of the Drowned Lantern.' },
      { role: 'assistant', content: 'Welcome in, out of the rain.' },
      { role: 'user', content: 'A room for the night?', name: 'Old_Tom' },
    ],
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: 128,
    temperature: 0.7,
    top_p: 0.9,
    stop: ['\nUser:'],
    seed: 0xdeadbeef,
  });
  t.same(Object.keys(bodyOf(r)), ['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'temperature', 'top_p', 'stop', 'seed'], 'fields in order');

  const bare = new OpenAiAdapter({ model: 'local' }).chatRequest(request({ stop: [] }));
  t.same(bare.headers, { 'content-type': 'application/json', accept: 'text/event-stream' }, 'no authorization without a key, no traceparent unless set');
  t.same(Object.keys(bodyOf(bare)), ['model', 'messages', 'stream', 'stream_options', 'max_tokens', 'seed'], 'unset options are left out');
  t.same(new OpenAiAdapter({ model: 'm', apiKey: '' }).chatRequest(request()).headers.authorization, undefined, 'an empty key is no key');

  t.same(a.healthRequest(), { method: 'GET', path: '/models', headers: { accept: 'application/json', authorization: 'Bearer sk-test' } });
  t.same(new OpenAiAdapter({ model: 'm' }).healthRequest().headers, { accept: 'application/json' });
});

t.test('OpenAI speaker names are sent in the shape the API accepts', async (t) => {
  t.equal(openAiName('Mara'), 'Mara');
  t.equal(openAiName(' Old Tom '), 'Old_Tom');
  t.equal(openAiName('Renée-2'), 'Rene-2');
  t.equal(openAiName('剑客'), undefined, 'nothing left: not sent');
  t.equal(openAiName('x'.repeat(80))?.length, 64);
  const body = bodyOf(new OpenAiAdapter({ model: 'm' }).chatRequest(request({ messages: [{ role: 'user', content: 'hi', name: '剑客' }] })));
  t.same(body.messages, [{ role: 'user', content: 'hi' }]);
});

t.test('OpenAI stream: text, finish and usage from a recorded stream', async (t) => {
  const a = new OpenAiAdapter({ model: 'gpt-4o-mini' });
  const { pieces, end, events } = await run(a, chunks(OPENAI_STREAM));
  t.same(pieces, ['Aye', ', a room', ' 🌧 upstairs.'], 'role-only and empty deltas skipped');
  t.same(end, { type: 'end', finish: 'stop', usage: { promptTokens: 42, completionTokens: 6 } });
  t.equal(events.at(-1)?.type, 'end', 'the end comes last');
  const bytes = enc.encode(OPENAI_STREAM);
  const oneByte = await run(a, chunks(...split(bytes, ...Array.from({ length: bytes.length - 1 }, (_, i) => i + 1))));
  t.same(oneByte.pieces, pieces, 'one byte a chunk');
});

t.test('OpenAI finish reasons and optional usage', async (t) => {
  const a = new OpenAiAdapter({ model: 'm' });
  const ends = async (reason: string | null, usage?: unknown) =>
    (await run(a, chunks(openAiChunk([{ index: 0, delta: { content: 'x' }, finish_reason: reason }], usage === undefined ? {} : { usage }), 'data: [DONE]\n\n'))).end;
  t.same(await ends('stop'), { type: 'end', finish: 'stop' }, 'no usage chunk: no usage');
  t.same(await ends('length'), { type: 'end', finish: 'length' });
  t.same(await ends('content_filter'), { type: 'end', finish: 'stop' });
  t.same(await ends('tool_calls'), { type: 'end', finish: 'stop' });
  t.same(await ends(null), { type: 'end', finish: 'stop' }, '[DONE] without a finish reason is a stop');
  t.same(await ends('stop', { prompt_tokens: 3, completion_tokens: 1, total_tokens: 4 }), { type: 'end', finish: 'stop', usage: { promptTokens: 3, completionTokens: 1 } }, 'usage in the finishing chunk (llama.cpp, vLLM)');
  t.same(await ends('stop', { total_tokens: 4 }), { type: 'end', finish: 'stop' }, 'partial usage is ignored');
  const { pieces } = await run(a, chunks(openAiChunk([{ index: 0, delta: { content: null, reasoning_content: 'thinking' }, finish_reason: null }]), openAiChunk([{ index: 0, delta: { content: 'ok' }, finish_reason: 'stop' }]), 'data:[DONE]\n\n'));
  t.same(pieces, ['ok'], 'null content and reasoning deltas are not text; "data:[DONE]" without a space ends');
});

t.test('OpenAI stream failures', async (t) => {
  const a = new OpenAiAdapter({ model: 'm', apiKey: 'sk-live-secret' });
  const first = openAiChunk([{ index: 0, delta: { content: 'Aye' }, finish_reason: null }]);

  let f = await failing(a.parseStream(chunks(first)));
  t.same(f.items, [{ type: 'text', text: 'Aye' }]);
  upstreamError(t, f.error, 'bad_response', /ended before \[DONE\]/);
  upstreamError(t, (await failing(a.parseStream(chunks(first, openAiChunk([{ index: 0, delta: {}, finish_reason: 'stop' }]))))).error, 'bad_response', /before \[DONE\]/, 'a finish reason is not the end marker');
  upstreamError(t, (await failing(a.parseStream(chunks('')))).error, 'bad_response', /before \[DONE\]/, 'an empty body');
  upstreamError(t, (await failing(a.parseStream(chunks(first, 'data: [DONE]')))).error, 'bad_response', /before \[DONE\]/, '[DONE] without its blank line is not dispatched');
  upstreamError(t, (await failing(a.parseStream(chunks(first, 'data: {"choices":[{"delta":{"content":"x"\n\n')))).error, 'bad_response', /OpenAI stream chunk is not JSON: \{"choices"/);
  upstreamError(t, (await failing(a.parseStream(chunks('data: hello\n\n')))).error, 'bad_response', /not JSON/);
  upstreamError(t, (await failing(a.parseStream(chunks('data: [1,2]\n\n')))).error, 'bad_response', /not a JSON object/);
  upstreamError(t, (await failing(a.parseStream(chunks('data: {"model":"m"}\n\n')))).error, 'bad_response', /no choices array/);
  upstreamError(t, (await failing(a.parseStream(chunks(`data: ${'x'.repeat(1024 * 1024 + 10)}\n\n`)))).error, 'bad_response', /longer than/);

  const inStream = async (error: unknown, event = '') => (await failing(a.parseStream(chunks(first, `${event}data: ${JSON.stringify({ error })}\n\n`)))).error;
  f = await failing(a.parseStream(chunks(first, 'data: {"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}\n\n')));
  t.same(f.items, [{ type: 'text', text: 'Aye' }], 'text before the error was yielded');
  upstreamError(t, f.error, 'rate_limited', /OpenAI stream error: rate_limit_exceeded: Rate limit reached/);
  upstreamError(t, await inStream({ message: 'quota', type: 'insufficient_quota', code: 'insufficient_quota' }), 'rate_limited');
  upstreamError(t, await inStream({ message: 'The server had an error', type: 'server_error', code: null }), 'unavailable', /server_error: The server had an error/);
  upstreamError(t, await inStream({ message: 'Overloaded', type: 'overloaded_error' }), 'unavailable');
  upstreamError(t, await inStream({ message: 'context too long', type: 'invalid_request_error', code: 'context_length_exceeded' }), 'bad_response');
  upstreamError(t, await inStream({ object: 'error', message: 'busy', type: 'ServiceUnavailableError', code: 503 }), 'unavailable', /busy/, 'vLLM puts the status in code');
  upstreamError(t, await inStream('plain text error'), 'bad_response', /plain text error/);
  upstreamError(t, await inStream({ message: 'bad key sk-live-secret' }), 'bad_response', /bad key \*\*\*/, 'the key never shows');
  upstreamError(t, (await failing(a.parseStream(chunks(first, 'event: error\ndata: {"message":"Too many requests","type":"rate_limit_error"}\n\n')))).error, 'rate_limited', /Too many requests/, 'event: error');
});

t.test('OpenAI reads the rest of the body after [DONE], up to a bound', async (t) => {
  const a = new OpenAiAdapter({ model: 'm' });
  let pulled = 0;
  async function* body(extra: number): AsyncGenerator<Uint8Array> {
    yield enc.encode(openAiChunk([{ index: 0, delta: { content: 'x' }, finish_reason: 'stop' }]) + 'data: [DONE]\n\n');
    for (let i = 0; i < extra; i++) {
      pulled++;
      yield enc.encode('data: {"junk":true}\n\n');
    }
  }
  t.same((await run(a, body(3))).end, { type: 'end', finish: 'stop' });
  t.equal(pulled, 3, 'read to the end');
  pulled = 0;
  t.same((await run(a, body(1000))).end, { type: 'end', finish: 'stop' }, 'junk after [DONE] is ignored');
  t.equal(pulled, EVENTS_AFTER_END + 1, 'given up after a few events');
});

t.test('OpenAI failure(): error bodies and their reasons', async (t) => {
  const a = new OpenAiAdapter({ model: 'm', apiKey: 'sk-live-secret' });
  t.same(a.failure(401, '{"error":{"message":"Incorrect API key provided: sk-live-secret.","type":"invalid_request_error","param":null,"code":"invalid_api_key"}}'), {
    message: 'invalid_api_key: Incorrect API key provided: ***.',
    reason: 'rejected',
  });
  t.same(a.failure(429, '{"error":{"message":"You exceeded your current quota, please check your plan and billing details.","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}'), {
    message: 'insufficient_quota: You exceeded your current quota, please check your plan and billing details.',
    reason: 'rate_limited',
  });
  t.same(a.failure(404, '{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","code":"model_not_found"}}').reason, 'rejected');
  t.same(a.failure(400, '{"error":{"message":"max_tokens is too large","type":"invalid_request_error","code":null}}'), { message: 'invalid_request_error: max_tokens is too large', reason: 'rejected' });
  t.same(a.failure(500, '{"error":{"message":"The server had an error","type":"server_error"}}'), { message: 'server_error: The server had an error', reason: 'unavailable' });
  t.same(a.failure(503, '{"error":"model is loading"}'), { message: 'model is loading', reason: 'unavailable' });
  t.same(a.failure(422, '{"detail":"field required"}'), { message: 'field required', reason: 'rejected' });
  t.same(a.failure(400, '{"message":"bad"}'), { message: 'bad', reason: 'rejected' });
  t.same(a.failure(504, '<html>\n<body>Gateway Timeout</body>\n</html>'), { message: '<html> <body>Gateway Timeout</body> </html>', reason: 'timeout' });
  const html = a.failure(502, `<html>${'x'.repeat(500)}</html>`);
  t.equal(html.message.length, 201, 'a non-JSON body is quoted to 200 characters');
  t.equal(html.reason, 'unavailable');
  t.same(a.failure(500, ''), { message: 'no error message', reason: 'unavailable' });
});

t.test('OpenAI stream error reasons', async (t) => {
  t.equal(streamErrorReason('rate_limit_exceeded', 'requests'), 'rate_limited');
  t.equal(streamErrorReason(null, 'rate_limit_error'), 'rate_limited');
  t.equal(streamErrorReason(null, 'server_error'), 'unavailable');
  t.equal(streamErrorReason(429, 'x'), 'rate_limited');
  t.equal(streamErrorReason(500, 'x'), 'unavailable');
  t.equal(streamErrorReason(400, 'x'), 'bad_response');
  t.equal(streamErrorReason(undefined, undefined), 'bad_response');
});

// ---------------------------------------------------------------- Ollama

const OLLAMA_STREAM = [
  '{"model":"llama3.2","created_at":"2024-10-01T12:00:00.123456Z","message":{"role":"assistant","content":"Aye"},"done":false}',
  '{"model":"llama3.2","created_at":"2024-10-01T12:00:00.223456Z","message":{"role":"assistant","content":", a room"},"done":false}',
  '{"model":"llama3.2","created_at":"2024-10-01T12:00:00.323456Z","message":{"role":"assistant","content":" 🌧 upstairs."},"done":false}',
  '{"model":"llama3.2","created_at":"2024-10-01T12:00:00.423456Z","message":{"role":"assistant","content":""},"done_reason":"stop","done":true,"total_duration":4883583458,"load_duration":1334875,"prompt_eval_count":26,"prompt_eval_duration":342546000,"eval_count":3,"eval_duration":4535599000}',
  '',
].join('\n');

function ollamaLine(fields: Record<string, unknown>): string {
  return `${JSON.stringify({ model: 'm', created_at: '2024-01-01T00:00:00Z', ...fields })}\n`;
}

t.test('Ollama request: model, messages, options, keep_alive, headers', async (t) => {
  const a = new OllamaAdapter({ model: 'llama3.2', keepAlive: '10m' });
  t.equal(a.kind, 'ollama');
  const r = a.chatRequest(request({ temperature: 0.8, topP: 0.95, stop: ['###'], traceparent: 'tp' }));
  t.equal(r.method, 'POST');
  t.equal(r.path, '/api/chat');
  t.same(r.headers, { 'content-type': 'application/json', accept: 'application/x-ndjson', traceparent: 'tp' }, 'no authorization without a key');
  t.strictSame(bodyOf(r), {
    model: 'llama3.2',
    messages: [
      { role: 'system', content: 'You are Mara, keeper of the Drowned Lantern.' },
      { role: 'assistant', content: 'Welcome in, out of the rain.' },
      { role: 'user', content: 'A room for the night?' },
    ],
    stream: true,
    options: { num_predict: 128, temperature: 0.8, top_p: 0.95, stop: ['###'], seed: 0xdeadbeef },
    keep_alive: '10m',
  });
  const bare = bodyOf(new OllamaAdapter({ model: 'm' }).chatRequest(request()));
  t.same(bare.options, { num_predict: 128, seed: 0xdeadbeef });
  t.notOk('keep_alive' in bare, 'Ollama\'s default keep_alive when unset');
  t.equal(bodyOf(new OllamaAdapter({ model: 'm', keepAlive: '-1' }).chatRequest(request())).keep_alive, -1, 'bare seconds go as a number');
  t.equal(keepAliveValue('600'), 600);
  t.equal(keepAliveValue(' 1h '), '1h');
  t.equal(keepAliveValue(''), undefined);
  const keyed = new OllamaAdapter({ model: 'm', apiKey: 'k' });
  t.equal(keyed.chatRequest(request()).headers.authorization, 'Bearer k', 'a key (an authenticating proxy) is sent');
  t.same(keyed.healthRequest(), { method: 'GET', path: '/api/tags', headers: { accept: 'application/json', authorization: 'Bearer k' } });
});

t.test('Ollama stream: text, finish and usage from a recorded stream', async (t) => {
  const a = new OllamaAdapter({ model: 'llama3.2' });
  const { pieces, end } = await run(a, chunks(OLLAMA_STREAM));
  t.same(pieces, ['Aye', ', a room', ' 🌧 upstairs.']);
  t.same(end, { type: 'end', finish: 'stop', usage: { promptTokens: 26, completionTokens: 3 } });
  const bytes = enc.encode(OLLAMA_STREAM);
  for (let i = 0; i <= bytes.length; i += 7) {
    const got = await run(a, chunks(...split(bytes, i)));
    if (got.text !== 'Aye, a room 🌧 upstairs.') t.fail(`split at ${i}`);
  }
  t.same((await run(a, chunks(ollamaLine({ message: { role: 'assistant', content: 'x' }, done: true, done_reason: 'length', eval_count: 1 })))).end, { type: 'end', finish: 'length' }, 'length; no usage without prompt_eval_count');
  t.same((await run(a, chunks(ollamaLine({ message: { role: 'assistant', content: '' }, done: true })))).end, { type: 'end', finish: 'stop' }, 'no done_reason (old Ollama) is a stop');
  t.same((await run(a, chunks(ollamaLine({ message: { role: 'assistant', content: 'hm', thinking: 'hidden' }, done: false }), ollamaLine({ done: true, done_reason: 'stop' })))).pieces, ['hm'], 'thinking is not text');
});

t.test('Ollama stream failures', async (t) => {
  const a = new OllamaAdapter({ model: 'm' });
  const first = ollamaLine({ message: { role: 'assistant', content: 'Aye' }, done: false });
  let f = await failing(a.parseStream(chunks(first)));
  t.same(f.items, [{ type: 'text', text: 'Aye' }]);
  upstreamError(t, f.error, 'bad_response', /ended before its "done": true line/);
  upstreamError(t, (await failing(a.parseStream(chunks('')))).error, 'bad_response', /ended before/);
  upstreamError(t, (await failing(a.parseStream(chunks(first, '{"model":"m","message":{"content":"x\n')))).error, 'bad_response', /malformed NDJSON line at line 2/);
  upstreamError(t, (await failing(a.parseStream(chunks('"just a string"\n')))).error, 'bad_response', /not a JSON object/);
  f = await failing(a.parseStream(chunks(first, '{"error":"an error was encountered while running the model: unexpected EOF"}\n')));
  t.same(f.items, [{ type: 'text', text: 'Aye' }]);
  upstreamError(t, f.error, 'bad_response', /Ollama stream error: an error was encountered while running the model: unexpected EOF/);
});

t.test('Ollama failure(): error bodies and their reasons', async (t) => {
  const a = new OllamaAdapter({ model: 'm' });
  t.same(a.failure(404, '{"error":"model \\"nope\\" not found, try pulling it first"}'), { message: 'model "nope" not found, try pulling it first', reason: 'rejected' });
  t.same(a.failure(400, '{"error":"invalid options: num_predict"}'), { message: 'invalid options: num_predict', reason: 'rejected' });
  t.same(a.failure(500, '{"error":"model requires more system memory (5.5 GiB) than is available (2.1 GiB)"}').reason, 'unavailable');
  t.same(a.failure(503, '{"error":"server busy, please try again.  maximum pending requests exceeded"}'), { message: 'server busy, please try again. maximum pending requests exceeded', reason: 'unavailable' });
  t.same(a.failure(502, 'Bad Gateway'), { message: 'Bad Gateway', reason: 'unavailable' });
  t.same(a.failure(401, ''), { message: 'no error message', reason: 'rejected' });
});

// ---------------------------------------------------------------- DashScope

function dashScopeEvent(id: number, content: string, finish: string, usage: [number, number] = [18, id], extra = ''): string {
  const data = {
    output: { choices: [{ message: { content, role: 'assistant' }, finish_reason: finish }] },
    usage: { total_tokens: usage[0] + usage[1], input_tokens: usage[0], output_tokens: usage[1] },
    request_id: 'a1b2c3d4-0000-4000-8000-000000000001',
  };
  return `id:${id}\nevent:result\n:HTTP_STATUS/200\n${extra}data:${JSON.stringify(data)}\n\n`;
}

const DASHSCOPE_STREAM = [dashScopeEvent(1, '你好', 'null'), dashScopeEvent(2, '，旅人', 'null'), dashScopeEvent(3, '。🌧', 'null'), dashScopeEvent(4, '', 'stop', [18, 5])].join('');

t.test('DashScope request: native text-generation API', async (t) => {
  const a = new DashScopeAdapter({ model: 'qwen-plus', apiKey: 'sk-ds' });
  t.equal(a.kind, 'dashscope');
  const r = a.chatRequest(request({ temperature: 0.85, topP: 0.8, stop: ['用户：'], traceparent: 'tp' }));
  t.equal(r.method, 'POST');
  t.equal(r.path, '/api/v1/services/aigc/text-generation/generation');
  t.same(r.headers, { accept: 'text/event-stream', authorization: 'Bearer sk-ds', traceparent: 'tp', 'content-type': 'application/json', 'x-dashscope-sse': 'enable' });
  t.strictSame(bodyOf(r), {
    model: 'qwen-plus',
    input: {
      messages: [
        { role: 'system', content: 'You are Mara, keeper of the Drowned Lantern.' },
        { role: 'assistant', content: 'Welcome in, out of the rain.' },
        { role: 'user', content: 'A room for the night?' },
      ],
    },
    parameters: { result_format: 'message', incremental_output: true, max_tokens: 128, temperature: 0.85, top_p: 0.8, stop: ['用户：'], seed: 0xdeadbeef % 2 ** 31 },
  });
  t.equal(bodyOf(a.chatRequest(request({ seed: 12345 }))).parameters.seed, 12345, 'a 31-bit seed goes as is');
  t.same(Object.keys(bodyOf(new DashScopeAdapter({ model: 'm' }).chatRequest(request())).parameters), ['result_format', 'incremental_output', 'max_tokens', 'seed']);
  t.notOk('authorization' in new DashScopeAdapter({ model: 'm' }).chatRequest(request()).headers);
  t.same(a.healthRequest(), { method: 'GET', path: '/compatible-mode/v1/models', headers: { accept: 'application/json', authorization: 'Bearer sk-ds' } });
});

t.test('DashScope stream: text, finish and usage from a recorded stream', async (t) => {
  const a = new DashScopeAdapter({ model: 'qwen-plus' });
  const { pieces, end } = await run(a, chunks(DASHSCOPE_STREAM));
  t.same(pieces, ['你好', '，旅人', '。🌧']);
  t.same(end, { type: 'end', finish: 'stop', usage: { promptTokens: 18, completionTokens: 5 } });
  const bytes = enc.encode(DASHSCOPE_STREAM);
  for (let i = 0; i <= bytes.length; i++) {
    const got = await run(a, chunks(...split(bytes, i)));
    if (got.text !== '你好，旅人。🌧' || got.end === undefined) {
      t.fail(`split at ${i}`);
      return;
    }
  }
  t.same((await run(a, chunks(dashScopeEvent(1, '长', 'null'), dashScopeEvent(2, '话', 'length', [10, 2])))).end, { type: 'end', finish: 'length', usage: { promptTokens: 10, completionTokens: 2 } });
  t.same((await run(a, chunks(dashScopeEvent(1, '终', 'stop')))).pieces, ['终'], 'text in the finishing event counts');
  const crlf = DASHSCOPE_STREAM.replace(/\n/g, '\r\n');
  t.equal((await run(a, chunks(crlf))).text, '你好，旅人。🌧', 'CRLF line ends');
  const nullFinish = `id:1\nevent:result\ndata:${JSON.stringify({ output: { choices: [{ message: { content: 'a', role: 'assistant' }, finish_reason: null }] } })}\n\n` + dashScopeEvent(2, 'b', 'stop');
  t.equal((await run(a, chunks(nullFinish))).text, 'ab', 'a JSON null finish_reason is not the end either');
});

t.test('DashScope stream failures', async (t) => {
  const a = new DashScopeAdapter({ model: 'm', apiKey: 'sk-ds-secret' });
  const first = dashScopeEvent(1, '你好', 'null');
  let f = await failing(a.parseStream(chunks(first, dashScopeEvent(2, '，', 'null'))));
  t.same(f.items, [{ type: 'text', text: '你好' }, { type: 'text', text: '，' }]);
  upstreamError(t, f.error, 'bad_response', /ended before the event with a finish_reason/);
  upstreamError(t, (await failing(a.parseStream(chunks(first, 'id:2\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"choi\n\n')))).error, 'bad_response', /DashScope stream event is not JSON/);
  upstreamError(t, (await failing(a.parseStream(chunks('id:1\nevent:result\ndata:{"output":{"text":"x","finish_reason":"null"}}\n\n')))).error, 'bad_response', /no output.choices/, 'result_format "text" is not what was asked for');
  upstreamError(t, (await failing(a.parseStream(chunks('data:{"request_id":"r"}\n\n')))).error, 'bad_response', /no output/);

  const errorEvent = (status: number, code: string, message: string) => `id:2\nevent:error\n:HTTP_STATUS/${status}\ndata:${JSON.stringify({ code, message, request_id: 'req-9' })}\n\n`;
  f = await failing(a.parseStream(chunks(first, errorEvent(429, 'Throttling.RateQuota', 'Requests rate limit exceeded, please try again later.'))));
  t.same(f.items, [{ type: 'text', text: '你好' }]);
  upstreamError(t, f.error, 'rate_limited', /DashScope stream error \(HTTP_STATUS\/429\): Throttling.RateQuota: Requests rate limit exceeded, please try again later. \(request_id req-9\)/);
  upstreamError(t, (await failing(a.parseStream(chunks(first, errorEvent(400, 'DataInspectionFailed', 'Output data may contain inappropriate content.'))))).error, 'rejected', /DataInspectionFailed/);
  upstreamError(t, (await failing(a.parseStream(chunks(errorEvent(500, 'InternalError.Algo', 'An internal error has occured'))))).error, 'unavailable');
  upstreamError(t, (await failing(a.parseStream(chunks(errorEvent(503, 'SomethingNew', 'busy'))))).error, 'unavailable', /busy/, 'an unknown code goes by its status');
  upstreamError(t, (await failing(a.parseStream(chunks('id:2\nevent:error\ndata:oops\n\n')))).error, 'bad_response', /oops/, 'neither code nor status');
  upstreamError(t, (await failing(a.parseStream(chunks('id:1\nevent:result\n:HTTP_STATUS/401\ndata:{"code":"InvalidApiKey","message":"Invalid API-key provided: sk-ds-secret"}\n\n')))).error, 'rejected', /InvalidApiKey: Invalid API-key provided: \*\*\*/, 'a non-2xx HTTP_STATUS comment is an error too; the key never shows');
  upstreamError(t, (await failing(a.parseStream(chunks('data:{"code":"Throttling","message":"slow down"}\n\n')))).error, 'rate_limited', /slow down/, 'an error body without event:error');
});

t.test('DashScope failure(): error bodies and their reasons', async (t) => {
  const a = new DashScopeAdapter({ model: 'm', apiKey: 'sk-ds-secret' });
  t.same(a.failure(401, '{"code":"InvalidApiKey","message":"Invalid API-key provided.","request_id":"902fee3b-f7f0-9a8c-96a1-6b4ea25af114"}'), {
    message: 'InvalidApiKey: Invalid API-key provided. (request_id 902fee3b-f7f0-9a8c-96a1-6b4ea25af114)',
    reason: 'rejected',
  });
  t.same(a.failure(429, '{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded, please try again later.","request_id":"r"}').reason, 'rate_limited');
  t.same(a.failure(429, '{"code":"Throttling.AllocationQuota","message":"Allocated quota exceeded","request_id":"r"}').reason, 'rate_limited');
  t.same(a.failure(400, '{"code":"Throttling","message":"throttled in a 400"}').reason, 'rate_limited', 'the code wins over the status');
  t.same(a.failure(500, '{"code":"InternalError","message":"An internal error has occured","request_id":"r"}').reason, 'unavailable');
  t.same(a.failure(400, '{"code":"InvalidParameter","message":"Range of input length should be [1, 30720]","request_id":"r"}').reason, 'rejected');
  t.same(a.failure(400, '{"code":"DataInspectionFailed","message":"Input data may contain inappropriate content.","request_id":"r"}').reason, 'rejected');
  t.same(a.failure(403, '{"code":"AccessDenied.Unpurchased","message":"Access to model denied."}').reason, 'rejected');
  t.same(a.failure(408, '{"code":"RequestTimeOut","message":"Request timed out"}').reason, 'timeout');
  t.same(a.failure(418, '{"code":"Teapot","message":"?"}').reason, 'rejected', 'an unknown code goes by the status');
  t.same(a.failure(502, '<html>bad gateway</html>'), { message: '<html>bad gateway</html>', reason: 'unavailable' });
  t.equal(codeReason('data_inspection_failed'), 'rejected', 'compatible-mode spelling');
  t.equal(codeReason(''), undefined);
});

// ---------------------------------------------------------------- the fakes, through fetch

interface Outcome {
  status: number;
  text: string;
  end?: StreamEvent;
  error?: unknown;
  retryAfter?: string | null;
}

const ADAPTERS: Record<FakeKind, (apiKey?: string) => ApiAdapter> = {
  openai: (apiKey) => new OpenAiAdapter({ model: 'fake-model', apiKey }),
  ollama: (apiKey) => new OllamaAdapter({ model: 'fake-model', apiKey, keepAlive: '5m' }),
  dashscope: (apiKey) => new DashScopeAdapter({ model: 'fake-model', apiKey }),
};

async function send(fake: FakeUpstream, r: UpstreamRequest, signal?: AbortSignal): Promise<Response> {
  return fetch(fake.url + r.path, { method: r.method, headers: r.headers, body: r.body, signal });
}

/** One chat request through plain fetch, the body parsed by the adapter (or its failure read by it). */
async function through(fake: FakeUpstream, adapter: ApiAdapter, behaviour?: Behaviour): Promise<Outcome> {
  if (behaviour) fake.script(behaviour);
  const res = await send(fake, adapter.chatRequest(request()));
  if (res.status < 200 || res.status >= 300) {
    const failure = adapter.failure(res.status, await res.text());
    return { status: res.status, text: '', error: failure, retryAfter: res.headers.get('retry-after') };
  }
  const pieces: string[] = [];
  let end: StreamEvent | undefined;
  try {
    for await (const e of decodeStream(adapter.decoder(), res.body as unknown as AsyncIterable<Uint8Array>)) {
      if (e.type === 'text') pieces.push(e.text);
      else end = e;
    }
  } catch (error) {
    return { status: res.status, text: pieces.join(''), error };
  }
  return { status: res.status, text: pieces.join(''), end };
}

const IN_STREAM_ERRORS: Record<FakeKind, { behaviour: Behaviour; reason: string }> = {
  openai: { behaviour: { type: 'stream-error', afterTokens: 2, code: 'rate_limit_exceeded', message: 'Rate limit reached' }, reason: 'rate_limited' },
  ollama: { behaviour: { type: 'stream-error', afterTokens: 2 }, reason: 'bad_response' },
  dashscope: { behaviour: { type: 'stream-error', afterTokens: 2, code: 'Throttling.RateQuota' }, reason: 'rate_limited' },
};

for (const kind of ['openai', 'ollama', 'dashscope'] as const) {
  t.test(`fake ${kind} speaks the format the ${kind} adapter parses`, async (t) => {
    const fake = await startFakeUpstream(kind, { apiKey: 'k-123' });
    t.teardown(() => fake.close());
    const adapter = ADAPTERS[kind]('k-123');
    const two = DEFAULT_TOKENS.slice(0, 2).join('');

    let o = await through(fake, adapter);
    t.equal(o.text, DEFAULT_TOKENS.join(''), 'default stream');
    t.equal(o.end?.type === 'end' && o.end.finish, 'stop');
    t.equal(o.end?.type === 'end' && o.end.usage?.completionTokens, DEFAULT_TOKENS.length, 'usage counts the tokens sent');
    t.ok(o.end?.type === 'end' && (o.end.usage?.promptTokens ?? 0) > 0);
    const req = fake.chatRequests[0];
    t.equal(req?.method, 'POST');
    t.equal(req?.headers.authorization, 'Bearer k-123');
    t.same(req?.body, JSON.parse(adapter.chatRequest(request()).body ?? ''), 'the fake recorded the JSON body');

    o = await through(fake, adapter, { type: 'stream', tokens: ['一', '二', '三'], finish: 'length', usage: { promptTokens: 7, completionTokens: 3 }, tokenDelayMs: 5, firstByteDelayMs: 10 });
    t.equal(o.text, '一二三');
    t.same(o.end, { type: 'end', finish: 'length', usage: { promptTokens: 7, completionTokens: 3 } });

    o = await through(fake, adapter, { type: 'status', status: 429, retryAfter: '2' });
    t.equal(o.status, 429);
    t.equal(o.retryAfter, '2');
    t.equal((o.error as { reason?: string }).reason, 'rate_limited');
    t.ok((o.error as { message: string }).message.length > 0, `429 message: ${(o.error as { message: string }).message}`);
    o = await through(fake, adapter, { type: 'status', status: 500 });
    t.equal((o.error as { reason?: string }).reason, 'unavailable', '500');
    o = await through(fake, adapter, { type: 'status', status: 404 });
    t.equal((o.error as { reason?: string }).reason, 'rejected', '404');
    o = await through(fake, adapter, { type: 'status', status: 502, body: '<html>proxy error</html>' });
    t.same(o.error, { message: '<html>proxy error</html>', reason: 'unavailable' }, 'a text body');

    const wrongKey = await through(fake, ADAPTERS[kind]('wrong'));
    t.equal(wrongKey.status, 401, 'the fake checks the key');
    t.equal((wrongKey.error as { reason?: string }).reason, 'rejected');

    o = await through(fake, adapter, { type: 'truncate', afterTokens: 2 });
    t.equal(o.text, two);
    upstreamError(t, o.error, 'bad_response', /ended before/);

    o = await through(fake, adapter, { type: 'malformed', afterTokens: 2 });
    t.equal(o.text, two);
    upstreamError(t, o.error, 'bad_response', /not JSON|malformed/);

    const { behaviour, reason } = IN_STREAM_ERRORS[kind];
    o = await through(fake, adapter, behaviour);
    t.equal(o.text, two);
    upstreamError(t, o.error, reason);

    o = await through(fake, adapter, { type: 'cut', afterTokens: 2 });
    t.equal(o.text, two, 'text before the cut arrived');
    t.ok(o.error !== undefined && !(o.error instanceof UpstreamError), `a cut is an I/O error for the transport to classify (${String(o.error)})`);

    // hang: the fake answers nothing; the client gives up.
    fake.script({ type: 'hang' });
    const before = fake.requests.length;
    const controller = new AbortController();
    const pending = send(fake, adapter.chatRequest(request()), controller.signal);
    await fake.waitForRequests(before + 1);
    controller.abort();
    await t.rejects(pending, { name: 'AbortError' });
    await waitFor(() => fake.aborted === 1, 2000);
    t.equal(fake.aborted, 1, 'the fake saw the client leave');
    t.equal(fake.requests.at(-1)?.aborted, true);

    const health = adapter.healthRequest();
    t.equal((await send(fake, health)).status, 200, 'health route');
    fake.healthy = false;
    const down = await send(fake, health);
    t.equal(down.status, 503, 'unhealthy');
    t.equal(adapter.failure(503, await down.text()).reason, 'unavailable');
    t.equal(fake.healthChecks, 2);

    t.ok(fake.connections >= 1, `${fake.connections} connections accepted`);
    t.ok(fake.maxInFlight >= 1);
    await waitFor(() => fake.inFlight === 0, 2000);
    t.equal(fake.inFlight, 0, 'nothing in flight at the end');
  });
}

t.test('fake: the default behaviour, a function of the request, and concurrency counts', async (t) => {
  const fake = await startFakeUpstream('ollama');
  t.teardown(() => fake.close());
  const adapter = ADAPTERS.ollama();
  fake.setDefault((r) => ({ type: 'stream', tokens: [String((r.body as { model: string }).model)], tokenDelayMs: 0, firstByteDelayMs: 50 }));
  const outcomes = await Promise.all([1, 2, 3].map(() => through(fake, adapter)));
  t.same(outcomes.map((o) => o.text), ['fake-model', 'fake-model', 'fake-model']);
  t.equal(fake.maxInFlight, 3, 'three at once');
  t.ok(fake.connections >= 3 && fake.openConnections <= fake.connections);
  t.equal(fake.chatRequests.length, 3);
  t.equal(fake.requests[0]?.path, '/api/chat');
  t.equal((await fetch(`${fake.url}/nope`)).status, 404, 'unknown routes are 404');
});

t.test('fake: DashScope without incremental_output repeats the text, as DashScope does', async (t) => {
  const fake = await startFakeUpstream('dashscope');
  t.teardown(() => fake.close());
  fake.script({ type: 'stream', tokens: ['a', 'b', 'c'] });
  const r = new DashScopeAdapter({ model: 'm' }).chatRequest(request());
  const body = JSON.parse(r.body ?? '');
  body.parameters.incremental_output = false;
  const res = await fetch(fake.url + r.path, { method: 'POST', headers: r.headers, body: JSON.stringify(body) });
  const text = await res.text();
  t.match(text, /"content":"ab"/);
  t.match(text, /^id:1\nevent:result\n:HTTP_STATUS\/200\ndata:\{"output"/);
});

t.test('fake: OpenAI sends usage only when asked', async (t) => {
  const fake = await startFakeUpstream('openai');
  t.teardown(() => fake.close());
  const r = new OpenAiAdapter({ model: 'm' }).chatRequest(request());
  const body = JSON.parse(r.body ?? '');
  delete body.stream_options;
  const res = await fetch(fake.url + r.path, { method: 'POST', headers: r.headers, body: JSON.stringify(body) });
  const text = await res.text();
  t.notMatch(text, /"usage"/);
  t.match(text, /data: \[DONE\]\n\n$/);
  t.equal(res.headers.get('content-type'), 'text/event-stream; charset=utf-8');
});

t.test('a stream parsed to its end leaves the connection reusable (undici pool)', async (t) => {
  for (const kind of ['openai', 'ollama', 'dashscope'] as const) {
    const fake = await startFakeUpstream(kind);
    const pool = new Pool(fake.origin, { connections: 1 });
    t.teardown(async () => {
      await pool.close();
      await fake.close();
    });
    const adapter = ADAPTERS[kind]();
    const basePath = new URL(fake.url).pathname.replace(/\/$/, '');
    for (let i = 0; i < 3; i++) {
      const r = adapter.chatRequest(request());
      const res = await pool.request({ method: r.method, path: basePath + r.path, headers: r.headers, body: r.body });
      t.equal(res.statusCode, 200);
      const { text, end } = await run(adapter, res.body);
      t.equal(text, DEFAULT_TOKENS.join(''));
      t.equal(end?.type, 'end');
    }
    t.equal(fake.connections, 1, `${kind}: three replies over one connection`);
  }
});

t.test('closedPortUrl refuses connections', async (t) => {
  const url = await closedPortUrl();
  t.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
  await t.rejects(fetch(url), 'connection refused');
});
