/**
 * Embedders that call an HTTP embedding API through a pooled upstream
 * (src/providers/upstream.ts: bounded connections, keep-alive, connect
 * timeout, health checks), the same transport the chat providers use:
 *
 *   ollama:MODEL  POST {base}/api/embed   {"model", "input": [texts]}
 *                 → {"embeddings": [[...], ...]}
 *   openai:MODEL  POST {base}/embeddings  {"model", "input": [texts], "encoding_format": "float"}
 *                 → {"data": [{"index": i, "embedding": [...]}, ...]}   (any OpenAI-compatible server)
 *
 * The adapters extend the chat adapters of the same API, so credentials,
 * headers, health requests and the reading of error bodies are theirs.
 * Every request has a time limit; every failure (unreachable, an error
 * status, a body that is not the API's, vectors of the wrong count or
 * dimension, the time limit) rejects with ERR_EMBEDDING_FAILED naming the
 * embedder and the cause. There are no retries: a failed recall is skipped
 * for its turn, and a retry would only delay the reply.
 */
import { type ApiAdapter, type UpstreamFailure, type UpstreamRequest, UpstreamError } from '../../providers/api.js';
import { isRecord, QUOTED_CHARS, quote, tryParseJson } from '../../providers/http-api.js';
import { OllamaAdapter } from '../../providers/ollama.js';
import { OpenAiAdapter } from '../../providers/openai.js';
import type { Slot, StreamedResponse, Upstream } from '../../providers/upstream.js';
import { NpcdError } from '../../errors.js';
import { type Embedder, embeddingError, embedNonBlank, notReady, unitVector } from './types.js';

/** What an embedding API adds to its chat adapter. */
export interface EmbedApi extends ApiAdapter {
  readonly kind: 'ollama' | 'openai';
  /** The request embedding `texts` (at least one). */
  embedRequest(texts: readonly string[]): UpstreamRequest;
  /** The vectors of a 2xx answer's JSON, in input order (not yet checked); throws an Error saying what is wrong. */
  vectorsOf(body: unknown, count: number): readonly unknown[];
  /** Upstream text fit for a message (bounded, one line, no credential). */
  quoteBody(text: string): string;
  failure(status: number, body: string): UpstreamFailure;
}

function countError(got: number, count: number): Error {
  return new Error(`returned ${got} embedding${got === 1 ? '' : 's'} for ${count} input${count === 1 ? '' : 's'}`);
}

/** A 2xx answer's JSON as an object; throws when it is none, or an `{"error": ...}` sent with the 2xx. */
function answerObject(body: unknown): Record<string, unknown> {
  if (!isRecord(body)) throw new Error('answered JSON that is not an object');
  const e = body.error;
  if (e === undefined || e === null) return body;
  const message = typeof e === 'string' ? e : isRecord(e) && typeof e.message === 'string' ? e.message : JSON.stringify(e);
  throw new Error(`answered with an error: ${message}`);
}

export class OllamaEmbedAdapter extends OllamaAdapter implements EmbedApi {
  embedRequest(texts: readonly string[]): UpstreamRequest {
    // `truncate` (the default) cuts an input longer than the model's context instead of failing.
    return { method: 'POST', path: '/api/embed', headers: this.headers('application/json', { json: true }), body: JSON.stringify({ model: this.model, input: texts }) };
  }

  vectorsOf(json: unknown, count: number): readonly unknown[] {
    const body = answerObject(json);
    const vectors = body.embeddings;
    if (!Array.isArray(vectors)) {
      const old = Array.isArray(body.embedding) ? ' (only "embedding": /api/embed needs Ollama 0.3.4 or later)' : '';
      throw new Error(`answered without an "embeddings" array${old}`);
    }
    if (vectors.length !== count) throw countError(vectors.length, count);
    return vectors;
  }

  quoteBody(text: string): string {
    return quote(text, QUOTED_CHARS, this.apiKey());
  }
}

export class OpenAiEmbedAdapter extends OpenAiAdapter implements EmbedApi {
  embedRequest(texts: readonly string[]): UpstreamRequest {
    const body = { model: this.model, input: texts, encoding_format: 'float' };
    return { method: 'POST', path: '/embeddings', headers: this.headers('application/json', { json: true }), body: JSON.stringify(body) };
  }

  /** `data` items may come in any order: each goes to its `index`, which must cover 0..count-1 once. */
  vectorsOf(json: unknown, count: number): readonly unknown[] {
    const data = answerObject(json).data;
    if (!Array.isArray(data)) throw new Error('answered without a "data" array');
    if (data.length !== count) throw countError(data.length, count);
    const out: unknown[] = new Array(count);
    for (const item of data) {
      const index = isRecord(item) ? item.index : undefined;
      if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count || out[index] !== undefined) {
        throw new Error(`answered an item with index ${JSON.stringify(index)}; expected each of 0 to ${count - 1} once`);
      }
      const embedding = (item as Record<string, unknown>).embedding;
      if (typeof embedding === 'string') throw new Error('answered base64 text, though npcd asks for encoding_format "float"');
      out[index] = embedding;
    }
    return out;
  }

  quoteBody(text: string): string {
    return quote(text, QUOTED_CHARS, this.apiKey());
  }
}

