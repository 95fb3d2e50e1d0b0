/**
 * Embedder specs, and the pluggable embedders against the real thing's wire
 * format: ollama:MODEL and openai:MODEL against a local HTTP server that
 * answers as Ollama's /api/embed and OpenAI's /v1/embeddings do (and fails
 * as they fail), llama:PATH.gguf against a tiny GGUF model the test writes.
 */
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { NpcdError } from '../../src/errors.js';
import { createEmbedder, type Embedder, type EmbedderConfig, parseEmbedSpec } from '../../src/memory/embed/index.js';
import { PROBE_TEXT } from '../../src/memory/embed/remote.js';
import { writeTinyGguf } from '../helpers/gguf.js';
import { closedPortUrl } from '../helpers/fake-upstreams.js';

async function rejection(p: Promise<unknown>): Promise<unknown> {
  return p.then(
    () => undefined,
    (err: unknown) => err,
  );
}

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i]! * v[i]!;
  return Math.sqrt(s);
}

// ---- Specs -------------------------------------------------------------------

t.test('parseEmbedSpec reads every kind and its options', async (t) => {
  t.same(parseEmbedSpec('glove'), { kind: 'glove', target: '', options: {}, text: 'glove' });
  t.same(parseEmbedSpec(' GLOVE?file=/srv/vectors.bin ').options, { file: '/srv/vectors.bin' });
  t.same(parseEmbedSpec('hash?dim=512').options, { dim: 512 });
  t.match(parseEmbedSpec('ollama:nomic-embed-text:latest'), { kind: 'ollama', target: 'nomic-embed-text:latest' }, 'a model name may hold colons');
  t.same(parseEmbedSpec('openai:text-embedding-3-small?url=http://127.0.0.1:8000/v1/&timeout=5s&batch=32&key_env=MY_KEY&connections=4').options, {
    url: 'http://127.0.0.1:8000/v1',
    timeoutMs: 5000,
    batch: 32,
    keyEnv: 'MY_KEY',
    connections: 4,
  });
  t.match(parseEmbedSpec('llama:/models/nomic-embed-text-v1.5.Q8_0.gguf?threads=2&context=256'), {
    kind: 'llama',
    target: '/models/nomic-embed-text-v1.5.Q8_0.gguf',
    options: { threads: 2, context: 256 },
  });
});

