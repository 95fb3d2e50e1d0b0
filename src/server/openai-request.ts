/**
 * Validation of OpenAI chat completion requests (POST /v1/chat/completions,
 * docs/openai.md) and the session a conversation maps to. Pure functions:
 * every failure is an NpcdError whose `detail.field` is the OpenAI `param`
 * (e.g. `messages[2].content`). Only own properties are read; fields npcd
 * does not use are ignored, as OpenAI-compatible servers do.
 */
import { hash } from 'node:crypto';
import type { ClientMessages } from '../dialogue/prompt.js';
import type { Sampling } from '../dialogue/turn.js';
import { NpcdError } from '../errors.js';
import type { ChatMessage } from '../providers/types.js';
import { charsOver, type Fields, isRecord, MAX_CHARACTER_REF_LENGTH, optionalSessionId, ownField, SESSION_ID_RE } from '../protocol/validate.js';

/** Messages accepted in one request (the body size limit bounds them too). */
export const MAX_MESSAGES = 10_000;
/** OpenAI accepts up to 4 stop sequences. */
export const MAX_STOP_SEQUENCES = 4;
export const MAX_STOP_LENGTH = 256;
export const MAX_NAME_LENGTH = 256;
export const MAX_USER_LENGTH = 512;

export interface CompletionRequest {
  /** Character id or name. */
  readonly model: string;
  /** The last user message: the text of this turn. */
  readonly text: string;
  readonly client: ClientMessages;
  readonly maxTokens: number | undefined;
  readonly sampling: Sampling;
  readonly stream: boolean;
  readonly includeUsage: boolean;
  readonly user: string | undefined;
  readonly sessionId: string | undefined;
  /** What identifies the conversation when the client names no session. */
  readonly opening: { readonly firstUser: string; readonly greeting: string | undefined };
}

export interface CompletionLimits {
  /** Longest text of the turn's user message (--max-message-chars). */
  readonly maxMessageChars: number;
}

function invalid(field: string, why: string): NpcdError {
  return new NpcdError('ERR_PROTOCOL_INVALID_FIELD', `${field} ${why}`, { detail: { field } });
}

function missing(field: string): NpcdError {
  return new NpcdError('ERR_PROTOCOL_MISSING_FIELD', `missing required parameter ${field}`, { detail: { field } });
}

/** A lone surrogate would not survive UTF-8 on the way out. */
const LONE_SURROGATE = /\p{Surrogate}/u;

function optionalNumber(obj: Fields, name: string, min: number, max: number): number | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || v > max) throw invalid(name, `must be a number from ${min} to ${max}`);
  return v;
}

function optionalInteger(obj: Fields, name: string, min: number): number | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) throw invalid(name, `must be an integer of at least ${min}`);
  return v;
}

function optionalBool(obj: Fields, name: string, field = name): boolean | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(field, 'must be true or false');
  return v;
}

function optionalText(obj: Fields, name: string, maxLength: number, field = name): string | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid(field, 'must be a string');
  if (v.length > maxLength) throw invalid(field, `must be at most ${maxLength} characters`);
  return v;
}

function parseStop(obj: Fields): string[] | undefined {
  const v = ownField(obj, 'stop');
  if (v === undefined || v === null) return undefined;
  const list = typeof v === 'string' ? [v] : v;
  if (!Array.isArray(list)) throw invalid('stop', 'must be a string or an array of strings');
  if (list.length > MAX_STOP_SEQUENCES) throw invalid('stop', `may hold at most ${MAX_STOP_SEQUENCES} sequences`);
  const out: string[] = [];
  for (let i = 0; i < list.length; i++) {
    const s: unknown = list[i];
    const field = typeof v === 'string' ? 'stop' : `stop[${i}]`;
    if (typeof s !== 'string') throw invalid(field, 'must be a string');
    if (s.length > MAX_STOP_LENGTH) throw invalid(field, `must be at most ${MAX_STOP_LENGTH} characters`);
    if (LONE_SURROGATE.test(s)) throw invalid(field, 'must be valid Unicode text');
    // An empty sequence would end every reply before it begins: it stops nothing.
    if (s !== '' && !out.includes(s)) out.push(s);
  }
  return out.length > 0 ? out : undefined;
}

