/**
 * Validation of client frames and HTTP request bodies. Only own properties are
 * read, so a decoded `__proto__` key can never supply a field. Unknown extra
 * fields are ignored, so that newer clients keep working.
 */
import { NpcdError } from '../errors.js';
import {
  type ChatFrame,
  CLIENT_FRAME_TYPES,
  type ClientFrame,
  type ClientFrameType,
  PROTOCOL_VERSION,
} from './types.js';
import { MAX_TRACEPARENT_LENGTH, MAX_TRACESTATE_LENGTH } from '../tracing/trace-context.js';

/** Session ids chosen by clients: 1–128 of letters, digits and `_ . : -`. */
export const SESSION_ID_RE = /^[A-Za-z0-9_.:-]{1,128}$/;
export const MAX_ID_LENGTH = 128;
export const MAX_CHARACTER_REF_LENGTH = 200;

export type Fields = Record<string, unknown>;

/** A plain object (not null, not an array). */
export function isRecord(value: unknown): value is Fields {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export function asMap(value: unknown, what: string): Fields {
  if (value === null || typeof value !== 'object' || Array.isArray(value) || value instanceof Uint8Array) {
    throw new NpcdError('ERR_PROTOCOL_INVALID_FRAME', `${what} must be a map/object`);
  }
  return value as Fields;
}

/** A field of a decoded map: own properties only, so `__proto__` can never supply one. */
export function ownField(obj: Fields, name: string): unknown {
  return Object.hasOwn(obj, name) ? obj[name] : undefined;
}

/**
 * A value a client sent, for an error message: strings and numbers as JSON
 * (strings cut to 40 characters), 64-bit integers as digits, anything else
 * by its type.
 */
export function showValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? `${v.slice(0, 40)}…` : v);
  if (typeof v === 'number' || typeof v === 'boolean' || v === null) return String(v);
  if (typeof v === 'bigint') return v.toString().slice(0, 40);
  return Array.isArray(v) ? 'an array' : `a value of type ${typeof v}`;
}

function missing(name: string): NpcdError {
  return new NpcdError('ERR_PROTOCOL_MISSING_FIELD', `missing field "${name}"`, { detail: { field: name } });
}

function invalid(name: string, why: string): NpcdError {
  return new NpcdError('ERR_PROTOCOL_INVALID_FIELD', `field "${name}" ${why}`, { detail: { field: name } });
}

export function requireString(obj: Fields, name: string, maxLength: number): string {
  const v = ownField(obj, name);
  if (v === undefined || v === null) throw missing(name);
  if (typeof v !== 'string') throw invalid(name, 'must be a string');
  if (v.length === 0) throw invalid(name, 'must not be empty');
  if (v.length > maxLength) throw invalid(name, `must be at most ${maxLength} characters`);
  return v;
}

export function optionalString(obj: Fields, name: string, maxLength: number): string | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  return requireString(obj, name, maxLength);
}

export function optionalSessionId(obj: Fields, name: string): string | undefined {
  const v = optionalString(obj, name, MAX_ID_LENGTH);
  if (v !== undefined && !SESSION_ID_RE.test(v)) {
    throw invalid(name, 'may only hold letters, digits and _ . : - (1-128 characters)');
  }
  return v;
}

export function optionalBoolean(obj: Fields, name: string): boolean | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'boolean') throw invalid(name, 'must be true or false');
  return v;
}

function optionalCount(obj: Fields, name: string): number | undefined {
  const v = ownField(obj, name);
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw invalid(name, 'must be a non-negative integer');
  return v;
}

/**
 * How many characters (Unicode code points) `text` has when that is more
 * than `max`; undefined when it is within `max`. A surrogate pair (an emoji,
 * a rare CJK character) counts as one character, as its writer sees it; a
 * lone surrogate counts as one too.
 */
