/**
 * HTTP routes: chat (JSON and SSE), characters, sessions, health and metrics.
 * Route templates double as the `route` metric label.
 */
import { basename } from 'node:path';
import type { HttpRequest, HttpResponse, TemplatedApp } from 'uWebSockets.js';
import type { CharacterRegistry } from '../characters/registry.js';
import type { Character, CharacterIssue } from '../characters/types.js';
import { isErrorCode, NpcdError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Metrics } from '../metrics/metrics.js';
import type { ProviderHealth } from '../providers/types.js';
import { decodeJson } from '../protocol/codec.js';
import type { StreamFrame } from '../protocol/types.js';
import {
  asMap,
  MAX_CHARACTER_REF_LENGTH,
  MAX_ID_LENGTH,
  optionalBoolean,
  optionalSessionId,
  optionalString,
  requireChatText,
  requireString,
} from '../protocol/validate.js';
import { newMessageId, type SessionEngine } from '../session/engine.js';
import type { Session } from '../session/session.js';
import type { Turn } from '../session/types.js';
import { type AdminDeps, exportCard, importCard } from './admin.js';
import { bearerToken, checkApiKey } from './auth.js';
import { cpuProfile, heapSnapshot } from './debug.js';
import { type ErrorBody, HttpExchange, npcdErrorBody } from './http.js';
import { completions, getModel, listModels, openAiErrorBody } from './openai.js';
import { SSE_HEADERS, SseWriter, sseEvent } from './sse.js';

export interface RouteDeps {
  readonly engine: SessionEngine;
  readonly registry: CharacterRegistry;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly providerName: string;
  /** Health of the provider's upstreams (empty for script/mock), shown by /readyz. */
  readonly providerHealth: () => readonly ProviderHealth[];
  readonly maxBodyBytes: number;
  /** Body limit of POST /v1/chat/completions, whose clients send the whole conversation. */
  readonly maxCompletionBodyBytes: number;
  readonly maxMessageChars: number;
  readonly apiKeys: readonly string[];
  /** Bytes an SSE stream may queue for a slow client before it is closed. */
  readonly sseMaxQueuedBytes: number;
  readonly isReady: () => { ready: boolean; reason: string };
  readonly admin: AdminDeps;
  /** Longest CPU profile /debug/profile takes (--profile-max-seconds). */
  readonly profileMaxSeconds: number;
}

type Handler = (x: HttpExchange, params: readonly string[]) => void | Promise<void>;

const METHODS = ['get', 'post', 'put', 'patch', 'del', 'options', 'head'] as const;
type Method = (typeof METHODS)[number];