/** Text of a message's `content`: a string or an array of text parts (joined by newlines); null when absent. */
function contentText(value: unknown, field: string): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value === 'string') return value;
  if (!Array.isArray(value)) throw invalid(field, 'must be a string or an array of content parts');
  const texts: string[] = [];
  for (let j = 0; j < value.length; j++) {
    const part: unknown = value[j];
    const at = `${field}[${j}]`;
    if (!isRecord(part)) throw invalid(at, 'must be an object');
    const type = ownField(part, 'type');
    if (typeof type !== 'string') throw invalid(`${at}.type`, 'must be a string');
    if (type !== 'text') throw invalid(`${at}.type`, `is ${JSON.stringify(type.slice(0, 40))}; npcd takes text parts only`);
    const text = ownField(part, 'text');
    if (typeof text !== 'string') throw invalid(`${at}.text`, 'must be a string');
    texts.push(text);
  }
  return texts.join('\n');
}

interface ParsedMessages {
  readonly text: string;
  readonly client: ClientMessages;
  readonly opening: CompletionRequest['opening'];
}

function parseMessages(body: Fields, limits: CompletionLimits): ParsedMessages {
  const list = ownField(body, 'messages');
  if (list === undefined || list === null) throw missing('messages');
  if (!Array.isArray(list)) throw invalid('messages', 'must be an array');
  if (list.length === 0) throw invalid('messages', 'must hold at least one message');
  if (list.length > MAX_MESSAGES) throw invalid('messages', `may hold at most ${MAX_MESSAGES} messages`);

  const kept: { message: ChatMessage; index: number }[] = [];
  let last = -1; // position in `kept` of the last user message
  for (let i = 0; i < list.length; i++) {
    const at = `messages[${i}]`;
    const m: unknown = list[i];
    if (!isRecord(m)) throw invalid(at, 'must be an object');
    const role = ownField(m, 'role');
    if (role === undefined || role === null) throw missing(`${at}.role`);
    if (typeof role !== 'string') throw invalid(`${at}.role`, 'must be a string');
    // npcd offers no tools: tool results and legacy function results carry nothing for it.
    if (role === 'tool' || role === 'function') continue;
    if (role !== 'system' && role !== 'developer' && role !== 'user' && role !== 'assistant') {
      throw invalid(`${at}.role`, `is ${JSON.stringify(role.slice(0, 40))}; expected system, developer, user or assistant`);
    }
    const content = contentText(ownField(m, 'content'), `${at}.content`);
    const name = optionalText(m, 'name', MAX_NAME_LENGTH, `${at}.name`);
    if (content === null) {
      // An assistant message may carry only tool calls, which npcd ignores.
      if (role === 'assistant') continue;
      throw missing(`${at}.content`);
    }
    const message: ChatMessage = {
      role: role === 'developer' ? 'system' : role,
      content,
      ...(name === undefined || name === '' ? {} : { name }),
    };
    if (role === 'user') last = kept.length;
    kept.push({ message, index: i });
  }
  if (last === -1) throw invalid('messages', 'must hold at least one user message');

  const { message: turn, index } = kept[last]!;
  const field = `messages[${index}].content`;
  if (turn.content.trim().length === 0) throw invalid(field, 'must not be blank (it is the message of this turn)');
  const chars = charsOver(turn.content, limits.maxMessageChars);
  if (chars !== undefined) {
    throw new NpcdError('ERR_CHAT_TEXT_TOO_LONG', `the last user message is ${chars} characters; the limit is ${limits.maxMessageChars}`, {
      detail: { field, limit: limits.maxMessageChars },
    });
  }

  const firstUser = kept.find((k) => k.message.role === 'user')!;
  const greeting = kept.find((k) => k.message.role === 'assistant' && k.index < firstUser.index);
  return {
    text: turn.content,
    client: {
      before: kept.slice(0, last).map((k) => k.message),
      after: kept.slice(last + 1).map((k) => k.message),
      ...(turn.name === undefined ? {} : { userName: turn.name }),
    },
    opening: { firstUser: firstUser.message.content, greeting: greeting?.message.content },
  };
}

