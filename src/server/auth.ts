/**
 * Optional API keys (--api-keys). HTTP routes under /v1 take
 * "Authorization: Bearer KEY"; WebSocket clients send the key as `token` in
 * `hello` (browsers cannot set headers on a WebSocket).
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { NpcdError } from '../errors.js';

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares in constant time, whatever the lengths. */
function matches(keys: readonly string[], candidate: string): boolean {
  const c = digest(candidate);
  let ok = false;
  for (const k of keys) ok = timingSafeEqual(digest(k), c) || ok;
  return ok;
}

/** Returns the error to report, or undefined when the key is accepted. */
export function checkApiKey(keys: readonly string[], token: string | undefined): NpcdError | undefined {
  if (keys.length === 0) return undefined;
  if (!token) return new NpcdError('ERR_AUTH_REQUIRED', 'an API key is required');
  return matches(keys, token) ? undefined : new NpcdError('ERR_AUTH_INVALID', 'the API key is not valid');
}

/** Extracts the key from an Authorization header ("Bearer KEY"). */
export function bearerToken(header: string): string | undefined {
  const m = /^\s*Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : undefined;
}
