/**
 * Alibaba Cloud DashScope (Model Studio / Bailian), its native
 * text-generation API: `POST /api/v1/services/aigc/text-generation/generation`
 * streamed as Server-Sent Events (`X-DashScope-SSE: enable`), with
 * `result_format: "message"` and `incremental_output: true` so each event
 * carries only the new text. Not DashScope's OpenAI-compatible mode (which
 * the openai adapter speaks at `/compatible-mode/v1`): the native API names
 * its errors with codes (`Throttling.RateQuota`, `DataInspectionFailed`) that
 * classify more exactly. docs/providers.md describes the mapping.
 */
import { type ApiAdapter, reasonOfStatus, type StreamDecoder, type StreamEvent, type UpstreamFailure, type UpstreamReason, type UpstreamRequest, UpstreamError } from './api.js';
import { type AdapterOptions, isRecord, KeyedAdapter, SseRecordDecoder, MESSAGE_CHARS, parseJsonObject, quote, QUOTED_BODY_CHARS, tryParseJson } from './http-api.js';
import type { SseEvent } from './sse.js';
import type { GenerateRequest } from './types.js';

export interface DashScopeAdapterOptions extends AdapterOptions {
  /** The DashScope API key, sent as `Authorization: Bearer`. */
  readonly apiKey?: string;
}

export const DASHSCOPE_CHAT_PATH = '/api/v1/services/aigc/text-generation/generation';

export class DashScopeAdapter extends KeyedAdapter implements ApiAdapter {
  readonly kind = 'dashscope';

  constructor(options: DashScopeAdapterOptions) {
    super(options);
  }

  /**
   * Messages keep only role and content (the native API has no speaker
   * name). The seed is cut to 31 bits: DashScope documents seed as
   * 0 to 2^31 − 1, and npcd's turn seeds use all 32.
   */
  chatRequest(request: GenerateRequest): UpstreamRequest {
    const body = {
      model: this.model,
      input: { messages: request.messages.map((m) => ({ role: m.role, content: m.content })) },
      parameters: {
        result_format: 'message',
        incremental_output: true,
        max_tokens: request.maxTokens,
        ...(request.temperature !== undefined && { temperature: request.temperature }),
        ...(request.topP !== undefined && { top_p: request.topP }),
        ...(request.stop !== undefined && request.stop.length > 0 && { stop: request.stop }),
        seed: (request.seed >>> 0) % 2 ** 31,
      },
    };
    return {
      method: 'POST',
      path: DASHSCOPE_CHAT_PATH,
      headers: { ...this.headers('text/event-stream', { trace: request }), 'content-type': 'application/json', 'x-dashscope-sse': 'enable' },
      body: JSON.stringify(body),
    };
  }

  /** The model list of the compatible mode: the cheapest authenticated GET DashScope has. */
  healthRequest(): UpstreamRequest {
    return { method: 'GET', path: '/compatible-mode/v1/models', headers: this.headers('application/json') };
  }

  /**
   * Reads `event:result` events: `output.choices[0].message.content` is
   * text, `finish_reason` stays the string "null" until the last event,
   * where "length" is a cut and anything else ("stop") the end; `usage`
   * (`input_tokens`, `output_tokens`, running totals) the token counts.
   * There is no [DONE]: the event with a finish reason is the end. An
   * `event:error` event (its `:HTTP_STATUS/<code>` comment and `code` field
   * name the failure) throws with the reason its code names. After the end
   * the rest of the body is read (a few events at most) so its connection
   * can be reused.
   */
  decoder(): StreamDecoder {
    return new DashScopeDecoder((data, status) => this.#eventError(data, status), this.apiKey());
  }

  /**
   * Reads `{"code", "message", "request_id"}`. The code decides the reason
   * when it names one (a `Throttling.*` 429 is rate_limited, an
   * `InternalError` unavailable, `InvalidApiKey` / `DataInspectionFailed`
   * rejected), else the status.
   */
  failure(status: number, body: string): UpstreamFailure {
    const parsed = tryParseJson(body);
    if (isRecord(parsed) && (typeof parsed.message === 'string' || typeof parsed.code === 'string')) {
      const code = typeof parsed.code === 'string' ? parsed.code : '';
      return { message: describe(parsed, this.apiKey()), reason: codeReason(code) ?? reasonOfStatus(status) };
    }
    return { message: quote(body, QUOTED_BODY_CHARS, this.apiKey()) || 'no error message', reason: reasonOfStatus(status) };
  }

  /** An `event:error` event: reason from its code, else from its HTTP_STATUS comment. */
  #eventError(data: string, status: number | undefined): UpstreamError {
    const parsed = tryParseJson(data);
    const code = isRecord(parsed) && typeof parsed.code === 'string' ? parsed.code : '';
    const message = isRecord(parsed) ? describe(parsed, this.apiKey()) : quote(data, QUOTED_BODY_CHARS, this.apiKey()) || 'no error message';
    const reason = codeReason(code) ?? (status !== undefined ? reasonOfStatus(status) : 'bad_response');
    return new UpstreamError(reason, `DashScope stream error${status !== undefined ? ` (HTTP_STATUS/${status})` : ''}: ${message}`);
  }
}

