import t from 'tap';
import { type FlagTable, formatHelp, parseBytes, parseDuration, parseFlags } from '../../src/config/flags.js';
import { SERVE_FLAGS } from '../../src/config/serve.js';
import { NpcdError } from '../../src/errors.js';

/** The ERR_CONFIG_INVALID message `f` throws. */
function configError(f: () => unknown): string {
  try {
    f();
  } catch (err) {
    if (err instanceof NpcdError && err.code === 'ERR_CONFIG_INVALID') return err.message;
    throw err;
  }
  throw new Error('did not throw');
}

t.test('parseDuration', async (t) => {
  const ok: [string, number][] = [
    ['1500', 1500], ['0', 0], ['1500ms', 1500], ['30s', 30_000], ['2m', 120_000], ['1h', 3_600_000],
    ['1.5s', 1500], ['0.5m', 30_000], ['1.25h', 4_500_000], [' 10 s ', 10_000], ['1S', 1000], ['1H', 3_600_000], ['5MS', 5],
    ['1.5', 2], ['0.0004s', 0], ['1.2345ms', 1],
  ];
  for (const [text, ms] of ok) t.equal(parseDuration(text, '--x'), ms, JSON.stringify(text));
  for (const text of ['', 's', '1d', '-1s', '1.s', '.5s', '1e3', '1 2s', '1sec', '10 m s', 'ms10']) {
    t.equal(configError(() => parseDuration(text, '--idle-timeout')), `--idle-timeout must be a duration such as 500ms, 30s, 5m or 1h (got ${JSON.stringify(text)})`);
  }
});

t.test('parseBytes', async (t) => {
  const ok: [string, number][] = [
    ['65536', 65536], ['0', 0], ['10b', 10], ['10B', 10], ['16k', 16_000], ['16kb', 16_000], ['16KB', 16_000], ['64KiB', 65_536], ['64kib', 65_536],
    ['1MiB', 1_048_576], ['1m', 1_000_000], ['1MB', 1_000_000], ['1g', 1e9], ['1gb', 1e9], ['1GiB', 1_073_741_824], ['1.5KiB', 1536], [' 1 kib ', 1024], ['0.3', 0],
  ];
  for (const [text, n] of ok) t.equal(parseBytes(text, '--y'), n, JSON.stringify(text));
  for (const text of ['', 'KiB', '1TB', '-1', '1kibb', '1ib', '1 000', '1e3', 'lots']) {
    t.equal(configError(() => parseBytes(text, 'NPCD_MAX_BODY_BYTES')), `NPCD_MAX_BODY_BYTES must be a size such as 16384, 16KiB or 1MiB (got ${JSON.stringify(text)})`);
  }
});

const TABLE = {
  port: { flag: 'port', env: 'T_PORT', type: 'int', default: 8080, min: 0, max: 65535, help: 'Port to listen on.', metavar: 'PORT' },
  verbose: { flag: 'verbose', env: 'T_VERBOSE', type: 'bool', default: false, help: 'Talk more.' },
  level: { flag: 'level', env: 'T_LEVEL', type: 'string', default: 'info', choices: ['info', 'debug'], help: 'Log level.' },
  keys: { flag: 'keys', env: 'T_KEYS', type: 'list', default: [], help: 'API keys.' },
  timeout: { flag: 'timeout', type: 'duration', default: '5s', min: 100, help: 'Timeout.' },
  size: { flag: 'max-size', type: 'bytes', default: '1KiB', help: 'Size.', metavar: 'SIZE' },
  name: { flag: 'name', type: 'string', default: undefined, help: 'Name.' },
} as const satisfies FlagTable<string>;
type Key = keyof typeof TABLE;
const DEFAULTS = { port: 8080, verbose: false, level: 'info', keys: [], timeout: 5000, size: 1024, name: undefined };

const parse = (argv: string[], env: Record<string, string | undefined> = {}, file: Record<string, unknown> = {}) =>
  parseFlags<Key>(TABLE, argv, env, file);

t.test('defaults', async (t) => {
  t.same(parse([]), { values: DEFAULTS, positionals: [], help: false });
  t.ok(Object.hasOwn(parse([]).values, 'name') && parse([]).values.name === undefined, 'a flag without default is undefined');
});