export function charsOver(text: string, max: number): number | undefined {
  // A string never has more code points than UTF-16 code units.
  if (text.length <= max) return undefined;
  let chars = 0;
  for (let i = 0; i < text.length; i++, chars++) {
    const c = text.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdbff && i + 1 < text.length) {
      const d = text.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) i++;
    }
  }
  return chars > max ? chars : undefined;
}

/** The user's chat text: a non-blank string within the configured length (in characters). */
export function requireChatText(obj: Fields, name: string, maxChars: number): string {
  const v = ownField(obj, name);
  if (v === undefined || v === null) throw missing(name);
  if (typeof v !== 'string') throw invalid(name, 'must be a string');
  if (v.trim().length === 0) throw invalid(name, 'must not be blank');
  const chars = charsOver(v, maxChars);
  if (chars !== undefined) {
    throw new NpcdError('ERR_CHAT_TEXT_TOO_LONG', `message is ${chars} characters; the limit is ${maxChars}`, {
      detail: { field: name, limit: maxChars },
    });
  }
  return v;
}

export interface FrameLimits {
  readonly maxMessageChars: number;
}

/** Validates a decoded client message and returns the typed frame. */
export function parseClientFrame(value: unknown, limits: FrameLimits): ClientFrame {
  const obj = asMap(value, 'frame');
  const t = ownField(obj, 't');
  if (t === undefined) throw new NpcdError('ERR_PROTOCOL_INVALID_FRAME', 'frame has no type field "t"');
  if (typeof t !== 'string') throw new NpcdError('ERR_PROTOCOL_INVALID_FRAME', 'frame type "t" must be a string');
  if (!CLIENT_FRAME_TYPES.includes(t as ClientFrameType)) {
    throw new NpcdError('ERR_PROTOCOL_UNKNOWN_TYPE', `unknown frame type ${JSON.stringify(t.slice(0, 40))}`, {
      detail: { type: t.slice(0, 40) },
    });
  }
  switch (t as ClientFrameType) {
    case 'hello': {
      const v = ownField(obj, 'v');
      if (v === undefined || v === null) throw missing('v');
      if (v !== PROTOCOL_VERSION) {
        throw new NpcdError('ERR_PROTOCOL_VERSION', `protocol version ${showValue(v)} is not supported; this server speaks ${PROTOCOL_VERSION}`);
      }
      const frame: ClientFrame = { t: 'hello', v: PROTOCOL_VERSION };
      const session = optionalSessionId(obj, 'session');
      const resume = optionalCount(obj, 'resume');
      const token = optionalString(obj, 'token', 4096);
      if (session !== undefined) frame.session = session;
      if (resume !== undefined) frame.resume = resume;
      if (token !== undefined) frame.token = token;
      if (optionalBoolean(obj, 'batch') === true) frame.batch = true;
      return frame;
    }
    case 'chat': {
      const frame: ChatFrame = {
        t: 'chat',
        id: requireString(obj, 'id', MAX_ID_LENGTH),
        character: requireString(obj, 'character', MAX_CHARACTER_REF_LENGTH),
        text: requireChatText(obj, 'text', limits.maxMessageChars),
      };
      // Trace context is optional and never fails a chat: the format is checked where it is used (tracing/trace-context.ts).
      const traceparent = ownField(obj, 'traceparent');
      const tracestate = ownField(obj, 'tracestate');
      if (typeof traceparent === 'string' && traceparent.length <= MAX_TRACEPARENT_LENGTH) frame.traceparent = traceparent;
      if (typeof tracestate === 'string' && tracestate.length <= MAX_TRACESTATE_LENGTH) frame.tracestate = tracestate;
      return frame;
    }
    case 'cancel':
      return { t: 'cancel', id: requireString(obj, 'id', MAX_ID_LENGTH) };
    case 'ping': {
      const ts = ownField(obj, 'ts');
      if (ts === undefined || ts === null) return { t: 'ping' };
      if (typeof ts !== 'number' || !Number.isFinite(ts)) throw invalid('ts', 'must be a number');
      return { t: 'ping', ts };
    }
  }
}
