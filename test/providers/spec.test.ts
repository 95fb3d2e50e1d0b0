import t from 'tap';
import { loadServeConfig } from '../../src/config/serve.js';
import { normalizeBaseUrl, normalizeOllamaUrl, parseModelSpec } from '../../src/providers/spec.js';

t.test('one provider per kind, with the target kept whole', async (t) => {
  t.same(parseModelSpec('script'), [{ kind: 'script', target: '', options: {}, text: 'script' }]);
  t.same(parseModelSpec('ollama:llama3:8b')[0], { kind: 'ollama', target: 'llama3:8b', options: {}, text: 'ollama:llama3:8b' });
  t.equal(parseModelSpec('openai:gpt-4o-mini')[0]!.target, 'gpt-4o-mini');
  t.equal(parseModelSpec('dashscope:qwen-plus')[0]!.kind, 'dashscope');
  t.equal(parseModelSpec('llama:/models/tiny.gguf')[0]!.target, '/models/tiny.gguf');
});

t.test('a comma list is a chain, in order, and options are per provider', async (t) => {
  const chain = parseModelSpec('openai:local?url=http://127.0.0.1:8000/v1&ttft=5s&retries=0, openai:gpt-4o-mini?key_env=HOSTED_KEY&connections=50 ,script');
  t.same(chain.map((s) => s.kind), ['openai', 'openai', 'script']);
  t.same(chain[0]!.options, { url: 'http://127.0.0.1:8000/v1', ttftTimeoutMs: 5000, retries: 0 });
  t.same(chain[1]!.options, { keyEnv: 'HOSTED_KEY', connections: 50 });
  t.same(parseModelSpec('llama:/m/a.gguf?threads=1&context=2048&sequences=3')[0]!.options, { threads: 1, context: 2048, sequences: 3 });
  t.same(parseModelSpec('ollama:llama3:8b?keep_alive=30m&ttft=20s')[0]!.options, { keepAlive: '30m', ttftTimeoutMs: 20_000 });
  t.same(parseModelSpec('ollama:llama3?keep_alive=-1')[0]!.options, { keepAlive: '-1' });
});

t.test('bad specs name the problem', async (t) => {
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['gpt4', /unknown provider "gpt4"/],
    ['openai', /name the model/],
    ['ollama:', /name the model/],
    ['llama:/models/x.bin', /GGUF/],
    ['script:foo', /takes no model name/],
    ['openai:x?tfft=1s', /unknown option "tfft"/],
    ['openai:x?retries=99', /between 0 and 10/],
    ['openai:x?connections=1.5', /integer/],
    ['openai:x?ttft=soon', /duration/],
    ['openai:x?url=ftp://h/v1', /http or https/],
    ['openai:x?url=http://u:p@h/v1', /credentials/],
    ['openai:x?key_env=1BAD', /environment variable/],
    ['llama:/m/a.gguf?url=http://h', /unknown option "url"/],
    ['openai:x?keep_alive=5m', /unknown option "keep_alive"/],
    ['ollama:x?keep_alive=forever', /keep_alive must be a duration/],
  ];
  for (const [spec, message] of bad) {
    t.throws(() => parseModelSpec(spec), { code: 'ERR_CONFIG_INVALID', message }, spec);
  }
});

t.test('a url option with credentials is refused without repeating them', async (t) => {
  let message = '';
  try {
    parseModelSpec('openai:m?url=https://user:sk-PASS@proxy.example/v1');
  } catch (err) {
    message = (err as Error).message;
  }
  t.match(message, /must not carry credentials/);
  t.match(message, /https:\/\/\*\*\*@proxy\.example/, 'the URL is named with its credentials masked');
  t.notMatch(message, /sk-PASS|user:/);
});

t.test('base URLs: bare host:port gets http, trailing slashes go', async (t) => {
  t.equal(normalizeBaseUrl('127.0.0.1:11434', 'x'), 'http://127.0.0.1:11434');
  t.equal(normalizeBaseUrl('https://api.openai.com/v1/', 'x'), 'https://api.openai.com/v1');
  t.throws(() => normalizeBaseUrl('http://h/v1?a=1', 'x'), { code: 'ERR_CONFIG_INVALID' });
});

t.test("OLLAMA_HOST is read as Ollama's own client reads it", async (t) => {
  const cases: [string, string][] = [
    // The value Ollama's server is often told to listen on: reached on loopback, at Ollama's port.
    ['0.0.0.0', 'http://127.0.0.1:11434'],
    ['0.0.0.0:11434', 'http://127.0.0.1:11434'],
    ['127.0.0.1', 'http://127.0.0.1:11434'],
    [':11500', 'http://127.0.0.1:11500'],
    ['ollama.lan', 'http://ollama.lan:11434'],
    ['ollama.lan:8080', 'http://ollama.lan:8080'],
    ['ollama.lan/', 'http://ollama.lan:11434'],
    ['[::]', 'http://[::1]:11434'],
    ['[fd00::5]:9000', 'http://[fd00::5]:9000'],
    // A URL keeps its scheme's port.
    ['http://ollama.lan', 'http://ollama.lan'],
    ['https://ollama.example.com/', 'https://ollama.example.com'],
    ['http://0.0.0.0:11434', 'http://127.0.0.1:11434'],
  ];
  for (const [raw, url] of cases) t.equal(normalizeOllamaUrl(raw, 'OLLAMA_HOST'), url, raw);
  t.equal(loadServeConfig([], { OLLAMA_HOST: '0.0.0.0' }).config.ollamaUrl, 'http://127.0.0.1:11434');
  t.throws(() => normalizeOllamaUrl('ftp://h', 'OLLAMA_HOST'), { code: 'ERR_CONFIG_INVALID' });
});

t.test('serve config validates --model and the base URLs at start', async (t) => {
  t.throws(() => loadServeConfig(['--model', 'gpt4']), { code: 'ERR_CONFIG_INVALID', message: /unknown provider/ });
  const { config } = loadServeConfig(['--model', 'ollama:llama3,script'], { OLLAMA_HOST: '10.1.2.3:11434' });
  t.equal(config.ollamaUrl, 'http://10.1.2.3:11434');
  t.equal(config.upstreamConnections, 200);
  t.equal(config.upstreamIdleTimeoutMs, 300_000);
  t.equal(config.upstreamAcquireTimeoutMs, 3_000);
  t.throws(() => loadServeConfig([], { OPENAI_BASE_URL: 'not a url at all' }), { code: 'ERR_CONFIG_INVALID', message: /--openai-base-url/ });
});
