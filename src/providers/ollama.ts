/**
 * Ollama's native chat API (`POST /api/chat`, streamed as NDJSON), not its
 * OpenAI-compatible `/v1` routes: the native API takes `keep_alive` and
 * reports why a reply ended (`done_reason`) and its token counts on every
 * version. docs/providers.md describes the mapping.
 */
import { type ApiAdapter, reasonOfStatus, type StreamDecoder, type StreamEvent, type UpstreamFailure, type UpstreamRequest, UpstreamError } from './api.js';
import { type AdapterOptions, isRecord, KeyedAdapter, NdjsonRecordDecoder, MESSAGE_CHARS, quote, QUOTED_BODY_CHARS, tryParseJson } from './http-api.js';
import type { GenerateRequest } from './types.js';

export interface OllamaAdapterOptions extends AdapterOptions {
  /** Sent as `Authorization: Bearer` (Ollama behind an authenticating proxy, or ollama.com); a local Ollama needs none. */
  readonly apiKey?: string;
  /**
   * How long Ollama keeps the model loaded after the request: a Go duration
   * ("10m", "1h", "-1m" = forever) or a number of seconds ("600", "-1",
   * "0" = unload at once). Ollama's default (5 minutes) when unset.
   */
  readonly keepAlive?: string;
}

export class OllamaAdapter extends KeyedAdapter implements ApiAdapter {
  readonly kind = 'ollama';
  readonly #keepAlive: string | number | undefined;

  constructor(options: OllamaAdapterOptions) {
    super(options);
    this.#keepAlive = keepAliveValue(options.keepAlive);
  }

  /**
   * Messages keep only role and content: /api/chat has no speaker name
   * field, and the prompt puts names into the content where they matter.
   */
  chatRequest(request: GenerateRequest): UpstreamRequest {
    const body = {
      model: this.model,
      messages: request.messages.map((m) => ({ role: m.role, content: m.content })),
      stream: true,
      options: {
        num_predict: request.maxTokens,
        ...(request.temperature !== undefined && { temperature: request.temperature }),
        ...(request.topP !== undefined && { top_p: request.topP }),
        ...(request.stop !== undefined && request.stop.length > 0 && { stop: request.stop }),
        seed: request.seed,
      },
      ...(this.#keepAlive !== undefined && { keep_alive: this.#keepAlive }),
    };
    return { method: 'POST', path: '/api/chat', headers: this.headers('application/x-ndjson', { trace: request, json: true }), body: JSON.stringify(body) };
  }

  /** The list of local models: answers as soon as the server is up, loads nothing. */
  healthRequest(): UpstreamRequest {
    return { method: 'GET', path: '/api/tags', headers: this.headers('application/json') };
  }

  /**
   * Reads one JSON object a line: `message.content` is text, the line with
   * `"done": true` the end (`done_reason` "length" is a cut, anything else
   * a stop; `prompt_eval_count` and `eval_count` the token counts). An
   * `{"error": "..."}` line (the model runner failed mid-reply) is a
   * bad_response. After the end the rest of the body is read (a few lines at
   * most) so its connection can be reused.
   */
  decoder(): StreamDecoder {
    return new OllamaDecoder(this.apiKey());
  }

  /** Reads `{"error": "..."}` (e.g. 404 "model 'x' not found"); the status decides the reason. */
  failure(status: number, body: string): UpstreamFailure {
    const parsed = tryParseJson(body);
    const message =
      isRecord(parsed) && typeof parsed.error === 'string'
        ? quote(parsed.error, MESSAGE_CHARS, this.apiKey())
        : quote(body, QUOTED_BODY_CHARS, this.apiKey()) || 'no error message';
    return { message, reason: reasonOfStatus(status) };
  }
}

/**
 * Ollama reads a JSON number as seconds and a string as a Go duration, which
 * needs a unit ("-1" alone is refused): a bare integer is sent as a number.
 */
export function keepAliveValue(value: string | undefined): string | number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

class OllamaDecoder extends NdjsonRecordDecoder {
  constructor(private readonly key: string | undefined) {
    super(key);
  }

  protected record(line: unknown, out: StreamEvent[]): boolean {
    if (!isRecord(line)) throw new UpstreamError('bad_response', `Ollama stream line is not a JSON object: ${quote(JSON.stringify(line), 100, this.key)}`);
    if (line.error !== undefined) {
      const message = typeof line.error === 'string' ? line.error : JSON.stringify(line.error);
      throw new UpstreamError('bad_response', `Ollama stream error: ${quote(message, MESSAGE_CHARS, this.key)}`);
    }
    const message = line.message;
    if (isRecord(message) && typeof message.content === 'string' && message.content !== '') out.push({ type: 'text', text: message.content });
    if (line.done !== true) return false;
    const p = line.prompt_eval_count;
    const c = line.eval_count;
    out.push({
      type: 'end',
      finish: line.done_reason === 'length' ? 'length' : 'stop',
      ...(typeof p === 'number' && typeof c === 'number' && { usage: { promptTokens: p, completionTokens: c } }),
    });
    return true;
  }

  protected missingEnd(): UpstreamError {
    return new UpstreamError('bad_response', 'Ollama stream ended before its "done": true line');
  }
}
