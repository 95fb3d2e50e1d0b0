import t from 'tap';
import { NpcdError } from '../../src/errors.js';
import { deriveSessionId, headerSessionId, parseCompletionRequest } from '../../src/server/openai-request.js';

const LIMITS = { maxMessageChars: 4000 };

function fails(body: Record<string, unknown>): NpcdError {
  try {
    parseCompletionRequest(body, LIMITS);
  } catch (err) {
    if (err instanceof NpcdError) return err;
    throw err;
  }
  throw new Error('did not fail');
}

t.test('the turn is the last user message; the rest is split around it', async (t) => {
  const req = parseCompletionRequest({
    model: 'station-ai',
    messages: [
      { role: 'system', content: 'sys' },
      { role: 'assistant', content: 'greeting' },
      { role: 'user', content: 'one', name: 'Alice' },
      { role: 'assistant', content: 'reply one' },
      { role: 'user', content: 'two', name: 'Alice' },
      { role: 'system', content: 'continue' },
      { role: 'assistant', content: 'Well' },
    ],
  }, LIMITS);
  t.equal(req.text, 'two');
  t.same(req.client.before.map((m) => m.content), ['sys', 'greeting', 'one', 'reply one']);
  t.same(req.client.after, [{ role: 'system', content: 'continue' }, { role: 'assistant', content: 'Well' }]);
  t.equal(req.client.userName, 'Alice');
  t.same(req.opening, { firstUser: 'one', greeting: 'greeting' });
  t.equal(req.stream, false);
  t.equal(req.includeUsage, false);
  t.same(req.sampling, {});
});

t.test('the length limit counts characters of the last user message, emoji as one', async (t) => {
  const limits = { maxMessageChars: 10 };
  const ok = parseCompletionRequest({ model: 'station-ai', messages: [{ role: 'user', content: '😀'.repeat(10) }] }, limits);
  t.equal(ok.text, '😀'.repeat(10), '10 emoji (20 UTF-16 code units) are within 10 characters');
  let err: unknown;
  try {
    parseCompletionRequest({ model: 'station-ai', messages: [{ role: 'user', content: '😀'.repeat(11) }] }, limits);
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof NpcdError);
  t.match(err, {
    code: 'ERR_CHAT_TEXT_TOO_LONG',
    message: 'the last user message is 11 characters; the limit is 10',
    detail: { field: 'messages[0].content', limit: 10 },
  });
});

t.test('options', async (t) => {
  const base = { model: 'x', messages: [{ role: 'user', content: 'hi' }] };
  const req = parseCompletionRequest({ ...base, stop: ['a', '', 'a', 'b'], max_tokens: 10, temperature: 0, top_p: 1, seed: -1, stream: true, stream_options: { include_usage: true }, user: 'u' }, LIMITS);
  t.same(req.sampling, { temperature: 0, topP: 1, stop: ['a', 'b'], seed: -1 }, 'empty and repeated stop sequences are dropped');
  t.equal(req.maxTokens, 10);
  t.equal(req.includeUsage, true);
  t.equal(req.user, 'u');
  t.same(parseCompletionRequest({ ...base, stop: 'END' }, LIMITS).sampling.stop, ['END']);
  t.equal(parseCompletionRequest({ ...base, stop: [] }, LIMITS).sampling.stop, undefined);
  t.equal(parseCompletionRequest({ ...base, stream_options: { include_usage: true } }, LIMITS).includeUsage, false, 'usage chunks only when streaming');
  t.equal(parseCompletionRequest({ ...base, n: 1, max_tokens: null, temperature: null, stop: null }, LIMITS).maxTokens, undefined, 'null is absent');

  t.equal(fails({ ...base, stop: ['\ud800'] }).detail?.field, 'stop[0]');
  t.equal(fails({ ...base, stop: 'x'.repeat(300) }).detail?.field, 'stop');
  t.equal(fails({ ...base, seed: 1.5 }).detail?.field, 'seed');
  t.equal(fails({ ...base, top_p: 2 }).detail?.field, 'top_p');
  t.equal(fails({ ...base, stream_options: 'yes' }).detail?.field, 'stream_options');
  t.equal(fails({ ...base, stream_options: { include_usage: 1 } }).detail?.field, 'stream_options.include_usage');
  t.equal(fails({ ...base, user: 5 }).detail?.field, 'user');
  t.equal(fails({ model: 'x', messages: [{ role: 'user', content: 'hi', name: 5 }] }).detail?.field, 'messages[0].name');
  t.equal(fails({ model: 'x', messages: [{ role: 'user' }] }).detail?.field, 'messages[0].content');
  t.equal(fails({ model: 'x', messages: ['hi'] }).detail?.field, 'messages[0]');
  t.equal(fails({ model: 'x', messages: [{ role: 'user', content: [{ type: 'text' }] }] }).detail?.field, 'messages[0].content[0].text');
  t.equal(fails({ model: 'x', messages: Array(10_001).fill({ role: 'user', content: 'hi' }) }).detail?.field, 'messages');
  t.equal(fails({ model: 5, messages: [] }).detail?.field, 'model');
  t.equal(fails({ ['__proto__']: { model: 'x' }, messages: [{ role: 'user', content: 'hi' }] }).code, 'ERR_PROTOCOL_MISSING_FIELD');
});

t.test('session ids: stable for a growing chat, distinct across chats', async (t) => {
  const key = { apiKey: undefined, user: undefined, character: 'station-ai', firstUser: 'hi', greeting: 'Hello.' };
  const id = deriveSessionId(key);
  t.match(id, /^oai_[A-Za-z0-9_-]{32}$/);
  t.equal(deriveSessionId({ ...key }), id);
  for (const change of [{ apiKey: 'k' }, { user: 'u' }, { character: 'tavern-keeper' }, { firstUser: 'hello' }, { greeting: undefined }]) {
    t.not(deriveSessionId({ ...key, ...change }), id, JSON.stringify(change));
  }
  // Parts cannot be shifted into one another.
  t.not(deriveSessionId({ ...key, firstUser: 'a', greeting: 'b' }), deriveSessionId({ ...key, firstUser: 'b', greeting: 'a' }));

  // Later calls of the same chat repeat its opening, whatever follows.
  const first = parseCompletionRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }] }, LIMITS);
  const later = parseCompletionRequest({ model: 'x', messages: [{ role: 'user', content: 'hi' }, { role: 'assistant', content: 'yo' }, { role: 'user', content: 'more' }] }, LIMITS);
  t.same(first.opening, later.opening, 'a reply after the first message is not a greeting');

  t.equal(headerSessionId(''), undefined);
  t.equal(headerSessionId(undefined), undefined);
  t.equal(headerSessionId('chat-1'), 'chat-1');
  t.throws(() => headerSessionId('a/b'), { code: 'ERR_PROTOCOL_INVALID_FIELD' });
});
