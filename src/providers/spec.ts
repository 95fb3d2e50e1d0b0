/**
 * `--model` specs. One provider is `KIND[:TARGET][?OPTION=VALUE&...]`; a
 * comma list is a fallback chain, tried in order:
 *
 *   script                                   the embedded default (no LLM)
 *   mock                                     deterministic tokens
 *   ollama:llama3:8b                         Ollama's /api/chat (TARGET may hold colons)
 *   openai:gpt-4o-mini?url=http://10.0.0.5:8000/v1&ttft=5s
 *   dashscope:qwen-plus
 *   llama:/models/qwen2.5-0.5b.gguf?threads=1
 *
 * Options after `?` override the server-wide defaults for that provider
 * only, so two OpenAI-compatible upstreams (a local vLLM and a hosted API)
 * can sit in one chain with their own limits. Parsing does no I/O; it runs
 * when the configuration is validated.
 */
import { parseDuration } from '../config/flags.js';
import { NpcdError } from '../errors.js';

export type ProviderKind = 'script' | 'mock' | 'openai' | 'ollama' | 'dashscope' | 'llama';

export const REMOTE_KINDS = ['openai', 'ollama', 'dashscope'] as const;
export type RemoteKind = (typeof REMOTE_KINDS)[number];

export interface ProviderSpec {
  readonly kind: ProviderKind;
  /** Model name (remote), GGUF path (llama), empty for script/mock. */
  readonly target: string;
  /** Per-provider options, validated and converted (durations in ms). */
  readonly options: ProviderOptions;
  /** The spec as written, for messages. */
  readonly text: string;
}

export interface ProviderOptions {
  /** Base URL of the API (remote kinds). */
  readonly url?: string;
  /** Environment variable holding the API key, instead of the kind's default. */
  readonly keyEnv?: string;
  readonly connections?: number;
  readonly idleTimeoutMs?: number;
  readonly connectTimeoutMs?: number;
  readonly acquireTimeoutMs?: number;
  readonly healthIntervalMs?: number;
  readonly ttftTimeoutMs?: number;
  readonly totalTimeoutMs?: number;
  readonly retries?: number;
  /** ollama: how long the server keeps the model loaded after a request ("5m", "1h", "-1" forever). */
  readonly keepAlive?: string;
  /** llama: CPU threads, context size in tokens, turns generated at once. */
  readonly threads?: number;
  readonly context?: number;
  readonly sequences?: number;
}

/** How an option's value is read: a base URL, an environment variable name, an integer, a duration, Ollama's own duration, a file path. */
export type OptionKind = 'url' | 'env' | 'int' | 'duration' | 'ollama-duration' | 'path';

/** One `?name=value` option of a spec: the key it fills, how it is read, and its bounds (numbers). */
export interface OptionDef<K extends string = string> {
  readonly key: K;
  readonly kind: OptionKind;
  readonly min?: number;
  readonly max?: number;
}

const REMOTE_OPTIONS: Record<string, OptionDef<keyof ProviderOptions>> = {
  url: { key: 'url', kind: 'url' },
  key_env: { key: 'keyEnv', kind: 'env' },
  connections: { key: 'connections', kind: 'int', min: 1, max: 100_000 },
  idle: { key: 'idleTimeoutMs', kind: 'duration', min: 1000 },
  connect: { key: 'connectTimeoutMs', kind: 'duration', min: 1 },
  acquire: { key: 'acquireTimeoutMs', kind: 'duration', min: 1 },
  health: { key: 'healthIntervalMs', kind: 'duration', min: 0 },
  ttft: { key: 'ttftTimeoutMs', kind: 'duration', min: 1 },
  total: { key: 'totalTimeoutMs', kind: 'duration', min: 1 },
  retries: { key: 'retries', kind: 'int', min: 0, max: 10 },
};
const OLLAMA_OPTIONS: typeof REMOTE_OPTIONS = {
  ...REMOTE_OPTIONS,
  keep_alive: { key: 'keepAlive', kind: 'ollama-duration' },
};
const LLAMA_OPTIONS: typeof REMOTE_OPTIONS = {
  threads: { key: 'threads', kind: 'int', min: 1, max: 256 },
  context: { key: 'context', kind: 'int', min: 64, max: 1_048_576 },
  sequences: { key: 'sequences', kind: 'int', min: 1, max: 64 },
};

/** ERR_CONFIG_INVALID about one spec of `flag`: `--model "spec": message`. */
export function specError(flag: string, spec: string, message: string): NpcdError {
  return new NpcdError('ERR_CONFIG_INVALID', `${flag} ${JSON.stringify(spec)}: ${message}`);
}

function fail(spec: string, message: string): never {
  throw specError('--model', spec, message);
}

/** The parts of `KIND[:TARGET][?QUERY]`: the kind lowercased, the target (which may hold colons) trimmed. */
export function splitSpec(text: string): { kind: string; target: string; query: string } {
  const q = text.indexOf('?');
  const head = q >= 0 ? text.slice(0, q) : text;
  const query = q >= 0 ? text.slice(q + 1) : '';
  const colon = head.indexOf(':');
  const kind = (colon >= 0 ? head.slice(0, colon) : head).trim().toLowerCase();
  const target = colon >= 0 ? head.slice(colon + 1).trim() : '';
  return { kind, target, query };
}

