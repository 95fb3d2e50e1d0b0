/**
 * A small typed flag parser shared by every `npcd` subcommand. One table per
 * command describes each option once: its flag, environment variable, type,
 * default and help text. Values come from (highest first) command-line flags,
 * environment variables, an optional config file, then defaults; each is
 * checked once, and the message names the flag or variable that was wrong.
 */
import { NpcdError } from '../errors.js';

export type FlagType = 'string' | 'int' | 'float' | 'duration' | 'bytes' | 'bool' | 'list';

export interface FlagSpec {
  readonly flag: string; // without leading dashes, kebab-case
  readonly env?: string;
  readonly type: FlagType;
  readonly default: string | number | boolean | readonly string[] | undefined;
  readonly help: string;
  readonly metavar?: string;
  readonly min?: number;
  readonly max?: number;
  /** Allowed values for a string flag. */
  readonly choices?: readonly string[];
}

export type FlagTable<K extends string> = Readonly<Record<K, FlagSpec>>;

type Value = string | number | boolean | string[] | undefined;

const DURATION_UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
const BYTE_UNITS: Record<string, number> = {
  '': 1, b: 1, k: 1000, kb: 1000, kib: 1024, m: 1e6, mb: 1e6, mib: 1024 ** 2, g: 1e9, gb: 1e9, gib: 1024 ** 3,
};

function fail(source: string, message: string): never {
  throw new NpcdError('ERR_CONFIG_INVALID', `${source} ${message}`);
}

/** Parses "1500", "1500ms", "30s", "2m", "1h" (bare numbers are milliseconds). */
export function parseDuration(text: string, source: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (!m) fail(source, `must be a duration such as 500ms, 30s, 5m or 1h (got ${JSON.stringify(text)})`);
  const unit = (m[2] ?? 'ms').toLowerCase();
  return Math.round(Number(m[1]) * (DURATION_UNITS[unit] ?? 1));
}

/** Parses "65536", "64KiB", "1MiB", "16kb" (bare numbers are bytes). */
export function parseBytes(text: string, source: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmg]i?b?|b)?\s*$/i.exec(text);
  if (!m) fail(source, `must be a size such as 16384, 16KiB or 1MiB (got ${JSON.stringify(text)})`);
  const mult = BYTE_UNITS[(m[2] ?? '').toLowerCase()];
  if (mult === undefined) fail(source, `has an unknown size unit in ${JSON.stringify(text)}`);
  return Math.round(Number(m[1]) * mult);
}

function convert(spec: FlagSpec, raw: unknown, source: string): Value {
  if (raw === undefined || raw === null) return undefined;
  switch (spec.type) {
    case 'bool': {
      if (typeof raw === 'boolean') return raw;
      const s = String(raw).toLowerCase();
      if (['1', 'true', 'yes', 'on'].includes(s)) return true;
      if (['0', 'false', 'no', 'off'].includes(s)) return false;
      return fail(source, `must be true or false (got ${JSON.stringify(raw)})`);
    }
    case 'list': {
      if (Array.isArray(raw)) return raw.map(String).map((s) => s.trim()).filter(Boolean);
      return String(raw).split(',').map((s) => s.trim()).filter(Boolean);
    }
    case 'string': {
      if (typeof raw !== 'string' && typeof raw !== 'number') return fail(source, 'must be a string');
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s)) {
        return fail(source, `must be one of ${spec.choices.join(', ')} (got ${JSON.stringify(s)})`);
      }
      return s;
    }
    case 'float': {
      const n = typeof raw === 'number' ? raw : typeof raw === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)\s*$/.test(raw) ? Number(raw) : NaN;
      if (!Number.isFinite(n)) return fail(source, `must be a number (got ${JSON.stringify(raw)})`);
      if (spec.min !== undefined && n < spec.min) fail(source, `must be >= ${spec.min} (got ${n})`);
      if (spec.max !== undefined && n > spec.max) fail(source, `must be <= ${spec.max} (got ${n})`);
      return n;
    }
    case 'int':
    case 'duration':
    case 'bytes': {
      let n: number;
      if (typeof raw === 'number') n = raw;
      else if (typeof raw !== 'string') return fail(source, 'must be a number');
      else if (spec.type === 'duration') n = parseDuration(raw, source);
      else if (spec.type === 'bytes') n = parseBytes(raw, source);
      else {
        if (!/^\s*-?\d+\s*$/.test(raw)) fail(source, `must be an integer (got ${JSON.stringify(raw)})`);
        n = Number(raw);
      }
      if (!Number.isSafeInteger(n)) fail(source, `must be an integer (got ${JSON.stringify(raw)})`);
      // Durations are said in milliseconds, and a bare number is milliseconds: say so.
      const unit = spec.type === 'duration' ? ' ms' : '';
      const bare = spec.type === 'duration' && typeof raw === 'string' && /^\s*\d+(\.\d+)?\s*$/.test(raw) ? '; a number without a unit is milliseconds' : '';
      if (spec.min !== undefined && n < spec.min) fail(source, `must be >= ${spec.min}${unit} (got ${n}${unit}${bare})`);
      if (spec.max !== undefined && n > spec.max) fail(source, `must be <= ${spec.max}${unit} (got ${n}${unit}${bare})`);
      return n;
    }
  }
}