t.test('--flag=value and --flag value', async (t) => {
  const r = parse(['--port=1', '--verbose', '--level', 'debug', '--keys', ' a, b ,,c', 'pos', '--timeout=2m', '--max-size', '2KiB', '--name', 'x=y']);
  t.same(r.values, { port: 1, verbose: true, level: 'debug', keys: ['a', 'b', 'c'], timeout: 120_000, size: 2048, name: 'x=y' });
  t.same(r.positionals, ['pos']);
  t.equal(parse(['--name=a=b']).values.name, 'a=b', 'only the first = splits');
  t.equal(parse(['--name=']).values.name, '', 'an empty inline value');
  t.equal(parse(['--name', '-']).values.name, '-', 'a lone dash is a value');
  t.equal(parse(['--port', '-5', '--port', '7']).values.port, 7, 'the last occurrence wins');
  t.same(parse(['a', '--', '--port', 'b']).positionals, ['a', '--port', 'b'], 'everything after -- is positional');
  t.equal(parse(['--', '--port=1']).values.port, 8080);
  t.same(parse(['-h']).help, true);
  t.same(parse(['x', '--help', '-v']), { values: DEFAULTS, positionals: ['x', '-v'], help: true }, 'single-dash words are positionals');
});

t.test('booleans', async (t) => {
  t.equal(parse(['--verbose']).values.verbose, true);
  t.equal(parse(['--no-verbose']).values.verbose, false);
  for (const v of ['1', 'true', 'yes', 'on', 'TRUE', 'Yes']) t.equal(parse([`--verbose=${v}`]).values.verbose, true, v);
  for (const v of ['0', 'false', 'no', 'off', 'OFF']) t.equal(parse([`--verbose=${v}`]).values.verbose, false, v);
  t.equal(parse(['--verbose', 'false']).values.verbose, true, 'a bool flag does not take the next argument');
  t.same(parse(['--verbose', 'false']).positionals, ['false']);
  t.equal(configError(() => parse(['--verbose=maybe'])), '--verbose must be true or false (got "maybe")');
  t.equal(configError(() => parse(['--no-port'])), '--no-port is not a known option (see --help)', '--no- only for booleans');
  t.equal(configError(() => parse(['--no-verbose=true'])), '--no-verbose is not a known option (see --help)', '--no-x takes no value');
  t.equal(parse([], { T_VERBOSE: 'on' }).values.verbose, true);
  t.equal(parse(['--no-verbose'], { T_VERBOSE: 'true' }).values.verbose, false, '--no-x beats the environment');
  t.equal(configError(() => parse([], { T_VERBOSE: 'perhaps' })), 'T_VERBOSE must be true or false (got "perhaps")');
  t.equal(parse([], {}, { verbose: true }).values.verbose, true);
  t.equal(parse([], {}, { verbose: 'yes' }).values.verbose, true);
});

t.test('precedence: argv > env > file > default', async (t) => {
  t.equal(parse(['--port', '3'], { T_PORT: '2' }, { port: 1 }).values.port, 3);
  t.equal(parse([], { T_PORT: '2' }, { port: 1 }).values.port, 2);
  t.equal(parse([], {}, { port: 1 }).values.port, 1);
  t.equal(parse([], {}, {}).values.port, 8080);
  t.equal(parse([], { T_PORT: '' }, { port: 1 }).values.port, 1, 'an empty variable is unset');
  t.equal(parse([], { T_PORT: undefined }).values.port, 8080);
  t.same(parse([], { T_KEYS: 'k1,k2' }, { keys: ['f1'] }).values.keys, ['k1', 'k2']);
  t.same(parse([], {}, { keys: ['a', ' b ', '', 3] }).values.keys, ['a', 'b', '3'], 'a list from a file');
  t.same(parse([], {}, { keys: 'x,y' }).values.keys, ['x', 'y'], 'or a comma string');
  t.equal(parse([], {}, { port: '9', timeout: 100 }).values.timeout, 100, 'numbers in a file are taken as is (ms)');
  t.equal(parse([], {}, { timeout: '1s' }).values.timeout, 1000);
  t.equal(parse(['--port', '200'], { T_PORT: 'not a number' }).values.port, 200, 'a bad value in a source that is not used does not matter…');
  t.equal(configError(() => parse([], { T_PORT: 'abc' })), 'T_PORT must be an integer (got "abc")', '…but every value used is checked');
  t.equal(parse(['--port', '1'], {}, { port: 'abc' }).values.port, 1, 'a bad file value is not used when argv wins');
});

t.test('unknown flags and missing values', async (t) => {
  t.equal(configError(() => parse(['--bogus'])), '--bogus is not a known option (see --help)');
  t.equal(configError(() => parse(['--bogus=1'])), '--bogus is not a known option (see --help)');
  t.equal(configError(() => parse(['--Port=1'])), '--Port is not a known option (see --help)', 'flags are case-sensitive');
  t.equal(configError(() => parse(['--constructor', '1'])), '--constructor is not a known option (see --help)');
  t.equal(configError(() => parse(['--port'])), '--port needs a value');
  t.equal(configError(() => parse(['--port', '--verbose'])), '--port needs a value', 'the next flag is not a value');
  t.equal(configError(() => parse(['--name'])), '--name needs a value');
  t.equal(configError(() => parse(['--port', '--'])), '--port must be an integer (got "--")', '"--" right after a flag is taken as its value');
});

