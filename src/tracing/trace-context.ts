/**
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): reading the
 * `traceparent` and `tracestate` a client sends (HTTP headers, or fields of
 * the WebSocket `chat` frame). Pure functions, no OpenTelemetry: the server
 * reads and forwards trace context even when tracing is off. Anything
 * invalid is ignored, as the specification asks ("a vendor MUST NOT parse
 * further ... MUST ignore" a malformed traceparent): the turn starts a new
 * trace instead of failing.
 */

/** A client's trace context, validated. */
export interface TraceHeaders {
  /** As received (trimmed): forwarded unchanged when tracing is off. */
  readonly traceparent: string;
  /** Kept only when valid, and only with a valid traceparent. */
  readonly tracestate?: string;
}

/** The fields of a valid traceparent. */
export interface ParsedTraceparent {
  readonly version: string;
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** 16 lowercase hex digits, not all zero. */
  readonly parentId: string;
  /** The trace-flags byte (bit 0: sampled). */
  readonly flags: number;
}

const HEX = /^[0-9a-f]+$/;
/** Version 00 is exactly this; later versions may append "-..." (§3.2.4: parse the first four fields). */
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Longest traceparent accepted (a future version's extra fields included). */
export const MAX_TRACEPARENT_LENGTH = 256;
/** Longest tracestate kept (the specification asks for at least 512 characters to be propagated). */
export const MAX_TRACESTATE_LENGTH = 512;
const MAX_TRACESTATE_MEMBERS = 32;

/** Parses a traceparent; undefined when it is not valid. */
export function parseTraceparent(value: string | undefined): ParsedTraceparent | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text.length < 55 || text.length > MAX_TRACEPARENT_LENGTH) return undefined;
  const m = TRACEPARENT.exec(text);
  if (!m) return undefined;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  // "ff" is forbidden; version 00 has nothing after the flags.
  if (version === 'ff' || (version === '00' && rest !== undefined)) return undefined;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return undefined;
  if (!HEX.test(flags)) return undefined;
  return { version, traceId, parentId, flags: parseInt(flags, 16) };
}

const TRACESTATE_KEY = /^(?:[a-z0-9][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})$/;
// Printable ASCII except "," and "=", not ending in a space.
const TRACESTATE_VALUE = /^[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]$/;

/** A tracestate as a list of valid members (empty members skipped); undefined when any member is invalid. */
export function parseTracestate(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '' || text.length > MAX_TRACESTATE_LENGTH) return undefined;
  const members: string[] = [];
  const keys = new Set<string>();
  for (const raw of text.split(',')) {
    const member = raw.trim();
    if (member === '') continue;
    const eq = member.indexOf('=');
    if (eq <= 0) return undefined;
    const key = member.slice(0, eq);
    const v = member.slice(eq + 1);
    if (!TRACESTATE_KEY.test(key) || !TRACESTATE_VALUE.test(v) || keys.has(key)) return undefined;
    keys.add(key);
    members.push(`${key}=${v}`);
  }
  if (members.length === 0 || members.length > MAX_TRACESTATE_MEMBERS) return undefined;
  return members.join(',');
}

/** The client's trace context from a traceparent and tracestate; undefined without a valid traceparent. */
export function traceHeaders(traceparent: string | undefined, tracestate?: string): TraceHeaders | undefined {
  if (!parseTraceparent(traceparent)) return undefined;
  const state = parseTracestate(tracestate);
  return state === undefined ? { traceparent: traceparent!.trim() } : { traceparent: traceparent!.trim(), tracestate: state };
}

/** A version-00 traceparent. */
export function formatTraceparent(traceId: string, spanId: string, flags: number): string {
  return `00-${traceId}-${spanId}-${(flags & 0xff).toString(16).padStart(2, '0')}`;
}
