/**
 * The OpenAI Chat Completions API, streamed (`POST /chat/completions` with
 * `stream: true`), as OpenAI and the many servers that copy it speak it
 * (vLLM, llama.cpp server, LM Studio, DashScope's compatible mode, ...).
 * The base URL (e.g. https://api.openai.com/v1) is the transport's; paths
 * here are relative to it. docs/providers.md describes the mapping.
 */
import { type ApiAdapter, reasonOfStatus, type StreamDecoder, type StreamEvent, type UpstreamFailure, type UpstreamReason, type UpstreamRequest, UpstreamError } from './api.js';
import { empty } from './chunks.js';
import { type AdapterOptions, isRecord, KeyedAdapter, SseRecordDecoder, MESSAGE_CHARS, parseJsonObject, quote, QUOTED_BODY_CHARS, tryParseJson } from './http-api.js';
import { type ChunkFraming, ChunkTemplate } from './chunk-template.js';
import type { SseEvent } from './sse.js';
import type { ChatMessage, GenerateRequest } from './types.js';

export interface OpenAiAdapterOptions extends AdapterOptions {
  /** Sent as `Authorization: Bearer`; local servers often need none. */
  readonly apiKey?: string;
}

/** OpenAI accepts `name` only in this shape; one bad name would fail the whole request. */
const NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

export class OpenAiAdapter extends KeyedAdapter implements ApiAdapter {
  readonly kind = 'openai';

  constructor(options: OpenAiAdapterOptions) {
    super(options);
  }

  chatRequest(request: GenerateRequest): UpstreamRequest {
    const body = {
      model: this.model,
      messages: request.messages.map(toOpenAiMessage),
      stream: true,
      // Without it the stream carries no token counts.
      stream_options: { include_usage: true },
      max_tokens: request.maxTokens,
      ...(request.temperature !== undefined && { temperature: request.temperature }),
      ...(request.topP !== undefined && { top_p: request.topP }),
      ...(request.stop !== undefined && request.stop.length > 0 && { stop: request.stop }),
      seed: request.seed,
    };
    return { method: 'POST', path: '/chat/completions', headers: this.headers('text/event-stream', { trace: request, json: true }), body: JSON.stringify(body) };
  }

  healthRequest(): UpstreamRequest {
    return { method: 'GET', path: '/models', headers: this.headers('application/json') };
  }

  /**
   * Reads `data:` chunks: `choices[0].delta.content` is text (role-only and
   * empty deltas are skipped), `choices[0].finish_reason` the finish, a
   * `usage` object (the usage-only chunk with `choices: []` that
   * `include_usage` adds) the token counts, and `data: [DONE]` the end.
   * The end event comes at [DONE], since usage arrives after the finish
   * reason. The rest of the body is then read (a few events at most) so its
   * connection can be reused.
   */
  decoder(): StreamDecoder {
    return new OpenAiDecoder(this.apiKey());
  }

  /**
   * Reads `{"error": {"message", "type", "code"}}` (also a bare
   * `{"error": "..."}`, `{"message"}` or `{"detail"}` from compatible
   * servers); otherwise quotes the start of the body. The status alone
   * decides the reason: a 429 is rate_limited whether it means a rate limit
   * or `insufficient_quota`.
   */
  failure(status: number, body: string): UpstreamFailure {
    return { message: describeError(tryParseJson(body), body, this.apiKey()), reason: reasonOfStatus(status) };
  }
}

function toOpenAiMessage(m: ChatMessage): { role: string; content: string; name?: string } {
  const name = m.name === undefined ? undefined : openAiName(m.name);
  return name === undefined ? { role: m.role, content: m.content } : { role: m.role, content: m.content, name };
}

/**
 * A speaker name in the shape OpenAI accepts: spaces become "_", other
 * characters outside [A-Za-z0-9_-] are dropped, at most 64. A name with
 * nothing left (e.g. written in Chinese) is not sent.
 */
export function openAiName(name: string): string | undefined {
  const cleaned = name.trim().replace(/\s+/g, '_').replace(/[^A-Za-z0-9_-]/g, '').slice(0, 64);
  return NAME_PATTERN.test(cleaned) ? cleaned : undefined;
}

function readUsage(value: unknown): { promptTokens: number; completionTokens: number } | undefined {
  if (!isRecord(value)) return undefined;
  const { prompt_tokens: p, completion_tokens: c } = value;
  return typeof p === 'number' && typeof c === 'number' ? { promptTokens: p, completionTokens: c } : undefined;
}

/** An error object sent inside the stream, with the reason its code or type names. */
function streamError(error: unknown, secret: string | undefined): UpstreamError {
  const e = isRecord(error) ? error : {};
  const message = describeError({ error }, '', secret);
  return new UpstreamError(streamErrorReason(e.code, e.type), `OpenAI stream error: ${message}`);
}

/**
 * Rate and quota limits are rate_limited, server faults and overload
 * unavailable (worth a retry before the first token), anything else a bad
 * response. Compatible servers sometimes put an HTTP status in `code`.
 */