/** Validates a decoded request body. */
export function parseCompletionRequest(body: Fields, limits: CompletionLimits): CompletionRequest {
  const model = ownField(body, 'model');
  if (model === undefined || model === null || model === '') throw missing('model');
  if (typeof model !== 'string') throw invalid('model', 'must be a string');
  if (model.length > MAX_CHARACTER_REF_LENGTH) throw invalid('model', `must be at most ${MAX_CHARACTER_REF_LENGTH} characters`);

  const n = optionalInteger(body, 'n', 1);
  if (n !== undefined && n !== 1) throw invalid('n', 'must be 1: npcd generates one reply per request');
  const maxCompletion = optionalInteger(body, 'max_completion_tokens', 1);
  const maxTokens = optionalInteger(body, 'max_tokens', 1);
  const temperature = optionalNumber(body, 'temperature', 0, 2);
  const topP = optionalNumber(body, 'top_p', 0, 1);
  const seed = optionalInteger(body, 'seed', Number.MIN_SAFE_INTEGER);
  const stop = parseStop(body);
  const stream = optionalBool(body, 'stream') ?? false;
  const options = ownField(body, 'stream_options');
  if (options !== undefined && options !== null && !isRecord(options)) throw invalid('stream_options', 'must be an object');
  const includeUsage = (options ? optionalBool(options, 'include_usage', 'stream_options.include_usage') : undefined) ?? false;
  const user = optionalText(body, 'user', MAX_USER_LENGTH);
  const sessionId = optionalSessionId(body, 'session_id');
  const { text, client, opening } = parseMessages(body, limits);

  const sampling: { -readonly [K in keyof Sampling]: Sampling[K] } = {};
  if (temperature !== undefined) sampling.temperature = temperature;
  if (topP !== undefined) sampling.topP = topP;
  if (stop !== undefined) sampling.stop = stop;
  if (seed !== undefined) sampling.seed = seed;
  return {
    model,
    text,
    client,
    maxTokens: maxCompletion ?? maxTokens,
    sampling,
    stream,
    includeUsage: stream && includeUsage,
    user: user === '' ? undefined : user,
    sessionId,
    opening,
  };
}

/** The session id in an X-Session-Id header; undefined when the header is absent or empty. */
export function headerSessionId(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  if (!SESSION_ID_RE.test(value)) throw invalid('X-Session-Id', 'may only hold letters, digits and _ . : - (1-128 characters)');
  return value;
}

export interface ConversationKey {
  /** The caller's API key, when it sent one. */
  readonly apiKey: string | undefined;
  readonly user: string | undefined;
  /** Character id (not the name the request used). */
  readonly character: string;
  readonly firstUser: string;
  /** The assistant message before the first user message (a card's greeting), when there is one. */
  readonly greeting: string | undefined;
}

/**
 * A stable session id for a conversation whose client names none: a hash of
 * who asks and how the conversation began, which every later request of the
 * same chat repeats. Different chats (another opening message or greeting,
 * another `user`, another key) get different sessions.
 */
export function deriveSessionId(key: ConversationKey): string {
  // One call, no Hash object: this runs for every request that names no session.
  const digest = hash('sha256', JSON.stringify(['npcd-openai/1', key.apiKey ?? null, key.user ?? null, key.character, key.greeting ?? null, key.firstUser]), 'base64url');
  return 'oai_' + digest.slice(0, 32);
}