export function registerRoutes(app: TemplatedApp, deps: RouteDeps): void {
  const routes = new Map<string, Map<Method, { handler: Handler; auth: boolean }>>();
  // How each route writes its errors (the OpenAI-compatible routes use OpenAI's shape).
  const errorBodies = new Map<string, ErrorBody>();
  const add = (method: Method, route: string, handler: Handler, auth = true, errorBody: ErrorBody = npcdErrorBody) => {
    if (!routes.has(route)) routes.set(route, new Map());
    routes.get(route)!.set(method, { handler, auth });
    errorBodies.set(route, errorBody);
  };

  add('post', '/v1/chat', (x) => chat(x, deps));
  add('post', '/v1/chat/completions', (x) => completions(x, deps), true, openAiErrorBody);
  add('get', '/v1/models', (x) => listModels(x, deps), true, openAiErrorBody);
  add('get', '/v1/models/:id', (x, [id]) => getModel(x, deps, id!), true, openAiErrorBody);
  add('get', '/v1/characters', (x) =>
    x.json(200, {
      characters: deps.registry.list().map(characterSummary),
      // Files that did not load (a character that loaded before keeps serving its last good version).
      failures: [...deps.registry.failures].map(([file, issues]) => ({ file: basename(file), issues: issues.map(issueJson) })),
    }),
  );
  add('get', '/v1/characters/:id', (x, [id]) => {
    const c = deps.registry.get(id!);
    if (!c) throw new NpcdError('ERR_CHARACTER_NOT_FOUND', `no character with id or name ${JSON.stringify(id)}`);
    const failed = deps.registry.failures.get(c.source);
    x.json(200, { ...characterDetail(c), load_error: failed ? { file: basename(c.source), issues: failed.map(issueJson) } : undefined });
  });
  add('get', '/v1/sessions/:id', async (x, [id]) => x.json(200, sessionSummary(await findSession(deps, id!))));
  add('get', '/v1/sessions/:id/messages', async (x, [id]) => {
    const session = await findSession(deps, id!);
    const params = new URLSearchParams(x.query);
    const offset = intParam(params, 'offset', 0, 0, Number.MAX_SAFE_INTEGER);
    const limit = intParam(params, 'limit', 100, 1, 1000);
    const turns = session.data.turns;
    x.json(200, {
      session_id: session.id,
      total: turns.length,
      offset,
      limit,
      messages: turns.slice(offset, offset + limit).map(messageJson),
    });
  });
  // Admin routes check their own keys (--admin-keys), not the API keys.
  add('post', '/v1/admin/characters', (x) => importCard(x, deps.admin), false);
  add('get', '/v1/admin/characters/:id/card', (x, [id]) => exportCard(x, deps.admin, id!), false);
  // Profiling (docs/profiling.md): admin keys too.
  const debug = { adminKeys: deps.admin.adminKeys, profileMaxSeconds: deps.profileMaxSeconds, logger: deps.logger };
  add('get', '/debug/profile', (x) => cpuProfile(x, debug), false);
  add('get', '/debug/heap', (x) => heapSnapshot(x, debug), false);
  add('get', '/healthz', (x) => x.json(200, { status: 'ok' }), false);
  add('get', '/readyz', (x) => {
    const { ready, reason } = deps.isReady();
    const upstreams = deps.providerHealth();
    x.json(ready ? 200 : 503, {
      status: ready ? 'ready' : 'not_ready',
      reason,
      characters: deps.registry.size,
      provider: deps.providerName,
      ...(upstreams.length > 0 && { upstreams }),
      sessions: deps.engine.sessionCount,
    });
  }, false);
  add('get', '/metrics', async (x) => {
    const body = await deps.metrics.registry.metrics();
    x.send(200, deps.metrics.registry.contentType, body);
  }, false);

  const run = async (x: HttpExchange, params: readonly string[], handler: Handler, auth: boolean) => {
    try {
      if (auth && deps.apiKeys.length > 0) {
        const problem = checkApiKey(deps.apiKeys, bearerToken(x.headers.authorization ?? ''));
        if (problem) throw problem;
      }
      await handler(x, params);
    } catch (err) {
      x.error(err);
    }
  };

  for (const [route, byMethod] of routes) {
    const errorBody = errorBodies.get(route) ?? npcdErrorBody;
    for (const [method, { handler, auth }] of byMethod) {
      const register = app[method].bind(app) as (pattern: string, h: (res: HttpResponse, req: HttpRequest) => void) => TemplatedApp;
      register(route, (res, req) => {
        const x = new HttpExchange(res, req, route, method === 'del' ? 'delete' : method, deps);
        x.errorBody = errorBody;
        const params = route.includes(':') ? paramsOf(req, route) : [];
        void run(x, params, handler, auth);
      });
    }
    // The route exists, other methods do not.
    app.any(route, (res, req) => {
      const x = new HttpExchange(res, req, route, req.getMethod(), deps);
      x.errorBody = errorBody;
      x.error(new NpcdError('ERR_HTTP_METHOD_NOT_ALLOWED', `${req.getCaseSensitiveMethod().toUpperCase()} is not allowed on ${route}`), {
        Allow: [...byMethod.keys()].map((m) => m.toUpperCase()).join(', '),
      });
    });
  }

}

function paramsOf(req: HttpRequest, route: string): string[] {
  const n = route.split(':').length - 1;
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const raw = req.getParameter(i) ?? '';
    try {
      out.push(decodeURIComponent(raw));
    } catch {
      out.push(raw);
    }
  }
  return out;
}

function intParam(params: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = params.get(name);
  if (raw === null || raw === '') return fallback;
  // Decimal digits only: Number() would also take "0x10", " 5" and "5e0".
  const n = /^\d{1,16}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(n) || n < min || n > max) {
    throw new NpcdError('ERR_PROTOCOL_INVALID_FIELD', `query parameter "${name}" must be an integer from ${min} to ${max}`, { detail: { field: name } });
  }
  return n;
}

async function findSession(deps: RouteDeps, id: string): Promise<Session> {
  const session = id.length <= MAX_ID_LENGTH ? await deps.engine.find(id) : undefined;
  if (!session) throw new NpcdError('ERR_SESSION_NOT_FOUND', `no session ${JSON.stringify(id.slice(0, MAX_ID_LENGTH))}`);
  return session;
}

