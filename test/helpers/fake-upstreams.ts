/**
 * Local stand-ins for the model APIs npcd streams from, speaking each one's
 * wire format: the OpenAI Chat Completions SSE stream, Ollama's /api/chat
 * NDJSON stream and DashScope's native text-generation SSE stream. A test
 * scripts what the next requests get (a stream, an error status, a cut or
 * malformed body, an error inside the stream, no answer at all) and reads
 * back what arrived: requests, TCP connections, concurrency, client aborts.
 *
 *   const fake = await startFakeOpenAi();
 *   t.teardown(() => fake.close());
 *   fake.script({ type: 'status', status: 429, retryAfter: '1' }, { type: 'stream', tokens: ['Hi', '!'] });
 */
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export type FakeKind = 'openai' | 'ollama' | 'dashscope';

export interface Usage {
  readonly promptTokens: number;
  readonly completionTokens: number;
}

/** A whole reply, one token per chunk. */
export interface StreamBehaviour {
  readonly type: 'stream';
  /** Default: DEFAULT_TOKENS. */
  readonly tokens?: readonly string[];
  /** Pause before each token after the first. */
  readonly tokenDelayMs?: number;
  /** Pause between the response headers (sent at once) and the first token. */
  readonly firstByteDelayMs?: number;
  /** Default "stop". */
  readonly finish?: 'stop' | 'length';
  /** Default: prompt tokens estimated from the request, completion tokens = tokens sent. */
  readonly usage?: Usage;
}

/** A non-2xx answer; the body defaults to the API's own error body for the status. */
export interface StatusBehaviour {
  readonly type: 'status';
  readonly status: number;
  /** A string is sent as is (HTML, plain text); anything else as JSON. */
  readonly body?: unknown;
  /** Retry-After header: delta-seconds ("2") or an HTTP-date. */
  readonly retryAfter?: string;
  /** Default application/json (text/plain for a string body that is not JSON). */
  readonly contentType?: string;
}

interface PartialStream {
  /** Tokens sent before the failure. */
  readonly afterTokens: number;
  readonly tokens?: readonly string[];
  readonly tokenDelayMs?: number;
}

/** `afterTokens` tokens, then the socket is destroyed mid-body (no end marker, no chunked terminator). */
export interface CutBehaviour extends PartialStream {
  readonly type: 'cut';
}

/** `afterTokens` tokens, then the response ends cleanly without the API's end marker. */
export interface TruncateBehaviour extends PartialStream {
  readonly type: 'truncate';
}

/** `afterTokens` tokens, then a chunk that is not valid JSON, then the response ends. */
export interface MalformedBehaviour extends PartialStream {
  readonly type: 'malformed';
}

/**
 * `afterTokens` tokens, then an error in the API's in-stream format, then
 * the response ends. openai: `data: {"error": {"message", "type": code,
 * "code"}}` (default code "server_error"); ollama: `{"error": message}`;
 * dashscope: `event:error` with `:HTTP_STATUS/<status>` and
 * `{"code", "message", "request_id"}` (default code "InternalError",
 * status 429 for Throttling.* codes, else 500).
 */
export interface StreamErrorBehaviour extends PartialStream {
  readonly type: 'stream-error';
  readonly code?: string;
  readonly message?: string;
  readonly status?: number;
}

/** The request is read and never answered, until the client closes it (or the fake closes). */
export interface HangBehaviour {
  readonly type: 'hang';
}

export type Behaviour = StreamBehaviour | StatusBehaviour | CutBehaviour | TruncateBehaviour | MalformedBehaviour | StreamErrorBehaviour | HangBehaviour;

/** Chooses the behaviour for a request (called once the request body is read). */
export type BehaviourFn = (request: RecordedRequest) => Behaviour;