export function streamErrorReason(code: unknown, type: unknown): UpstreamReason {
  if (typeof code === 'number') {
    if (code === 429) return 'rate_limited';
    return code >= 500 ? 'unavailable' : 'bad_response';
  }
  const tag = `${typeof code === 'string' ? code : ''} ${typeof type === 'string' ? type : ''}`.toLowerCase();
  if (/rate_?limit|quota|throttl|too_many_requests/.test(tag)) return 'rate_limited';
  if (/server_error|internal|overload|unavailable|capacity/.test(tag)) return 'unavailable';
  return 'bad_response';
}

/** "code: message" from an OpenAI-style error body, else the start of the text. */
function describeError(parsed: unknown, text: string, secret: string | undefined): string {
  if (isRecord(parsed)) {
    const err = parsed.error;
    if (isRecord(err) && typeof err.message === 'string') {
      const code = typeof err.code === 'string' ? err.code : typeof err.type === 'string' ? err.type : undefined;
      return quote(code ? `${code}: ${err.message}` : err.message, MESSAGE_CHARS, secret);
    }
    if (typeof err === 'string') return quote(err, MESSAGE_CHARS, secret);
    if (typeof parsed.message === 'string') return quote(parsed.message, MESSAGE_CHARS, secret);
    if (typeof parsed.detail === 'string') return quote(parsed.detail, MESSAGE_CHARS, secret);
  }
  return quote(text, QUOTED_BODY_CHARS, secret) || 'no error message';
}

/** `choices[0].delta.content` of a chunk, when it is a string. */
function contentOf(choice: Record<string, unknown>): string | undefined {
  const delta = choice.delta;
  return isRecord(delta) && typeof delta.content === 'string' ? delta.content : undefined;
}

/**
 * A ChunkTemplate's check: the probe is read as the chunk's text. The probe
 * chunk differs from the learnt one only there, so it has no finish reason,
 * usage or error either.
 */
function holdsProbe(data: string, probe: string): boolean {
  const chunk: unknown = JSON.parse(data);
  return isRecord(chunk) && Array.isArray(chunk.choices) && isRecord(chunk.choices[0]) && contentOf(chunk.choices[0]) === probe;
}

/** How an SSE stream frames a one-line event: the bytes around its data. */
const SSE_EVENT: ChunkFraming = { before: 'data: ', after: '\n\n' };

class OpenAiDecoder extends SseRecordDecoder {
  readonly #template = new ChunkTemplate('content', SSE_EVENT);
  /** Texts read from one chunk's bytes (reused). */
  readonly #texts: string[] = [];
  #finish: 'stop' | 'length' | undefined;
  #usage: { promptTokens: number; completionTokens: number } | undefined;

  constructor(private readonly key: string | undefined) {
    super();
  }

  /**
   * A network chunk of whole events that match the template is read from
   * its bytes; anything else is split into events and read as usual.
   * Upstreams send an event per write, so most token chunks hold one such
   * event, or a few when reads fall behind.
   */
  override push(chunk: Uint8Array, out: StreamEvent[]): void {
    const texts = this.#texts;
    if (this.#template.ready && this.canTakeWhole(chunk) && this.#template.readFramed(chunk, texts)) {
      for (const text of texts) if (text !== '') out.push({ type: 'text', text });
      empty(texts);
      return;
    }
    super.push(chunk, out);
  }

  protected record(sse: SseEvent, out: StreamEvent[]): boolean {
    if (sse.event === 'message') {
      const text = this.#template.match(sse.data);
      if (text !== undefined) {
        if (text !== '') out.push({ type: 'text', text });
        return false;
      }
    }
    if (sse.data.trim() === '[DONE]') {
      out.push({ type: 'end', finish: this.#finish ?? 'stop', ...(this.#usage && { usage: this.#usage }) });
      return true;
    }
    const chunk = parseJsonObject(sse.data, 'OpenAI stream chunk', this.key);
    // Errors inside a 200 stream: `data: {"error": {...}}`, sometimes as `event: error`.
    if (chunk.error !== undefined && chunk.error !== null) throw streamError(chunk.error, this.key);
    if (sse.event === 'error') throw streamError(chunk, this.key);
    const choices = chunk.choices;
    if (!Array.isArray(choices)) throw new UpstreamError('bad_response', `OpenAI stream chunk has no choices array: ${quote(sse.data, 100, this.key)}`);
    const choice: unknown = choices[0];
    if (isRecord(choice)) {
      const content = contentOf(choice);
      if (content !== undefined && content !== '') out.push({ type: 'text', text: content });
      const reason = choice.finish_reason;
      // "length" is the only cut; "stop", "content_filter", "tool_calls" and the rest end the reply.
      if (typeof reason === 'string' && reason !== '') this.#finish = reason === 'length' ? 'length' : 'stop';
      // A chunk that carries text and nothing else: later ones that differ from it only in the text are read without JSON.parse.
      else if (content !== undefined && content !== '' && sse.event === 'message' && (chunk.usage === undefined || chunk.usage === null)) {
        this.#template.learn(sse.data, content, holdsProbe);
      }
    }
    this.#usage = readUsage(chunk.usage) ?? this.#usage;
    return false;
  }

  protected missingEnd(): UpstreamError {
    return new UpstreamError('bad_response', 'OpenAI stream ended before [DONE]');
  }
}