function parseOne(text: string): ProviderSpec {
  const { kind, target, query } = splitSpec(text);
  switch (kind) {
    case 'script':
    case 'mock':
      if (target || query) fail(text, `"${kind}" takes no model name or options`);
      return { kind, target: '', options: {}, text };
    case 'openai':
    case 'ollama':
    case 'dashscope':
      if (!target) fail(text, `name the model: ${kind}:MODEL (e.g. ${kind === 'ollama' ? 'ollama:llama3:8b' : kind === 'openai' ? 'openai:gpt-4o-mini' : 'dashscope:qwen-plus'})`);
      return { kind, target, options: parseSpecOptions('--model', text, query, kind === 'ollama' ? OLLAMA_OPTIONS : REMOTE_OPTIONS) as ProviderOptions, text };
    case 'llama':
      if (!/\.gguf$/i.test(target)) fail(text, 'name a GGUF model file: llama:PATH.gguf');
      return { kind, target, options: parseSpecOptions('--model', text, query, LLAMA_OPTIONS) as ProviderOptions, text };
    default:
      return fail(text, `unknown provider "${kind}"; known: script, mock, ollama:MODEL, openai:MODEL, dashscope:MODEL, llama:PATH.gguf`);
  }
}

/**
 * Reads the `name=value&...` options of a spec of `flag` (--model, --embed)
 * by `table`: each value converted and bounds-checked, stored under its
 * key. ERR_CONFIG_INVALID naming the flag, the spec and the option.
 */
export function parseSpecOptions(flag: string, spec: string, query: string, table: Readonly<Record<string, OptionDef>>): Record<string, string | number> {
  const fail = (message: string): never => {
    throw specError(flag, spec, message);
  };
  const out: Record<string, string | number> = {};
  if (!query) return out;
  for (const [name, raw] of new URLSearchParams(query)) {
    const def = table[name];
    if (!def) return fail(`unknown option "${name}" (known: ${Object.keys(table).join(', ')})`);
    const source = `${flag} ${JSON.stringify(maskUrlCredentials(spec))} option ${name}`;
    let value: string | number;
    switch (def.kind) {
      case 'path':
        if (raw.trim() === '') fail(`option ${name} must name a file`);
        value = raw;
        break;
      case 'url':
        value = normalizeBaseUrl(raw, source);
        break;
      case 'env':
        if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(raw)) fail(`option ${name} must name an environment variable`);
        value = raw;
        break;
      case 'ollama-duration':
        // Ollama's own syntax: a Go duration ("10m", "1h30m") or seconds, negative for "keep loaded".
        if (!/^-?\d+(\.\d+)?(ns|us|µs|ms|s|m|h)?(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))*$/.test(raw)) fail(`option ${name} must be a duration such as 5m, 1h or -1 (got ${JSON.stringify(raw)})`);
        value = raw;
        break;
      case 'int':
        value = Number(raw);
        if (!Number.isInteger(value)) fail(`option ${name} must be an integer (got ${JSON.stringify(raw)})`);
        break;
      case 'duration':
        value = parseDuration(raw, source);
        break;
    }
    if (typeof value === 'number' && ((def.min !== undefined && value < def.min) || (def.max !== undefined && value > def.max))) {
      fail(`option ${name} must be between ${def.min ?? '-∞'} and ${def.max ?? '∞'} (got ${raw})`);
    }
    out[def.key] = value;
  }
  return out;
}

/** Parses a --model value into its providers (one, or a fallback chain). */
export function parseModelSpec(text: string): ProviderSpec[] {
  const parts = text.split(',').map((s) => s.trim()).filter(Boolean);
  if (parts.length === 0) throw new NpcdError('ERR_CONFIG_INVALID', '--model is empty');
  return parts.map(parseOne);
}

const SCHEME_RE = /^[a-z][a-z0-9+.-]*:\/\//i;

/** The default port of Ollama's API, which a scheme-less OLLAMA_HOST implies. */
export const OLLAMA_PORT = 11434;

/**
 * An http(s) base URL without a trailing slash. A bare "host:port" gets
 * http://.
 */
export function normalizeBaseUrl(raw: string, source: string): string {
  let text = raw.trim();
  if (!SCHEME_RE.test(text)) text = `http://${text}`;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new NpcdError('ERR_CONFIG_INVALID', `${source} is not a URL (got ${JSON.stringify(raw)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new NpcdError('ERR_CONFIG_INVALID', `${source} must be an http or https URL (got ${JSON.stringify(raw)})`);
  if (url.username || url.password) throw new NpcdError('ERR_CONFIG_INVALID', `${source} must not carry credentials; use the API key variable`);
  if (url.search || url.hash) throw new NpcdError('ERR_CONFIG_INVALID', `${source} must not have a query or fragment`);
  return url.href.replace(/\/+$/, '');
}

/**
 * Ollama's address as Ollama's own client reads OLLAMA_HOST: a URL, or
 * "host", "host:port" or ":port" without a scheme, where the port is 11434
 * unless given and an empty host is 127.0.0.1. A listen-on-all address
 * (0.0.0.0, [::]), which the same variable holds when it tells Ollama's
 * server where to listen, is reached on loopback.
 */
export function normalizeOllamaUrl(raw: string, source: string): string {
  let text = raw.trim();
  if (!SCHEME_RE.test(text)) {
    if (text.startsWith(':')) text = `127.0.0.1${text}`;
    // A host with no port: Ollama's port, not HTTP's 80.
    if (!/^(\[[^\]]*\]|[^:/[\]]*):\d+(\/|$)/.test(text)) text = text.replace(/^(\[[^\]]*\]|[^:/]*)/, `$1:${OLLAMA_PORT}`);
    text = `http://${text}`;
  }
  const url = new URL(normalizeBaseUrl(text, source));
  if (url.hostname === '0.0.0.0') url.hostname = '127.0.0.1';
  else if (url.hostname === '[::]') url.hostname = '[::1]';
  return url.href.replace(/\/+$/, '');
}

/** `text` with the user:password of any URL in it masked, for error messages. */
export function maskUrlCredentials(text: string): string {
  return text.replace(/(\/\/)[^/@?#&\s]*@/g, '$1***@');
}
