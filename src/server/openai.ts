/**
 * The OpenAI-compatible API (docs/openai.md): GET /v1/models lists the
 * characters as models; POST /v1/chat/completions runs one turn of the
 * session the conversation maps to, answered as a chat.completion object or
 * streamed as chat.completion.chunk events ending in `data: [DONE]`. Errors
 * use OpenAI's shape, `{"error": {message, type, param, code}}`.
 *
 * OpenAI clients cannot resume a stream: when one goes away, its reply is
 * cancelled at once.
 */
import { randomBytes } from 'node:crypto';
import type { Character } from '../characters/types.js';
import { isErrorCode, NpcdError } from '../errors.js';
import { decodeJson } from '../protocol/codec.js';
import type { DoneFrame, StreamFrame } from '../protocol/types.js';
import { asMap } from '../protocol/validate.js';
import { bearerToken } from './auth.js';
import type { ErrorBody, HttpExchange } from './http.js';
import { deriveSessionId, headerSessionId, parseCompletionRequest } from './openai-request.js';
import type { RouteDeps } from './routes.js';
import { SSE_HEADERS, SseWriter } from './sse.js';

/**
 * How long a request waits for the session's previous reply to end when
 * nobody listens to that reply any more (a client that dropped a request and
 * regenerates at once), before answering ERR_SESSION_BUSY.
 */
export const UNATTENDED_WAIT_MS = 2000;

/** OpenAI's `type` for an error. */
function errorType(e: NpcdError): string {
  switch (e.code) {
    case 'ERR_UPSTREAM_RATE_LIMITED':
      return 'rate_limit_error';
    case 'ERR_UPSTREAM_TIMEOUT':
      return 'timeout_error';
    case 'ERR_UPSTREAM_UNAVAILABLE':
    case 'ERR_UPSTREAM_BAD_RESPONSE':
    case 'ERR_UPSTREAM_REJECTED':
    case 'ERR_PROVIDER_FAILED':
      return 'upstream_error';
    default:
      if (e.status === 401) return 'authentication_error';
      if (e.status === 403) return 'permission_error';
      return e.status >= 500 ? 'server_error' : 'invalid_request_error';
  }
}

/** OpenAI's `code`: its own for the failures OpenAI clients know by code, npcd's ERR_* otherwise. */
function errorCode(e: NpcdError): string {
  switch (e.code) {
    case 'ERR_AUTH_REQUIRED':
    case 'ERR_AUTH_INVALID':
      return 'invalid_api_key';
    case 'ERR_CHARACTER_NOT_FOUND':
      return 'model_not_found';
    default:
      return e.code;
  }
}

export const openAiErrorBody: ErrorBody = (e) => ({
  error: {
    message: e.message,
    type: errorType(e),
    param: typeof e.detail?.field === 'string' ? e.detail.field : null,
    code: errorCode(e),
  },
});

function modelNotFound(model: string): NpcdError {
  return new NpcdError('ERR_CHARACTER_NOT_FOUND', `The model ${JSON.stringify(model.slice(0, 200))} does not exist; the models are the characters listed by GET /v1/models`, {
    detail: { field: 'model' },
  });
}

// A character's `created` is when this process first listed that version of
// it (a reloaded character is a new object, hence a new model version).
const firstSeen = new WeakMap<Character, number>();

function modelJson(c: Character) {
  let created = firstSeen.get(c);
  if (created === undefined) firstSeen.set(c, (created = Math.floor(Date.now() / 1000)));
  return { id: c.id, object: 'model', created, owned_by: 'npcd' };
}

/** GET /v1/models */
export function listModels(x: HttpExchange, deps: RouteDeps): void {
  x.json(200, { object: 'list', data: deps.registry.list().map(modelJson) });
}

/** GET /v1/models/:id (a character id or name) */
export function getModel(x: HttpExchange, deps: RouteDeps, id: string): void {
  const c = deps.registry.get(id);
  if (!c) throw modelNotFound(id);
  x.json(200, modelJson(c));
}

interface Completion {
  readonly id: string;
  readonly created: number;
  /** The character's id. */
  readonly model: string;
  readonly includeUsage: boolean;
}

/** The error a reply that ended as cancelled is reported with (the client still waits for it). */
function cancelledError(deps: RouteDeps): NpcdError {
  return deps.engine.isDraining
    ? new NpcdError('ERR_SHUTTING_DOWN', 'the server is shutting down; the reply was cancelled before it finished')
    : new NpcdError('ERR_CHAT_CANCELLED', 'the reply was cancelled before it finished (a cancel for this session)');
}

function frameError(f: StreamFrame & { t: 'error' }): NpcdError {
  return new NpcdError(isErrorCode(f.code) ? f.code : 'ERR_INTERNAL', f.message);
}

function usageJson(done: DoneFrame) {
  const { prompt_tokens, completion_tokens } = done.usage;
  return { prompt_tokens, completion_tokens, total_tokens: prompt_tokens + completion_tokens };
}

