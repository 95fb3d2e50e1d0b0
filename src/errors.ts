/**
 * Every failure npcd reports to a client or an operator has one stable code
 * here. A code carries its HTTP status and, when the failure ends a WebSocket
 * connection, the close code used. docs/errors.md documents each code; a test
 * checks that the two lists agree.
 */

export interface ErrorSpec {
  /** HTTP status when the error answers an HTTP request. */
  readonly status: number;
  /** WebSocket close code when the error closes the connection; undefined when it does not. */
  readonly close?: number;
  /** One line for docs and default messages. */
  readonly summary: string;
}

export const ERRORS = {
  // Wire protocol (WebSocket frames and HTTP request bodies)
  ERR_PROTOCOL_MALFORMED: { status: 400, summary: 'The frame or body could not be decoded (invalid MessagePack or JSON).' },
  ERR_PROTOCOL_INVALID_FRAME: { status: 400, summary: 'The frame decoded but is not a map with a string `t`.' },
  ERR_PROTOCOL_UNKNOWN_TYPE: { status: 400, summary: 'The frame type `t` is not one this protocol version defines.' },
  ERR_PROTOCOL_MISSING_FIELD: { status: 400, summary: 'A required field is missing.' },
  ERR_PROTOCOL_INVALID_FIELD: { status: 400, summary: 'A field has the wrong type or an out-of-range value.' },
  ERR_PROTOCOL_FRAME_TOO_LARGE: { status: 413, summary: 'A WebSocket message exceeds the frame size limit.' },
  ERR_PROTOCOL_VERSION: { status: 400, summary: 'The protocol version in `hello` is not supported.' },
  ERR_PROTOCOL_HELLO_REQUIRED: { status: 400, summary: 'A frame other than `hello`/`ping` arrived before `hello`.' },
  ERR_PROTOCOL_DUPLICATE_HELLO: { status: 400, summary: 'A second `hello` arrived on a connection that already has a session.' },

  // Authentication
  ERR_AUTH_REQUIRED: { status: 401, close: 4401, summary: 'API keys are configured and the request carried none.' },
  ERR_AUTH_INVALID: { status: 401, close: 4401, summary: 'The API key is not one of the configured keys.' },

  // Chat turns
  ERR_CHAT_TEXT_TOO_LONG: { status: 413, summary: 'The chat message is longer than the message length limit.' },
  ERR_CHAT_DUPLICATE_ID: { status: 409, summary: 'A chat with this message id was already accepted in this session.' },
  ERR_CHAT_NOT_ACTIVE: { status: 404, summary: '`cancel` named a message id that is not generating.' },
  ERR_CHAT_CANCELLED: { status: 409, summary: 'The reply an OpenAI-compatible request waits for was cancelled (a `cancel` on its session) before it finished.' },
  ERR_CHARACTER_NOT_FOUND: { status: 404, summary: 'No character has this id or name.' },
  ERR_PROVIDER_FAILED: { status: 502, summary: 'The model provider failed while generating the reply.' },

  // Upstream model providers (ollama, openai, dashscope, llama)
  ERR_UPSTREAM_UNAVAILABLE: { status: 503, summary: 'The model upstream cannot be reached: connection refused or reset, 5xx answers, no free pooled connection in time, or every upstream of the chain is unhealthy.' },
  ERR_UPSTREAM_TIMEOUT: { status: 504, summary: 'The model upstream did not send its first token, or did not finish, within the configured time.' },
  ERR_UPSTREAM_RATE_LIMITED: { status: 429, summary: 'The model upstream answered 429 (rate or quota limit) and retries within the time limit did not get through.' },
  ERR_UPSTREAM_BAD_RESPONSE: { status: 502, summary: 'The model upstream sent something that is not its API\'s format: malformed chunks, an unexpected status, or a stream that ended without its end marker.' },
  ERR_UPSTREAM_REJECTED: { status: 502, summary: 'The model upstream refused the request (4xx other than 429: bad credentials, unknown model, prompt too long); retrying does not help.' },

  // Sessions and streams
  ERR_SESSION_NOT_FOUND: { status: 404, summary: 'No session has this id (it never existed or it expired).' },
  ERR_SESSION_BUSY: { status: 409, summary: 'The session is already generating a reply; one turn at a time.' },
  ERR_SESSION_LIMIT: { status: 503, summary: 'The server holds its maximum number of sessions.' },
  ERR_SESSION_TAKEN_OVER: { status: 409, close: 4409, summary: 'Another connection said `hello` for this session; this one is closed.' },
  ERR_RESUME_GAP: { status: 410, summary: 'Frames after the requested `resume` seq are no longer in the replay log.' },
  ERR_GENERATION_INTERRUPTED: { status: 503, summary: 'The node generating the reply stopped (crashed or was killed) before it finished; the frames it stored were replayed.' },

  // Memory store and embeddings
  ERR_STORE_UNAVAILABLE: { status: 503, summary: 'The memory store (Redis) cannot be reached or did not answer in time; npcd reconnects by itself.' },
  ERR_EMBEDDING_FAILED: { status: 502, summary: 'The embedding provider failed (unreachable, an error status, or vectors of the wrong shape); recall is skipped for the turn.' },

  // Connections and lifecycle
  ERR_HEARTBEAT_TIMEOUT: { status: 408, close: 4408, summary: 'The client sent nothing for longer than the idle timeout.' },
  ERR_HELLO_TIMEOUT: { status: 408, close: 4408, summary: 'The client sent no `hello` within the hello timeout of connecting.' },
  ERR_CONNECTION_LIMIT: { status: 503, summary: 'The server holds its maximum number of WebSocket connections.' },
  ERR_SHUTTING_DOWN: { status: 503, close: 1001, summary: 'The server is shutting down and accepts no new work.' },

  // HTTP
  ERR_HTTP_NOT_FOUND: { status: 404, summary: 'No route matches the path.' },
  ERR_HTTP_METHOD_NOT_ALLOWED: { status: 405, summary: 'The route exists but not for this method.' },
  ERR_HTTP_BODY_TOO_LARGE: { status: 413, summary: 'The request body exceeds the body size limit.' },
  ERR_HTTP_UPGRADE_REQUIRED: { status: 426, summary: '`/v1/ws` was requested without a WebSocket upgrade.' },

  // Admin routes (--admin-keys)
  ERR_ADMIN_DISABLED: { status: 403, summary: 'Admin routes are off (no --admin-keys), or there is no characters folder to import into.' },
  ERR_CARD_INVALID: { status: 400, summary: 'An uploaded Character Card does not import; the message lists its problems.' },
  ERR_CARD_CONFLICT: { status: 409, summary: 'An uploaded card would take the id or name of a character from another file.' },
  ERR_PROFILE_BUSY: { status: 409, summary: 'A CPU profile or heap snapshot (/debug/profile, /debug/heap) is already being taken; one at a time.' },

  // Operator-facing (start-up and configuration)
  ERR_CONFIG_INVALID: { status: 500, summary: 'A configuration value (flag, environment variable or file) is invalid.' },
  ERR_CHARACTER_INVALID: { status: 500, summary: 'A character script failed to parse or validate.' },
  ERR_INTERNAL: { status: 500, summary: 'An unexpected server error; the server keeps running.' },

  // eBPF sidecar (npcd sidecar)
  ERR_SIDECAR_UNSUPPORTED: { status: 500, summary: 'The eBPF sidecar cannot trace here: not root, no bpftrace, no tracefs, or none of the tracepoints its programs need.' },
  ERR_SIDECAR_OUTPUT: { status: 500, summary: 'A bpftrace program printed a line that is not a bpftrace JSON record; the line is skipped.' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Codes of errors thrown by the native module (native/) and its loader. They
 * never reach clients as such: the server turns them into the codes above
 * (a decode error becomes ERR_PROTOCOL_MALFORMED) or falls back to the
 * JavaScript implementations, and logs them.
 */
export const NATIVE_ERRORS = {
  ERR_NATIVE_LOAD: 'The native module could not be loaded (missing, built for another platform, or another ABI version).',
  ERR_NATIVE_INVALID_ARG: 'A native function was called with an argument of the wrong type or range.',
  ERR_NATIVE_NAPI: 'An N-API call failed inside the native module.',
  ERR_NATIVE_PANIC: 'Native code panicked; the panic was caught and the process keeps running.',
  ERR_NATIVE_MSGPACK_ENCODE: 'A value cannot be encoded as MessagePack (symbol, BigInt beyond 64 bits, nesting deeper than 512).',
  ERR_NATIVE_MSGPACK_DECODE: 'MessagePack input is malformed, truncated or over a decode limit; `offset` and `reason` say where and why.',
  ERR_NATIVE_VECTOR_BAD_PARAM: 'A vector index option or argument has the wrong type or is out of range (the message names it).',
  ERR_NATIVE_VECTOR_DIM_MISMATCH: 'A vector or query does not have the index\'s dimension.',
  ERR_NATIVE_VECTOR_NON_FINITE: 'A vector holds NaN or ±Infinity.',
  ERR_NATIVE_VECTOR_CORRUPT: 'Bytes given to `VectorIndex.load` are truncated or damaged (every field and a checksum are checked).',
  ERR_NATIVE_VECTOR_UNSUPPORTED_VERSION: 'Bytes given to `VectorIndex.load` were saved in a format version this build cannot read.',
  ERR_NATIVE_VECTOR_CAPACITY: 'The index already holds the most vectors it can address.',
  ERR_NATIVE_VECTOR_INVALID_THIS: 'A `VectorIndex` method was called on an object that is not a live index.',
  ERR_NATIVE_VECTOR_POISONED: 'An earlier panic interrupted a write to this index; it refuses further use rather than serve a half-updated graph.',
  ERR_NATIVE_VECTOR_PANIC: 'The vector index panicked; the panic was caught (the index may then be poisoned).',
  ERR_NATIVE_VECTOR_INTERNAL: 'An unexpected failure in the vector index or its async work.',
  ERR_NATIVE_VECTOR_CANCELLED: '`searchAsync` work was cancelled before it ran (the environment is shutting down).',
} as const satisfies Record<string, string>;

export class NpcdError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  /** Extra machine-readable detail (e.g. the field name); never secrets. */
  readonly detail: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message?: string, options?: { cause?: unknown; detail?: Record<string, unknown> }) {
    super(message ?? ERRORS[code].summary, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'NpcdError';
    this.code = code;
    this.status = ERRORS[code].status;
    this.detail = options?.detail;
  }

  get closeCode(): number | undefined {
    return (ERRORS[this.code] as ErrorSpec).close;
  }
}

export function isErrorCode(value: string): value is ErrorCode {
  return Object.hasOwn(ERRORS, value);
}

/** Turns anything thrown into an NpcdError; unknown errors become ERR_INTERNAL with the cause kept. */
export function toNpcdError(err: unknown): NpcdError {
  if (err instanceof NpcdError) return err;
  return new NpcdError('ERR_INTERNAL', 'Internal error', { cause: err });
}