export interface RecordedRequest {
  readonly method: string;
  /** Path and query as received. */
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  /** The body parsed as JSON; undefined when empty or not JSON. */
  readonly body: unknown;
  readonly rawBody: string;
  /** Health route rather than chat route (or another path). */
  readonly route: 'chat' | 'health' | 'other';
  /** The behaviour it got (chat route only). */
  behaviour?: Behaviour;
  /** The client closed it before the response was complete. */
  aborted: boolean;
  /** The response was sent completely. */
  finished: boolean;
}

export interface FakeUpstreamOptions {
  /** Model name the health route lists. Default "fake-model". */
  readonly model?: string;
  /** When set, requests without `Authorization: Bearer <apiKey>` get the API's 401. */
  readonly apiKey?: string;
  /** What chat requests get when nothing is scripted. Default a stream of DEFAULT_TOKENS. */
  readonly default?: Behaviour | BehaviourFn;
  /** Loopback port to listen on (an upstream coming up where connections were refused). Default: a free one. */
  readonly port?: number;
}

export const DEFAULT_TOKENS: readonly string[] = ['The', ' lantern', ' swings', ' in', ' the', ' rain', '.'];

/** Routes and bodies of one API. */
interface WireFormat {
  readonly basePath: string;
  readonly chatPath: string;
  readonly healthPath: string;
  readonly streamType: string;
  /** Bytes before the first token (OpenAI's role-only delta). */
  start(ctx: StreamContext): string;
  token(ctx: StreamContext, text: string): string;
  /** The last chunk(s) and the end marker. */
  end(ctx: StreamContext, finish: 'stop' | 'length', usage: Usage): string;
  malformed(ctx: StreamContext): string;
  streamError(ctx: StreamContext, b: StreamErrorBehaviour): string;
  errorBody(status: number, model: string): unknown;
  health(model: string): unknown;
}

interface StreamContext {
  readonly model: string;
  readonly request: unknown;
  readonly id: string;
  /** Tokens sent so far. */
  sent: number;
  /** Text sent so far (DashScope without incremental_output repeats it). */
  text: string;
  /** SSE event counter (DashScope ids). */
  events: number;
}

function record(value: unknown): Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
}

const OPENAI: WireFormat = {
  basePath: '/v1',
  chatPath: '/v1/chat/completions',
  healthPath: '/v1/models',
  streamType: 'text/event-stream; charset=utf-8',
  start(ctx) {
    return openAiChunk(ctx, [{ index: 0, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null }]);
  },
  token(ctx, text) {
    return openAiChunk(ctx, [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }]);
  },
  end(ctx, finish, usage) {
    let out = openAiChunk(ctx, [{ index: 0, delta: {}, logprobs: null, finish_reason: finish }]);
    // OpenAI sends the usage chunk only when the request asked for it.
    if (record(record(ctx.request).stream_options).include_usage === true) {
      out += openAiChunk(ctx, [], {
        prompt_tokens: usage.promptTokens,
        completion_tokens: usage.completionTokens,
        total_tokens: usage.promptTokens + usage.completionTokens,
      });
    }
    return out + 'data: [DONE]\n\n';
  },
  malformed(ctx) {
    return `data: {"id":"${ctx.id}","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"bro\n\n`;
  },
  streamError(_ctx, b) {
    const code = b.code ?? 'server_error';
    return `data: ${JSON.stringify({ error: { message: b.message ?? 'The server had an error while processing your request. Sorry about that!', type: code, param: null, code } })}\n\n`;
  },
  errorBody(status, model) {
    const [type, code, message] =
      status === 401
        ? ['invalid_request_error', 'invalid_api_key', 'Incorrect API key provided: sk-fake***1234. You can find your API key at https://platform.openai.com/account/api-keys.']
        : status === 404
          ? ['invalid_request_error', 'model_not_found', `The model \`${model}\` does not exist or you do not have access to it.`]
          : status === 429
            ? ['requests', 'rate_limit_exceeded', `Rate limit reached for ${model} on requests per min (RPM): Limit 3, Used 3, Requested 1. Please try again in 20s.`]
            : status >= 500
              ? ['server_error', null, 'The server had an error while processing your request. Sorry about that!']
              : ['invalid_request_error', null, 'Invalid request.'];
    return { error: { message, type, param: null, code } };
  },
  health(model) {
    return { object: 'list', data: [{ id: model, object: 'model', created: 1700000000, owned_by: 'fake' }] };
  },
};

