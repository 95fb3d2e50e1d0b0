// Command-line options of the bench scripts: node:util's parseArgs (strict),
// plus -h/--help, which prints the script's usage, and a bad option, which
// is said in one line with the usage instead of a stack trace.
import { parseArgs } from 'node:util';

/** The parsed option values; exits 0 after printing `usage` for --help, 2 for a bad option. */
export function benchArgs(options, usage) {
  let values;
  try {
    ({ values } = parseArgs({ options: { ...options, help: { type: 'boolean', short: 'h', default: false } }, strict: true }));
  } catch (err) {
    process.stderr.write(`${err.message}\n\n${usage.trimEnd()}\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`${usage.trimEnd()}\n`);
    process.exit(0);
  }
  return values;
}