export interface ParsedArgs<K extends string> {
  values: Record<K, Value>;
  /** Arguments that are not flags, in order. */
  positionals: string[];
  help: boolean;
}

/**
 * Parses argv against the table. `fileValues` are the contents of a config file
 * (keys are flag names); `env` is usually process.env.
 */
export function parseFlags<K extends string>(
  table: FlagTable<K>,
  argv: readonly string[],
  env: Readonly<Record<string, string | undefined>>,
  fileValues: Readonly<Record<string, unknown>> = {},
): ParsedArgs<K> {
  const byFlag = new Map<string, K>();
  for (const key of Object.keys(table) as K[]) byFlag.set(table[key].flag, key);

  const fromArgv = new Map<K, unknown>();
  const positionals: string[] = [];
  let help = false;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (arg === '-h' || arg === '--help') {
      help = true;
      continue;
    }
    if (!arg.startsWith('--')) {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
    let inline: string | undefined = eq === -1 ? undefined : arg.slice(eq + 1);
    let key = byFlag.get(name);
    if (key === undefined && name.startsWith('no-')) {
      const positive = byFlag.get(name.slice(3));
      if (positive !== undefined && table[positive].type === 'bool' && inline === undefined) {
        key = positive;
        name = name.slice(3);
        inline = 'false';
      }
    }
    if (key === undefined) fail(`--${name}`, 'is not a known option (see --help)');
    const spec = table[key];
    if (spec.type === 'bool' && inline === undefined) {
      fromArgv.set(key, true);
      continue;
    }
    if (inline === undefined) {
      const next = argv[i + 1];
      if (next === undefined || (next.startsWith('--') && next.length > 2)) fail(`--${name}`, 'needs a value');
      inline = next;
      i++;
    }
    fromArgv.set(key, inline);
  }

  for (const k of Object.keys(fileValues)) {
    if (!byFlag.has(k)) fail(`config file key ${JSON.stringify(k)}`, 'is not a known option');
  }

  const values = {} as Record<K, Value>;
  for (const key of Object.keys(table) as K[]) {
    const spec = table[key];
    let v: Value;
    if (fromArgv.has(key)) v = convert(spec, fromArgv.get(key), `--${spec.flag}`);
    else if (spec.env !== undefined && env[spec.env] !== undefined && env[spec.env] !== '') {
      v = convert(spec, env[spec.env], spec.env);
    } else if (Object.hasOwn(fileValues, spec.flag)) {
      v = convert(spec, fileValues[spec.flag], `config file key ${JSON.stringify(spec.flag)}`);
    } else {
      v = spec.default === undefined ? undefined : convert(spec, spec.default, `default of --${spec.flag}`);
    }
    values[key] = v;
  }
  return { values, positionals, help };
}

function formatDefault(spec: FlagSpec): string {
  const d = spec.default;
  if (d === undefined || d === '' || (Array.isArray(d) && d.length === 0)) return '';
  if (Array.isArray(d)) return ` (default: ${d.join(',')})`;
  return ` (default: ${String(d)})`;
}

/** Renders the options part of `--help` from the table. */
export function formatHelp<K extends string>(table: FlagTable<K>): string {
  const rows = (Object.keys(table) as K[]).map((key) => {
    const spec = table[key];
    const meta = spec.type === 'bool' ? '' : ` ${spec.metavar ?? spec.type.toUpperCase()}`;
    const left = `  --${spec.flag}${meta}`;
    const env = spec.env ? ` [env ${spec.env}]` : '';
    const choices = spec.choices ? ` One of: ${spec.choices.join(', ')}.` : '';
    return { left, right: `${spec.help}${choices}${formatDefault(spec)}${env}` };
  });
  const width = Math.min(34, Math.max(...rows.map((r) => r.left.length)) + 2);
  return rows
    .map(({ left, right }) =>
      left.length + 1 >= width ? `${left}\n${' '.repeat(width)}${right}` : `${left.padEnd(width)}${right}`,
    )
    .join('\n');
}
