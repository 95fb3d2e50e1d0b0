/**
 * Argument checks shared by the MemoryStore backends, so that both reject
 * the same calls with the same messages. A failed check is a programming
 * error of the caller, not a store failure: it throws RangeError naming the
 * argument, and the Redis backend throws it before sending anything.
 */
import type { GenerationLease } from './store.js';

/** A session id: a non-empty string (Redis keys carry it as their hash tag; an empty tag would not pin a slot). */
export function checkSession(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0) throw new RangeError(`session id must be a non-empty string (got ${describe(id)})`);
  return id;
}

/** A count such as maxTurns: an integer >= 1. */
export function checkCount(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new RangeError(`${name} must be an integer >= 1 (got ${describe(value)})`);
  return value;
}

/** A duration (ttlS, leaseMs): a finite number > 0. */
export function checkDuration(value: unknown, name: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new RangeError(`${name} must be a finite number > 0 (got ${describe(value)})`);
  return value;
}

/** A position to read after (seq, memory id): any number but NaN; returned as an integer >= 0 (negatives read from the start). */
export function checkAfter(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value)) throw new RangeError(`${name} must be a number (got ${describe(value)})`);
  return Math.min(Number.MAX_SAFE_INTEGER, Math.max(0, Math.floor(value)));
}

/** A frame's seq: an integer >= 1. */
export function checkSeq(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new RangeError(`frame seq must be an integer >= 1 (got ${describe(value)})`);
  return value;
}

/** A memory's embedding: a Float32Array (any dimension, kept bit-exact). */
export function checkVector(value: unknown): Float32Array {
  if (!(value instanceof Float32Array)) throw new RangeError(`memory vector must be a Float32Array (got ${describe(value)})`);
  return value;
}

/** A lease names its reply and its node; both are compared when it is renewed or released. */
export function checkLease(lease: GenerationLease): GenerationLease {
  if (typeof lease !== 'object' || lease === null) throw new RangeError(`lease must be an object (got ${describe(lease)})`);
  if (typeof lease.id !== 'string' || lease.id.length === 0) throw new RangeError(`lease.id must be a non-empty string (got ${describe(lease.id)})`);
  if (typeof lease.node !== 'string' || lease.node.length === 0) throw new RangeError(`lease.node must be a non-empty string (got ${describe(lease.node)})`);
  return lease;
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return value.constructor?.name ?? 'object';
  return String(value);
}