t.test('a bad spec is a configuration error that says what is wrong', async (t) => {
  const cases: [string, RegExp][] = [
    ['', /is empty; known: glove, hash, ollama:MODEL, openai:MODEL, llama:PATH\.gguf/],
    ['bert', /unknown embedder "bert"; known: glove, hash/],
    ['ollama', /name the embedding model: ollama:MODEL \(e\.g\. ollama:nomic-embed-text\)/],
    ['openai:', /name the embedding model: openai:MODEL/],
    ['llama:/models/model.bin', /name a GGUF model file: llama:PATH\.gguf/],
    ['glove:big', /"glove" takes no model name/],
    ['hash?dim=4', /option dim must be between 8 and 65536 \(got 4\)/],
    ['hash?dim=many', /option dim must be an integer \(got "many"\)/],
    ['hash?file=x', /unknown option "file" \(known: dim\)/],
    ['ollama:m?ttft=5s', /unknown option "ttft" \(known: url, key_env, timeout, batch, connections\)/],
    ['ollama:m?timeout=soon', /option timeout must be a duration/],
    ['openai:m?url=ftp://example.com', /must be an http or https URL/],
    ['openai:m?key_env=not-a-name', /option key_env must name an environment variable/],
    ['glove?file=', /option file must name a file/],
  ];
  for (const [spec, message] of cases) {
    const err = (() => {
      try {
        parseEmbedSpec(spec);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    t.ok(err instanceof NpcdError, `${JSON.stringify(spec)} is refused`);
    t.equal((err as NpcdError).code, 'ERR_CONFIG_INVALID');
    t.match((err as Error).message, `--embed ${JSON.stringify(spec)}`, 'names the flag and the spec');
    t.match((err as Error).message, message);
  }
  t.throws(() => createEmbedder('nope'), { code: 'ERR_CONFIG_INVALID' }, 'createEmbedder parses too');
});

// ---- HTTP embedding APIs -----------------------------------------------------

type Kind = 'ollama' | 'openai';

/** What the fake answers the next embedding request. */
type Reply =
  | { readonly type: 'ok' }
  /** An error status with the API's own error body. */
  | { readonly type: 'status'; readonly status: number }
  /** A 200 with this body as is. */
  | { readonly type: 'raw'; readonly body: string; readonly contentType?: string }
  /** A 200 with this JSON. */
  | { readonly type: 'json'; readonly body: unknown }
  /** A well-formed answer whose vector i has dims[i] components. */
  | { readonly type: 'dims'; readonly dims: readonly number[] }
  /** The request is read and never answered. */
  | { readonly type: 'hang' };

interface Recorded {
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly body: { model?: string; input?: string[]; encoding_format?: string };
}

const DIM = 8;
const MODEL = 'fake-embed';

/** A deterministic, never-zero vector for `text` (what the fake model "computes"). */
function fakeVector(text: string, dim = DIM): number[] {
  return Array.from({ length: dim }, (_, j) => ((text.charCodeAt(j % text.length) * (j + 3)) % 17) - 8 + 0.5);
}

function unit(v: number[]): number[] {
  const n = norm(v);
  return v.map((x) => x / n);
}

/** Ollama's /api/embed and OpenAI's /v1/embeddings, as they answer and fail. */
class FakeEmbeddingApi {
  readonly requests: Recorded[] = [];
  readonly url: string;
  #queue: Reply[] = [];

  constructor(
    readonly kind: Kind,
    private readonly server: Server,
  ) {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    this.url = kind === 'openai' ? `${origin}/v1` : origin;
    server.on('request', (req, res) => {
      let raw = '';
      req.setEncoding('utf8');
      req.on('data', (c: string) => (raw += c));
      req.on('end', () => {
        const path = req.url ?? '/';
        if (req.method === 'GET') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(kind === 'ollama' ? { models: [] } : { object: 'list', data: [] }));
          return;
        }
        const body = JSON.parse(raw) as Recorded['body'];
        this.requests.push({ path, headers: req.headers, body });
        const expected = kind === 'ollama' ? '/api/embed' : '/v1/embeddings';
        if (path !== expected) {
          res.writeHead(404, { 'content-type': 'text/plain' });
          res.end('404 page not found');
          return;
        }
        this.#answer(this.#queue.shift() ?? { type: 'ok' }, body, res);
      });
    });
  }

  static async start(kind: Kind): Promise<FakeEmbeddingApi> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return new FakeEmbeddingApi(kind, server);
  }

  script(...replies: Reply[]): this {
    this.#queue.push(...replies);
    return this;
  }

  get last(): Recorded {
    return this.requests.at(-1)!;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #answer(reply: Reply, body: Recorded['body'], res: ServerResponse): void {
    const input = body.input ?? [];
    const json = (status: number, value: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(value));
    };
    switch (reply.type) {
      case 'hang':
        return;
      case 'raw':
        res.writeHead(200, { 'content-type': reply.contentType ?? 'application/json' });
        res.end(reply.body);
        return;
      case 'json':
        return json(200, reply.body);
      case 'status':
        return json(reply.status, this.#errorBody(reply.status, body.model ?? ''));
      case 'ok':
        return json(200, this.#answerBody(input.map((text) => fakeVector(text)), body.model ?? ''));
      case 'dims':
        return json(200, this.#answerBody(input.map((text, i) => fakeVector(text, reply.dims[i] ?? DIM)), body.model ?? ''));
    }
  }

  #answerBody(vectors: number[][], model: string): unknown {
    if (this.kind === 'ollama') return { model, embeddings: vectors, total_duration: 14_143_917, load_duration: 1_019_500, prompt_eval_count: 8 };
    // OpenAI documents `index`; answers are not promised in input order, so these come reversed.
    const data = vectors.map((embedding, index) => ({ object: 'embedding', index, embedding })).reverse();
    return { object: 'list', data, model, usage: { prompt_tokens: 8, total_tokens: 8 } };
  }

  #errorBody(status: number, model: string): unknown {
    if (this.kind === 'ollama') {
      return { error: status === 404 ? `model "${model}" not found, try pulling it first` : 'llama runner process has terminated: exit status 2' };
    }
    return status === 404
      ? { error: { message: `The model \`${model}\` does not exist or you do not have access to it.`, type: 'invalid_request_error', param: null, code: 'model_not_found' } }
      : { error: { message: 'The server had an error while processing your request. Sorry about that!', type: 'server_error', param: null, code: null } };
  }
}