export interface RemoteEmbedderOptions {
  /** Time limit of one request, from waiting for a connection to the end of the answer. */
  readonly timeoutMs: number;
  /** Most texts per request; more are sent in several requests, one after another. */
  readonly batchSize: number;
  /** Each text is cut to this many characters (APIs refuse or truncate overlong input). */
  readonly maxChars: number;
}

/** Bytes of an answer read at most (4096 texts of 1024 dimensions written as JSON fit). */
const MAX_BODY = 128 * 1024 * 1024;
/** Bytes of an error answer read to explain it. */
const MAX_ERROR_BODY = 16 * 1024;
/** The text init() embeds to learn the dimension. */
export const PROBE_TEXT = 'The dimension probe of npcd.';

/** Marks the abort that is this request's own time limit. */
class RequestTimeout extends Error {}

export class RemoteEmbedder implements Embedder {
  readonly name: string;
  #dim = 0;

  constructor(
    private readonly api: EmbedApi,
    readonly upstream: Upstream,
    readonly options: RemoteEmbedderOptions,
  ) {
    this.name = `${api.kind}:${api.model}`;
  }

  get dim(): number {
    return this.#dim;
  }

  /** Embeds a probe text: the answer's length is the dimension. */
  async init(): Promise<void> {
    if (this.#dim > 0) return;
    const [v] = await this.#post([PROBE_TEXT], undefined);
    if (!v || v.length === 0) throw embeddingError(this.name, 'returned an empty vector for the dimension probe');
    this.#dim = v.length;
  }

  embed(texts: readonly string[], signal?: AbortSignal): Promise<Float32Array[]> {
    const dim = this.#dim;
    if (dim === 0) return Promise.reject(notReady(this.name));
    return embedNonBlank(texts, dim, async (wanted) => {
      const out: Float32Array[] = [];
      for (let i = 0; i < wanted.length; i += this.options.batchSize) {
        const batch = wanted.slice(i, i + this.options.batchSize).map((t) => cut(t, this.options.maxChars));
        out.push(...(await this.#post(batch, signal)));
      }
      return out;
    });
  }

  close(): Promise<void> {
    return this.upstream.close();
  }

  /** One request: the texts' unit vectors, checked against the known dimension (or each other's, before init finished). */
  async #post(texts: readonly string[], signal: AbortSignal | undefined): Promise<Float32Array[]> {
    const { upstream, api, name } = this;
    if (upstream.options.healthIntervalMs > 0 && !upstream.isHealthy) {
      throw embeddingError(name, `out of rotation until a health check succeeds (${upstream.health().reason ?? 'failed health checks'})`);
    }
    const controller = new AbortController();
    const onAbort = () => controller.abort(signal!.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const timer = setTimeout(() => controller.abort(new RequestTimeout()), this.options.timeoutMs);
    let slot: Slot | undefined;
    let res: StreamedResponse | undefined;
    try {
      signal?.throwIfAborted();
      slot = await upstream.acquire(controller.signal);
      res = await upstream.stream(api.embedRequest(texts), controller.signal);
      upstream.recordSuccess();
      if (res.statusCode < 200 || res.statusCode >= 300) {
        const failure = api.failure(res.statusCode, await res.text(MAX_ERROR_BODY));
        throw embeddingError(name, `answered ${res.statusCode}: ${failure.message}`);
      }
      const text = await readBody(res, MAX_BODY);
      const type = String(res.headers['content-type'] ?? '');
      if (/^text\/html\b/i.test(type)) throw new Error(`answered with an HTML page (${type}), not JSON: check the base URL`);
      const parsed = tryParseJson(text);
      if (parsed === undefined) throw new Error(`answered malformed JSON: ${api.quoteBody(text) || 'an empty body'}`);
      const raw = api.vectorsOf(parsed, texts.length);
      const dim = this.#dim || (Array.isArray(raw[0]) ? raw[0].length : 0);
      return raw.map((v, i) => unitVector(v, dim, texts.length === 1 ? 'the vector' : `vector ${i}`));
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      if (controller.signal.reason instanceof RequestTimeout) throw embeddingError(name, `did not answer within ${this.options.timeoutMs} ms`, err);
      if (err instanceof NpcdError && err.code === 'ERR_EMBEDDING_FAILED') throw err;
      // Upstream errors already name the upstream ("ollama:x: connection refused").
      const message = (err as Error).message ?? String(err);
      const own = err instanceof UpstreamError && message.startsWith(`${name}: `) ? message.slice(name.length + 2) : message;
      throw embeddingError(name, own, err);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      res?.close();
      slot?.release();
    }
  }
}

/** `text` cut to at most `max` UTF-16 units, never between the halves of a surrogate pair. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  return text.slice(0, /[\uD800-\uDBFF]/.test(text.charAt(max - 1)) ? max - 1 : max);
}

/** The whole body as text; more than `limit` bytes fails. */
async function readBody(res: StreamedResponse, limit: number): Promise<string> {
  const parts: Buffer[] = [];
  let size = 0;
  await res.consume((chunk) => {
    if (chunk === null) return;
    size += chunk.length;
    if (size > limit) throw new Error(`answered more than ${limit} bytes`);
    parts.push(chunk);
  });
  return Buffer.concat(parts).toString('utf8');
}