function openAiChunk(ctx: StreamContext, choices: unknown[], usage?: unknown): string {
  const chunk = {
    id: ctx.id,
    object: 'chat.completion.chunk',
    created: Math.floor(Date.now() / 1000),
    model: ctx.model,
    system_fingerprint: 'fp_fake',
    choices,
    ...(usage !== undefined && { usage }),
  };
  return `data: ${JSON.stringify(chunk)}\n\n`;
}

const OLLAMA: WireFormat = {
  basePath: '',
  chatPath: '/api/chat',
  healthPath: '/api/tags',
  streamType: 'application/x-ndjson',
  start() {
    return '';
  },
  token(ctx, text) {
    return `${JSON.stringify({ model: ctx.model, created_at: new Date().toISOString(), message: { role: 'assistant', content: text }, done: false })}\n`;
  },
  end(ctx, finish, usage) {
    const line = {
      model: ctx.model,
      created_at: new Date().toISOString(),
      message: { role: 'assistant', content: '' },
      done_reason: finish,
      done: true,
      total_duration: 1_234_567_890,
      load_duration: 12_345_678,
      prompt_eval_count: usage.promptTokens,
      prompt_eval_duration: 123_456_789,
      eval_count: usage.completionTokens,
      eval_duration: 987_654_321,
    };
    return `${JSON.stringify(line)}\n`;
  },
  malformed(ctx) {
    return `{"model":"${ctx.model}","created_at":"2024-01-01T00:00:00Z","message":{"role":"assistant","content":"bro\n`;
  },
  streamError(_ctx, b) {
    return `${JSON.stringify({ error: b.message ?? 'an error was encountered while running the model: unexpected EOF' })}\n`;
  },
  errorBody(status, model) {
    const error =
      status === 404
        ? `model "${model}" not found, try pulling it first`
        : status === 503
          ? 'server busy, please try again.  maximum pending requests exceeded'
          : status >= 500
            ? 'llama runner process has terminated: exit status 2'
            : status === 401
              ? 'unauthorized'
              : status === 429
                ? 'too many requests'
                : 'invalid request';
    return { error };
  },
  health(model) {
    return {
      models: [
        {
          name: model,
          model,
          modified_at: '2024-01-01T00:00:00Z',
          size: 1_000_000,
          digest: 'sha256:fake',
          details: { format: 'gguf', family: 'llama', parameter_size: '1B', quantization_level: 'Q4_K_M' },
        },
      ],
    };
  },
};