t.test('int, min and max', async (t) => {
  t.equal(parse(['--port=0']).values.port, 0);
  t.equal(parse(['--port=65535']).values.port, 65535);
  t.equal(parse(['--port= 42 ']).values.port, 42);
  t.equal(configError(() => parse(['--port=65536'])), '--port must be <= 65535 (got 65536)');
  t.equal(configError(() => parse(['--port=-1'])), '--port must be >= 0 (got -1)');
  t.equal(configError(() => parse(['--port=1.5'])), '--port must be an integer (got "1.5")');
  t.equal(configError(() => parse(['--port=abc'])), '--port must be an integer (got "abc")');
  t.equal(configError(() => parse(['--port='])), '--port must be an integer (got "")');
  t.equal(configError(() => parse(['--port=99999999999999999999'])), '--port must be an integer (got "99999999999999999999")');
  t.equal(configError(() => parse(['--timeout=50ms'])), '--timeout must be >= 100 ms (got 50 ms)', 'min applies to durations');
  t.equal(configError(() => parse(['--timeout=50'])), '--timeout must be >= 100 ms (got 50 ms; a number without a unit is milliseconds)', 'a bare number is said to be milliseconds');
  t.equal(configError(() => parse([], {}, { port: 1.5 })), 'config file key "port" must be an integer (got 1.5)');
  t.equal(configError(() => parse([], {}, { port: true })), 'config file key "port" must be a number');
  t.equal(configError(() => parse([], {}, { port: 70000 })), 'config file key "port" must be <= 65535 (got 70000)');
});

t.test('strings and choices', async (t) => {
  t.equal(parse(['--level=debug']).values.level, 'debug');
  t.equal(configError(() => parse(['--level=warn'])), '--level must be one of info, debug (got "warn")');
  t.equal(configError(() => parse(['--level=INFO'])), '--level must be one of info, debug (got "INFO")', 'choices are exact');
  t.equal(configError(() => parse([], { T_LEVEL: 'warn' })), 'T_LEVEL must be one of info, debug (got "warn")');
  t.equal(configError(() => parse([], {}, { level: 'warn' })), 'config file key "level" must be one of info, debug (got "warn")');
  t.equal(configError(() => parse([], {}, { level: { a: 1 } })), 'config file key "level" must be a string');
  t.equal(parse([], {}, { name: 42 }).values.name, '42', 'a number is a string');
});

t.test('config file keys', async (t) => {
  t.equal(configError(() => parse([], {}, { bogus: 1 })), 'config file key "bogus" is not a known option');
  t.equal(configError(() => parse([], {}, { size: 1 })), 'config file key "size" is not a known option', 'file keys are flag names, not table keys');
  t.equal(parse([], {}, { 'max-size': '2KiB' }).values.size, 2048);
  t.equal(configError(() => parse([], {}, JSON.parse('{"__proto__": 1}') as Record<string, unknown>)), 'config file key "__proto__" is not a known option');
  t.equal(configError(() => parse([], {}, { constructor: 1 })), 'config file key "constructor" is not a known option');
  t.equal(configError(() => parse(['--port', '1'], {}, { bogus: 1 })), 'config file key "bogus" is not a known option', 'even when argv sets everything');
});

t.test('formatHelp lists every flag', async (t) => {
  const help = formatHelp(TABLE);
  t.equal(help, [
    '  --port PORT         Port to listen on. (default: 8080) [env T_PORT]',
    '  --verbose           Talk more. (default: false) [env T_VERBOSE]',
    '  --level STRING      Log level. One of: info, debug. (default: info) [env T_LEVEL]',
    '  --keys LIST         API keys. [env T_KEYS]',
    '  --timeout DURATION  Timeout. (default: 5s)',
    '  --max-size SIZE     Size. (default: 1KiB)',
    '  --name STRING       Name.',
  ].join('\n'));
  const serve = formatHelp(SERVE_FLAGS);
  for (const spec of Object.values(SERVE_FLAGS)) {
    t.match(serve, `  --${spec.flag}`, `--${spec.flag} is listed`);
    if (spec.env) t.match(serve, `[env ${spec.env}]`);
  }
  t.equal(serve.split('\n').filter((l) => l.startsWith('  --')).length, Object.keys(SERVE_FLAGS).length, 'one row per flag');
  t.match(serve, /--log-level LEVEL\s+Log level .* One of: trace, debug, info, warn, error, fatal, silent\. \(default: info\) \[env NPCD_LOG_LEVEL\]/);
  const wide = formatHelp({ x: { flag: 'a-very-long-flag-name-indeed', type: 'string', default: 'd', help: 'Help.', metavar: 'SOME-LONG-METAVAR' } });
  t.equal(wide, `  --a-very-long-flag-name-indeed SOME-LONG-METAVAR\n${' '.repeat(34)}Help. (default: d)`, 'long rows wrap the help onto the next line');
});