function configFor(url: string, over: Partial<EmbedderConfig> = {}): EmbedderConfig {
  return { ollamaUrl: url, openaiBaseUrl: url, env: { OPENAI_API_KEY: 'sk-test-secret-1234' }, upstreamHealthIntervalMs: 0, embedTimeoutMs: 5000, ...over };
}

async function expectFailure(t: Test, p: Promise<unknown>, name: string, message: RegExp): Promise<void> {
  const err = await rejection(p);
  t.ok(err instanceof NpcdError, 'an NpcdError');
  t.equal((err as NpcdError).code, 'ERR_EMBEDDING_FAILED');
  t.match((err as Error).message, `embedder ${name}: `, 'names the embedder');
  t.match((err as Error).message, message);
  t.notMatch((err as Error).message, /sk-test-secret/, 'never shows the API key');
}

for (const kind of ['ollama', 'openai'] as const) {
  t.test(`${kind}:MODEL`, async (t) => {
    const api = await FakeEmbeddingApi.start(kind);
    const embedders: Embedder[] = [];
    const make = (options = '', config: Partial<EmbedderConfig> = {}): Embedder => {
      const e = createEmbedder(`${kind}:${MODEL}${options}`, configFor(api.url, config));
      embedders.push(e);
      return e;
    };
    t.teardown(async () => {
      await Promise.all(embedders.map((e) => e.close()));
      await api.close();
    });
    const name = `${kind}:${MODEL}`;
    const embedder = make();

    t.test('init asks for the dimension; several texts come back in order, unit length', async (t) => {
      t.equal(embedder.dim, 0);
      await embedder.init();
      t.equal(embedder.dim, DIM);
      t.equal(embedder.name, name);
      t.same(api.last.body.input, [PROBE_TEXT], 'one probe text');

      const texts = ['The blacksmith forged a blade.', '', 'Who made the sword?', '  \n', 'Eldoria'];
      const vectors = await embedder.embed(texts);
      t.equal(vectors.length, texts.length);
      const request = api.last;
      t.equal(request.path, kind === 'ollama' ? '/api/embed' : '/v1/embeddings');
      t.equal(request.body.model, MODEL);
      t.same(request.body.input, ['The blacksmith forged a blade.', 'Who made the sword?', 'Eldoria'], 'blank texts are not sent');
      t.equal(request.headers['content-type'], 'application/json');
      if (kind === 'openai') {
        t.equal(request.body.encoding_format, 'float');
        t.equal(request.headers.authorization, 'Bearer sk-test-secret-1234', 'the chat provider\'s key variable');
      } else t.equal(request.headers.authorization, undefined, 'a local Ollama gets no key');
      texts.forEach((text, i) => {
        const v = vectors[i]!;
        t.equal(v.length, DIM);
        if (text.trim() === '') t.ok(v.every((x) => x === 0), `blank text ${i}: the zero vector`);
        else {
          t.ok(Math.abs(norm(v) - 1) < 1e-6, `text ${i}: unit length`);
          unit(fakeVector(text)).forEach((x, j) => t.ok(Math.abs(v[j]! - x) < 1e-6, `text ${i} component ${j}`));
        }
      });
      t.same(await embedder.embed(['', ' ']), [new Float32Array(DIM), new Float32Array(DIM)], 'only blank texts: no request');
      t.equal(api.requests.length, 2);
    });

    t.test('more texts than a batch go in several requests, in order', async (t) => {
      const batched = make('?batch=2');
      await batched.init();
      const before = api.requests.length;
      const texts = ['one', 'two', 'three', 'four', 'five'];
      const vectors = await batched.embed(texts);
      t.same(api.requests.slice(before).map((r) => r.body.input), [['one', 'two'], ['three', 'four'], ['five']]);
      texts.forEach((text, i) => t.ok(Math.abs(vectors[i]![0]! - unit(fakeVector(text))[0]!) < 1e-6, `vector ${i} belongs to ${text}`));
    });

    t.test('an error status names the status and the API\'s message', async (t) => {
      api.script({ type: 'status', status: 500 });
      await expectFailure(t, embedder.embed(['hello']), name, kind === 'ollama' ? /answered 500: llama runner process has terminated/ : /answered 500: server_error: The server had an error/);
      api.script({ type: 'status', status: 404 });
      await expectFailure(t, embedder.embed(['hello']), name, kind === 'ollama' ? /answered 404: model "fake-embed" not found, try pulling it first/ : /answered 404: model_not_found: The model `fake-embed` does not exist/);
      api.script({ type: 'status', status: 404 });
      const fresh = make();
      await expectFailure(t, fresh.init(), name, /answered 404/);
      t.equal(fresh.dim, 0, 'an unknown model leaves the embedder without a dimension');
    });

    t.test('an answer that is not the API\'s format is refused', async (t) => {
      api.script({ type: 'raw', body: '{"embeddings": [[0.1, 0.2' });
      await expectFailure(t, embedder.embed(['a', 'b']), name, /answered malformed JSON: \{"embeddings": \[\[0\.1, 0\.2/);
      api.script({ type: 'raw', body: '' });
      await expectFailure(t, embedder.embed(['a']), name, /answered malformed JSON: an empty body/);
      api.script({ type: 'raw', body: '<html><body>Bad gateway</body></html>', contentType: 'text/html' });
      await expectFailure(t, embedder.embed(['a']), name, /answered with an HTML page \(text\/html\), not JSON: check the base URL/);
      api.script({ type: 'json', body: [1, 2, 3] });
      await expectFailure(t, embedder.embed(['a']), name, /answered JSON that is not an object/);
      api.script({ type: 'json', body: { error: 'input is too long' } });
      await expectFailure(t, embedder.embed(['a']), name, /answered with an error: input is too long/);
      if (kind === 'ollama') {
        api.script({ type: 'json', body: { embedding: fakeVector('a') } });
        await expectFailure(t, embedder.embed(['a']), name, /without an "embeddings" array \(only "embedding": \/api\/embed needs Ollama 0\.3\.4 or later\)/);
      } else {
        api.script({ type: 'json', body: { data: [{ index: 0, embedding: fakeVector('a') }, { index: 0, embedding: fakeVector('b') }] } });
        await expectFailure(t, embedder.embed(['a', 'b']), name, /an item with index 0; expected each of 0 to 1 once/);
        api.script({ type: 'json', body: { data: [{ index: 0, embedding: 'AAAAAA==' }] } });
        await expectFailure(t, embedder.embed(['a']), name, /base64/);
        api.script({ type: 'json', body: { object: 'list' } });
        await expectFailure(t, embedder.embed(['a']), name, /without a "data" array/);
      }
    });

    t.test('the wrong number of vectors, or of dimensions, is refused', async (t) => {
      const two = kind === 'ollama' ? { embeddings: [fakeVector('a'), fakeVector('b')] } : { data: [0, 1].map((index) => ({ index, embedding: fakeVector('x') })) };
      api.script({ type: 'json', body: two });
      await expectFailure(t, embedder.embed(['a', 'b', 'c']), name, /returned 2 embeddings for 3 inputs/);
      api.script({ type: 'dims', dims: [DIM, 4, DIM] });
      await expectFailure(t, embedder.embed(['a', 'b', 'c']), name, /vector 1 has 4 dimensions, expected 8/);
      api.script({ type: 'dims', dims: [16] });
      await expectFailure(t, embedder.embed(['a']), name, /the vector has 16 dimensions, expected 8/);
      const withNull = fakeVector('a') as unknown[];
      withNull[2] = null;
      api.script({ type: 'json', body: kind === 'ollama' ? { embeddings: [withNull] } : { data: [{ index: 0, embedding: withNull }] } });
      await expectFailure(t, embedder.embed(['a']), name, /the vector holds null at position 2, not a finite number/);
      t.same((await embedder.embed(['still works']))[0]!.length, DIM, 'the embedder still works');
    });

    t.test('a slow answer is cut at the time limit; a caller abort is not an embedding failure', async (t) => {
      const quick = make('?timeout=200ms');
      await quick.init();
      api.script({ type: 'hang' });
      const started = performance.now();
      await expectFailure(t, quick.embed(['slow']), name, /did not answer within 200 ms/);
      const elapsed = performance.now() - started;
      t.ok(elapsed >= 150 && elapsed < 2000, `gave up after ${elapsed.toFixed(0)} ms`);
      t.equal((await quick.embed(['next']))[0]!.length, DIM, 'the next request works (the connection slot was freed)');

      api.script({ type: 'hang' });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 50);
      const err = await rejection(embedder.embed(['cancelled'], controller.signal));
      t.equal((err as Error).name, 'AbortError', 'the caller\'s abort reason');
      const aborted = new AbortController();
      aborted.abort();
      t.equal(((await rejection(embedder.embed(['x'], aborted.signal))) as Error).name, 'AbortError', 'an already aborted signal');
    });

    t.test('connection refused, then out of rotation', async (t) => {
      const closed = await closedPortUrl();
      const refused = createEmbedder(`${kind}:${MODEL}`, configFor(kind === 'openai' ? `${closed}/v1` : closed));
      embedders.push(refused);
      await expectFailure(t, refused.init(), name, /connection refused/);

      const watched = createEmbedder(`${kind}:${MODEL}?url=${encodeURIComponent(closed)}`, configFor(api.url, { upstreamHealthIntervalMs: 60_000 }));
      embedders.push(watched);
      await expectFailure(t, watched.init(), name, /connection refused/);
      await expectFailure(t, watched.init(), name, /connection refused/);
      const started = performance.now();
      await expectFailure(t, watched.init(), name, /out of rotation until a health check succeeds \(.*connection refused\)/);
      t.ok(performance.now() - started < 100, 'fails fast while out of rotation');
    });
  });
}

// ---- llama:PATH.gguf ----------------------------------------------------------

const llamaInstalled = await import('node-llama-cpp').then(
  () => true,
  (err: NodeJS.ErrnoException) => {
    if (err.code === 'ERR_MODULE_NOT_FOUND') return false;
    throw err;
  },
);

t.test('llama:PATH.gguf on a tiny GGUF model', { skip: llamaInstalled ? false : 'node-llama-cpp is not installed (an optional dependency)' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-embed-llama-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelPath = join(dir, 'tiny.gguf');
  writeTinyGguf(modelPath);

  const embedder = createEmbedder(`llama:${modelPath}?context=64`);
  t.teardown(() => embedder.close());
  await embedder.init();
  t.equal(embedder.name, 'llama:tiny.gguf');
  t.equal(embedder.dim, 64, 'the model\'s embedding size');

  const texts = ['The blacksmith forged a blade for the princess.', '', 'A dragon burned the village.', 'The blacksmith forged a blade for the princess.'];
  const vectors = await embedder.embed(texts);
  t.equal(vectors.length, 4);
  t.ok(Math.abs(norm(vectors[0]!) - 1) < 1e-5, 'unit length');
  t.ok(vectors[1]!.every((x) => x === 0), 'a blank text: the zero vector');
  t.same(vectors[3], vectors[0], 'the same text gives the same vector');
  t.notSame(vectors[2], vectors[0], 'another text another vector');
  const long = await embedder.embed(['the harbor bells answer one by one tonight '.repeat(50)]);
  t.ok(Math.abs(norm(long[0]!) - 1) < 1e-5, 'a text longer than the context is cut, not refused');

  const missing = join(dir, 'missing.gguf');
  const err = await rejection(createEmbedder(`llama:${missing}`).init());
  t.equal((err as NpcdError).code, 'ERR_CONFIG_INVALID');
  t.match((err as Error).message, missing);
});

t.test('llama:PATH.gguf without node-llama-cpp is a configuration error that says how to install it', { skip: llamaInstalled ? false : 'node-llama-cpp is not installed' }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'npcd-embed-llama-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const modelPath = join(dir, 'tiny.gguf');
  writeTinyGguf(modelPath);
  const providers = await t.mockImport<typeof import('../../src/providers/llama.js')>('../../src/providers/llama.js', {
    'node-llama-cpp': Object.defineProperty({}, 'readGgufFileInfo', {
      enumerable: true,
      get() {
        throw new Error("Cannot find package 'node-llama-cpp'");
      },
    }),
  });
  const { LlamaEmbedder } = await t.mockImport<typeof import('../../src/memory/embed/llama.js')>('../../src/memory/embed/llama.js', {
    '../../src/providers/llama.js': providers,
  });
  const err = await rejection(new LlamaEmbedder({ modelPath, threads: 1, contextSize: 64 }).init());
  t.equal((err as NpcdError).code, 'ERR_CONFIG_INVALID');
  t.match((err as Error).message, /the llama embedder needs node-llama-cpp .*npm install node-llama-cpp/);
});