const DASHSCOPE: WireFormat = {
  basePath: '',
  chatPath: '/api/v1/services/aigc/text-generation/generation',
  healthPath: '/compatible-mode/v1/models',
  streamType: 'text/event-stream;charset=UTF-8',
  start() {
    return '';
  },
  token(ctx, text) {
    return dashScopeEvent(ctx, text, 'null', undefined);
  },
  end(ctx, finish, usage) {
    return dashScopeEvent(ctx, '', finish, usage);
  },
  malformed(ctx) {
    ctx.events++;
    return `id:${ctx.events}\nevent:result\n:HTTP_STATUS/200\ndata:{"output":{"choices":[{"message":{"content":"bro\n\n`;
  },
  streamError(ctx, b) {
    ctx.events++;
    const code = b.code ?? 'InternalError';
    const status = b.status ?? (code.startsWith('Throttling') ? 429 : 500);
    const message = b.message ?? (status === 429 ? 'Requests rate limit exceeded, please try again later.' : 'An internal error has occured, please try again later or contact service support.');
    return `id:${ctx.events}\nevent:error\n:HTTP_STATUS/${status}\ndata:${JSON.stringify({ code, message, request_id: ctx.id })}\n\n`;
  },
  errorBody(status, model) {
    const [code, message] =
      status === 401
        ? ['InvalidApiKey', 'Invalid API-key provided.']
        : status === 403
          ? ['AccessDenied', 'Access denied.']
          : status === 404
            ? ['ModelNotFound', `Model not exist: ${model}`]
            : status === 429
              ? ['Throttling.RateQuota', 'Requests rate limit exceeded, please try again later.']
              : status >= 500
                ? ['InternalError', 'An internal error has occured, please try again later or contact service support.']
                : ['InvalidParameter', 'Required parameter(s) missing or invalid, please check the request parameters.'];
    return { code, message, request_id: '7f1c2a3b-0000-4000-8000-fakefakefake' };
  },
  health(model) {
    return { object: 'list', data: [{ id: model, object: 'model', created: 1700000000, owned_by: 'system' }] };
  },
};

function dashScopeEvent(ctx: StreamContext, text: string, finish: string, finalUsage: Usage | undefined): string {
  ctx.events++;
  // Without incremental_output DashScope repeats the whole text so far in every event.
  const incremental = record(record(ctx.request).parameters).incremental_output === true;
  const content = incremental ? text : ctx.text;
  const usage = finalUsage ?? { promptTokens: promptTokensOf(ctx.request), completionTokens: ctx.sent };
  const data = {
    output: { choices: [{ message: { content, role: 'assistant' }, finish_reason: finish }] },
    usage: { total_tokens: usage.promptTokens + usage.completionTokens, input_tokens: usage.promptTokens, output_tokens: usage.completionTokens },
    request_id: ctx.id,
  };
  return `id:${ctx.events}\nevent:result\n:HTTP_STATUS/200\ndata:${JSON.stringify(data)}\n\n`;
}

/** A rough prompt size: a token per 4 characters of message content. */
function promptTokensOf(request: unknown): number {
  const r = record(request);
  const messages = Array.isArray(r.messages) ? r.messages : Array.isArray(record(r.input).messages) ? (record(r.input).messages as unknown[]) : [];
  let chars = 0;
  for (const m of messages) {
    const content = record(m).content;
    if (typeof content === 'string') chars += content.length;
  }
  return Math.max(1, Math.ceil(chars / 4));
}

const FORMATS: Record<FakeKind, WireFormat> = { openai: OPENAI, ollama: OLLAMA, dashscope: DASHSCOPE };

export class FakeUpstream {
  /** Base URL as npcd is configured with it: `…/v1` for openai, the origin for ollama and dashscope. */
  readonly url: string;
  readonly origin: string;
  readonly port: number;
  /** false: the health route answers 503. */
  healthy = true;
  readonly requests: RecordedRequest[] = [];
  /** TCP connections accepted since start. */
  connections = 0;
  /** TCP connections open now. */
  openConnections = 0;
  /** Requests being answered now, and the most at once. */
  inFlight = 0;
  maxInFlight = 0;
  /** Requests the client closed before their response was complete. */
  aborted = 0;

  readonly #server: Server;
  readonly #format: WireFormat;
  readonly #model: string;
  readonly #apiKey: string | undefined;
  readonly #queue: Behaviour[] = [];
  #default: Behaviour | BehaviourFn;
  #closing = false;
  #waiters: { count: number; resolve: () => void }[] = [];
  #nextId = 1;