function issueJson(i: CharacterIssue) {
  return { file: basename(i.file), line: i.line, column: i.column, message: i.message };
}

function characterSummary(c: Character) {
  return { id: c.id, name: c.name, description: c.description, greeting: c.greeting, states: c.states, initial_state: c.initialState };
}

function characterDetail(c: Character) {
  return {
    ...characterSummary(c),
    aliases: c.aliases,
    persona: c.persona,
    user_name: c.userName,
    examples: c.examples.length,
    triggers: c.triggers.map((t) => ({
      on_mention: t.onMention || undefined,
      on_keyword: t.keywords.length > 0 ? t.keywords : undefined,
      on_regex: t.regex?.source,
      in_state: t.inStates ? [...t.inStates] : undefined,
      respond: t.respond?.source,
      goto: t.goto,
    })),
  };
}

function sessionSummary(s: Session) {
  return {
    session_id: s.id,
    created_at: new Date(s.data.createdAt).toISOString(),
    last_active: new Date(s.data.lastActive).toISOString(),
    seq: s.seq,
    connected: s.owner !== undefined,
    // A reply another node generates (this node follows it) counts too.
    generating: s.generation?.id ?? s.remote?.id ?? null,
    states: s.data.states,
    user_turns: s.data.userTurns,
    messages: s.data.turns.length,
  };
}

function messageJson(t: Turn) {
  return { id: t.id, role: t.role, character: t.character, text: t.text, at: new Date(t.at).toISOString(), seq: t.seq, finish: t.finish };
}

/** POST /v1/chat: one turn, answered as JSON or streamed as SSE. */
async function chat(x: HttpExchange, deps: RouteDeps): Promise<void> {
  const body = asMap(decodeJson(await x.readBody(deps.maxBodyBytes)), 'request body');
  const sessionId = optionalSessionId(body, 'session_id');
  const character = requireString(body, 'character', MAX_CHARACTER_REF_LENGTH);
  const message = requireChatText(body, 'message', deps.maxMessageChars);
  const id = optionalString(body, 'id', MAX_ID_LENGTH) ?? newMessageId();
  const stream = optionalBoolean(body, 'stream') ?? /\btext\/event-stream\b/.test(x.headers.accept ?? '');
  if (x.aborted) return;
  // A request for a character that does not exist must not create a session.
  deps.registry.require(character);
  const { session } = await deps.engine.open(sessionId);
  if (x.aborted) return;
  const headers = { 'X-Session-Id': session.id };

  // Frames of this turn go to an SSE stream or into one JSON response; either
  // way the listener ends with the turn. The generation belongs to the
  // session: a client that goes away only stops listening.
  const onFrame = stream ? sseReply(x, deps, headers) : jsonReply(x, session.id, id, headers);
  const unsubscribe = session.subscribe((f) => {
    if (f.id !== id) return;
    if (f.t === 'done' || f.t === 'error') unsubscribe();
    onFrame(f);
  });
  x.onAbort(unsubscribe);
  const refused = (err: unknown) => {
    unsubscribe();
    x.error(err, headers);
  };
  try {
    deps.engine.chat(session, { id, character, text: message, trace: x.trace }).accepted.catch(refused);
  } catch (err) {
    refused(err);
  }
}

function sseReply(x: HttpExchange, deps: RouteDeps, headers: Record<string, string>): (f: StreamFrame) => void {
  const sse = new SseWriter(x, deps.sseMaxQueuedBytes);
  let started = false;
  return (f) => {
    if (!started) {
      sse.begin({ ...SSE_HEADERS, ...headers });
      started = true;
    }
    sse.write(sseEvent(f.t, JSON.stringify(f), f.seq));
    if (f.t === 'done' || f.t === 'error') sse.end();
  };
}

function jsonReply(x: HttpExchange, sessionId: string, id: string, headers: Record<string, string>): (f: StreamFrame) => void {
  let character: string | undefined;
  return (f) => {
    if (f.t === 'start') character = f.character;
    else if (f.t === 'done') {
      x.json(200, { session_id: sessionId, id, character, reply: f.text, state: f.state, seq: f.seq, finish: f.finish, usage: f.usage }, headers);
    } else if (f.t === 'error') {
      x.error(new NpcdError(isErrorCode(f.code) ? f.code : 'ERR_INTERNAL', f.message), headers);
    }
  };
}