/**
 * The reason a DashScope error code names, or undefined to go by the HTTP
 * status. Codes are compared without case, dots and underscores, so the
 * compatible mode's `data_inspection_failed` reads like `DataInspectionFailed`.
 */
export function codeReason(code: string): UpstreamReason | undefined {
  const c = code.toLowerCase().replace(/[._-]/g, '');
  if (c === '') return undefined;
  if (c.startsWith('throttling')) return 'rate_limited';
  if (c.startsWith('internalerror') || c.startsWith('serviceunavailable') || c.startsWith('systemerror') || c.startsWith('modelserviceoverloaded')) return 'unavailable';
  if (c.startsWith('requesttimeout')) return 'timeout';
  if (
    c.startsWith('invalidapikey') ||
    c.startsWith('invalidparameter') ||
    c.startsWith('datainspectionfailed') ||
    c.startsWith('accessdenied') ||
    c.startsWith('arrearage') ||
    c.startsWith('badrequest') ||
    c.startsWith('invalidurl') ||
    c.startsWith('modelnotfound') ||
    c.startsWith('unsupportedoperation')
  ) {
    return 'rejected';
  }
  return undefined;
}

/** The status of a `:HTTP_STATUS/429` comment, DashScope's per-event status. */
function httpStatusOf(comments: readonly string[] | undefined): number | undefined {
  for (const c of comments ?? []) {
    const m = /^\s*HTTP_STATUS\/(\d{3})\s*$/.exec(c);
    if (m) return Number(m[1]);
  }
  return undefined;
}

function readUsage(value: unknown): { promptTokens: number; completionTokens: number } | undefined {
  if (!isRecord(value)) return undefined;
  const { input_tokens: p, output_tokens: c } = value;
  return typeof p === 'number' && typeof c === 'number' ? { promptTokens: p, completionTokens: c } : undefined;
}

/** "Code: message (request_id …)": the request id is what DashScope support asks for. */
function describe(error: Record<string, unknown>, secret: string | undefined): string {
  const code = typeof error.code === 'string' && error.code !== '' ? `${error.code}: ` : '';
  const message = typeof error.message === 'string' && error.message !== '' ? error.message : 'no error message';
  const id = typeof error.request_id === 'string' && error.request_id !== '' ? ` (request_id ${error.request_id})` : '';
  return quote(`${code}${message}${id}`, MESSAGE_CHARS, secret);
}

class DashScopeDecoder extends SseRecordDecoder {
  #usage: { promptTokens: number; completionTokens: number } | undefined;

  constructor(
    private readonly eventError: (data: string, status: number | undefined) => UpstreamError,
    /** The API key, masked where an event is quoted. */
    private readonly key: string | undefined,
  ) {
    super();
  }

  protected record(sse: SseEvent, out: StreamEvent[]): boolean {
    const status = httpStatusOf(sse.comments);
    if (sse.event === 'error' || (status !== undefined && (status < 200 || status >= 300))) throw this.eventError(sse.data, status);
    const chunk = parseJsonObject(sse.data, 'DashScope stream event', this.key);
    const output = chunk.output;
    if (!isRecord(output)) {
      // An error in a result event's clothing: {"code": "...", "message": "..."} without output.
      if (typeof chunk.code === 'string' && chunk.code !== '') throw this.eventError(sse.data, status);
      throw new UpstreamError('bad_response', `DashScope stream event has no output: ${quote(sse.data, 100, this.key)}`);
    }
    const choices = output.choices;
    const choice: unknown = Array.isArray(choices) ? choices[0] : undefined;
    if (!isRecord(choice)) throw new UpstreamError('bad_response', `DashScope stream event has no output.choices (is result_format "message"?): ${quote(sse.data, 100, this.key)}`);
    const message = choice.message;
    if (isRecord(message) && typeof message.content === 'string' && message.content !== '') out.push({ type: 'text', text: message.content });
    this.#usage = readUsage(chunk.usage) ?? this.#usage;
    const reason = choice.finish_reason;
    if (typeof reason !== 'string' || reason === '' || reason === 'null') return false;
    out.push({ type: 'end', finish: reason === 'length' ? 'length' : 'stop', ...(this.#usage && { usage: this.#usage }) });
    return true;
  }

  protected missingEnd(): UpstreamError {
    return new UpstreamError('bad_response', 'DashScope stream ended before the event with a finish_reason');
  }
}