  constructor(
    readonly kind: FakeKind,
    server: Server,
    options: FakeUpstreamOptions,
  ) {
    this.#server = server;
    this.#format = FORMATS[kind];
    this.#model = options.model ?? 'fake-model';
    this.#apiKey = options.apiKey;
    this.#default = options.default ?? { type: 'stream' };
    this.port = (server.address() as AddressInfo).port;
    this.origin = `http://127.0.0.1:${this.port}`;
    this.url = this.origin + this.#format.basePath;
    server.on('connection', (socket) => {
      this.connections++;
      this.openConnections++;
      socket.on('close', () => this.openConnections--);
    });
    server.on('request', (req, res) => {
      this.#handle(req, res).catch(() => res.destroy());
    });
  }

  /** Behaviours for the next chat requests, in order; after them the default applies. */
  script(...behaviours: Behaviour[]): this {
    this.#queue.push(...behaviours);
    return this;
  }

  /** What chat requests get when the script is used up. */
  setDefault(behaviour: Behaviour | BehaviourFn): this {
    this.#default = behaviour;
    return this;
  }

  /** Chat route requests, in arrival order. */
  get chatRequests(): RecordedRequest[] {
    return this.requests.filter((r) => r.route === 'chat');
  }

  /** Health route requests so far. */
  get healthChecks(): number {
    return this.requests.filter((r) => r.route === 'health').length;
  }