/** POST /v1/chat/completions */
export async function completions(x: HttpExchange, deps: RouteDeps): Promise<void> {
  const body = asMap(decodeJson(await x.readBody(deps.maxCompletionBodyBytes)), 'request body');
  const req = parseCompletionRequest(body, { maxMessageChars: deps.maxMessageChars });
  const character = deps.registry.get(req.model);
  if (!character) throw modelNotFound(req.model);
  const sessionId =
    headerSessionId(x.headers['x-session-id']) ??
    req.sessionId ??
    deriveSessionId({
      apiKey: bearerToken(x.headers.authorization ?? ''),
      user: req.user,
      character: character.id,
      firstUser: req.opening.firstUser,
      greeting: req.opening.greeting,
    });
  if (x.aborted) return;
  const { session } = await deps.engine.open(sessionId);
  if (x.aborted) return;
  await deps.engine.whenUnattendedDone(session, UNATTENDED_WAIT_MS);
  if (x.aborted) return;

  const completion: Completion = {
    id: 'chatcmpl-' + randomBytes(18).toString('base64url'),
    created: Math.floor(Date.now() / 1000),
    model: character.id,
    includeUsage: req.includeUsage,
  };
  const headers = { 'X-Session-Id': session.id };
  const onFrame = req.stream ? streamReply(x, deps, completion, headers) : jsonReply(x, deps, completion, headers);
  const id = completion.id;
  const unsubscribe = session.subscribe((f) => {
    if (f.id !== id) return;
    if (f.t === 'done' || f.t === 'error') unsubscribe();
    onFrame(f);
  });
  x.onAbort(() => {
    // Nobody can pick this reply up again: stop generating now.
    deps.engine.cancel(session, id);
    unsubscribe();
  });
  const refused = (err: unknown) => {
    unsubscribe();
    x.error(err, headers);
  };
  try {
    deps.engine
      .chat(session, {
        id,
        character: character.id,
        text: req.text,
        maxTokens: req.maxTokens,
        sampling: req.sampling,
        clientMessages: req.client,
        trace: x.trace,
      })
      .accepted.catch(refused);
  } catch (err) {
    refused(err);
  }
}

function jsonReply(x: HttpExchange, deps: RouteDeps, c: Completion, headers: Record<string, string>): (f: StreamFrame) => void {
  return (f) => {
    if (f.t === 'error') return x.error(frameError(f), headers);
    if (f.t !== 'done') return;
    if (f.finish === 'cancelled') return x.error(cancelledError(deps), headers);
    x.json(
      200,
      {
        id: c.id,
        object: 'chat.completion',
        created: c.created,
        model: c.model,
        choices: [{ index: 0, message: { role: 'assistant', content: f.text, refusal: null }, logprobs: null, finish_reason: f.finish }],
        usage: usageJson(f),
        system_fingerprint: null,
      },
      headers,
    );
  };
}

/**
 * Streams OpenAI chunks. The response starts with the first piece of the
 * reply (or its end), not with the turn: a turn that fails before producing
 * anything, e.g. an upstream answering 429, still gets its HTTP status.
 */
function streamReply(x: HttpExchange, deps: RouteDeps, c: Completion, headers: Record<string, string>): (f: StreamFrame) => void {
  const sse = new SseWriter(x, deps.sseMaxQueuedBytes);
  const head = `{"id":${JSON.stringify(c.id)},"object":"chat.completion.chunk","created":${c.created},"model":${JSON.stringify(c.model)},"system_fingerprint":null,"choices":`;
  // With include_usage every chunk but the last carries "usage": null.
  const tail = c.includeUsage ? ',"usage":null}' : '}';
  const chunk = (delta: string, finish: string | null) =>
    `data: ${head}[{"index":0,"delta":${delta},"logprobs":null,"finish_reason":${finish === null ? 'null' : JSON.stringify(finish)}}]${tail}\n\n`;
  let started = false;
  const begin = () => {
    if (started) return;
    started = true;
    sse.begin({ ...SSE_HEADERS, ...headers });
    sse.write(chunk('{"role":"assistant","content":""}', null));
  };
  const fail = (e: NpcdError) => {
    if (!started) return x.error(e, headers);
    sse.write(`data: ${JSON.stringify(openAiErrorBody(e))}\n\n`);
    sse.end();
  };
  return (f) => {
    switch (f.t) {
      case 'start':
        return;
      case 'token':
        begin();
        sse.write(chunk(`{"content":${JSON.stringify(f.text)}}`, null));
        return;
      case 'error':
        return fail(frameError(f));
      case 'done':
        if (f.finish === 'cancelled') return fail(cancelledError(deps));
        begin();
        sse.write(chunk('{}', f.finish));
        if (c.includeUsage) sse.write(`data: ${head}[],"usage":${JSON.stringify(usageJson(f))}}\n\n`);
        sse.write('data: [DONE]\n\n');
        sse.end();
        return;
    }
  };
}