  /** Resolves once `count` requests (any route) have arrived with their bodies. */
  waitForRequests(count: number): Promise<void> {
    if (this.requests.length >= count) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ count, resolve }));
  }

  /** Ends every connection (hanging and streaming requests included) and stops listening. */
  async close(): Promise<void> {
    this.#closing = true;
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    const path = req.url ?? '/';
    const pathname = path.split('?')[0];
    const route = pathname === this.#format.chatPath && req.method === 'POST' ? 'chat' : pathname === this.#format.healthPath && req.method === 'GET' ? 'health' : 'other';
    // Aborted when the response closes unfinished, unless the fake cut it on purpose.
    const closed = new AbortController();
    let cutByServer = false;
    let rec: RecordedRequest | undefined;
    let clientGone = false;
    res.on('close', () => {
      this.inFlight--;
      closed.abort();
      if (!res.writableFinished && !cutByServer && !this.#closing) {
        clientGone = true;
        this.aborted++;
        if (rec) rec.aborted = true;
      }
      if (rec) rec.finished = res.writableFinished;
    });
    res.on('error', () => undefined);

    const rawBody = await readBody(req).catch(() => '');
    if (clientGone) return;
    rec = { method: req.method ?? '', path, headers: req.headers, body: parseJson(rawBody), rawBody, route, aborted: false, finished: false };
    this.requests.push(rec);
    this.#wake();

    if (this.#apiKey !== undefined && req.headers.authorization !== `Bearer ${this.#apiKey}`) {
      sendJson(res, 401, this.#format.errorBody(401, this.#model));
      return;
    }
    if (route === 'health') {
      if (this.healthy) sendJson(res, 200, this.#format.health(this.#model));
      else sendJson(res, 503, this.#format.errorBody(503, this.#model));
      return;
    }
    if (route === 'other') {
      sendJson(res, 404, { error: `no route ${req.method} ${pathname}` });
      return;
    }

    const next = this.#queue.shift() ?? this.#default;
    const behaviour = typeof next === 'function' ? next(rec) : next;
    rec.behaviour = behaviour;
    const ctx: StreamContext = {
      model: typeof record(rec.body).model === 'string' ? (record(rec.body).model as string) : this.#model,
      request: rec.body,
      id: this.kind === 'openai' ? `chatcmpl-fake${this.#nextId++}` : `fake-${this.#nextId++}`,
      sent: 0,
      text: '',
      events: 0,
    };
    try {
      await this.#respond(res, behaviour, ctx, closed.signal, () => {
        cutByServer = true;
      });
    } catch (err) {
      // The client went away during a pause: nothing left to answer.
      if (!closed.signal.aborted) throw err;
    }
  }

  async #respond(res: ServerResponse, b: Behaviour, ctx: StreamContext, signal: AbortSignal, markCut: () => void): Promise<void> {
    const f = this.#format;
    switch (b.type) {
      case 'hang':
        return; // answered by nobody; the close handler records the client leaving
      case 'status': {
        const body = b.body === undefined ? this.#format.errorBody(b.status, ctx.model) : b.body;
        const text = typeof body === 'string' ? body : JSON.stringify(body);
        const type = b.contentType ?? (typeof body === 'string' && parseJson(body) === undefined ? 'text/plain; charset=utf-8' : 'application/json');
        res.writeHead(b.status, { 'content-type': type, ...(b.retryAfter !== undefined && { 'retry-after': b.retryAfter }) });
        res.end(text);
        return;
      }
      case 'stream': {
        const tokens = b.tokens ?? DEFAULT_TOKENS;
        res.writeHead(200, { 'content-type': f.streamType, 'cache-control': 'no-cache' });
        res.flushHeaders();
        if (b.firstByteDelayMs) await sleep(b.firstByteDelayMs, undefined, { signal });
        await this.#tokens(res, ctx, tokens, tokens.length, b.tokenDelayMs, signal);
        const usage = b.usage ?? { promptTokens: promptTokensOf(ctx.request), completionTokens: ctx.sent };
        res.end(f.end(ctx, b.finish ?? 'stop', usage));
        return;
      }
      default: {
        res.writeHead(200, { 'content-type': f.streamType, 'cache-control': 'no-cache' });
        res.flushHeaders();
        await this.#tokens(res, ctx, b.tokens ?? DEFAULT_TOKENS, b.afterTokens, b.tokenDelayMs, signal);
        if (b.type === 'cut') {
          // End the TCP connection after what was written (no chunked
          // terminator): the client sees it close in the middle of the body.
          markCut();
          res.socket?.end();
        } else if (b.type === 'truncate') res.end();
        else if (b.type === 'malformed') res.end(f.malformed(ctx));
        else res.end(f.streamError(ctx, b));
        return;
      }
    }
  }

  /** Writes the first `count` tokens, each as its own write, as a real server flushes them. */
  async #tokens(res: ServerResponse, ctx: StreamContext, tokens: readonly string[], count: number, delayMs: number | undefined, signal: AbortSignal): Promise<void> {
    const start = this.#format.start(ctx);
    if (start) res.write(start);
    const n = Math.min(count, tokens.length);
    for (let i = 0; i < n; i++) {
      if (i > 0 && delayMs) await sleep(delayMs, undefined, { signal });
      const token = tokens[i]!;
      ctx.sent++;
      ctx.text += token;
      res.write(this.#format.token(ctx, token));
    }
  }

  #wake(): void {
    const ready = this.#waiters.filter((w) => this.requests.length >= w.count);
    this.#waiters = this.#waiters.filter((w) => this.requests.length < w.count);
    for (const w of ready) w.resolve();
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
    // A client that leaves before the body ends: whatever came (the close handler counts the abort).
    req.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
  });
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

/** Starts a fake of `kind` on a loopback port (a free one unless `options.port`). */
export async function startFakeUpstream(kind: FakeKind, options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return new FakeUpstream(kind, server, options);
}

export const startFakeOpenAi = (options?: FakeUpstreamOptions): Promise<FakeUpstream> => startFakeUpstream('openai', options);
export const startFakeOllama = (options?: FakeUpstreamOptions): Promise<FakeUpstream> => startFakeUpstream('ollama', options);
export const startFakeDashScope = (options?: FakeUpstreamOptions): Promise<FakeUpstream> => startFakeUpstream('dashscope', options);

/** A loopback port that was free a moment ago (bound, read and released). */
export async function freePort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** A loopback URL nothing listens on: connecting is refused. */
export async function closedPortUrl(): Promise<string> {
  return `http://127.0.0.1:${await freePort()}`;
}
