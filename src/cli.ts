#!/usr/bin/env node
/**
 * The npcd command line: `npcd serve` (the default) runs the server;
 * `npcd check`, `npcd sidecar` and `npcd tcp-advise` are the tools beside it.
 */
import { runCheck } from './characters/check.js';
import { loadServeConfig, serveHelp } from './config/serve.js';
import { NpcdError } from './errors.js';
import { createLogger } from './log.js';
import { startServer } from './server/app.js';
import { runTcpAdvise } from './sidecar/advise-cli.js';
import { runSidecar } from './sidecar/cli.js';
import { stopOnSignals } from './signals.js';
import { VERSION } from './version.js';


const USAGE = `Usage: npcd <command> [options]

Commands:
  serve      Run the server (default). See npcd serve --help.
  check      Validate character files: npcd check PATH... (see npcd check --help).
  sidecar    Run the eBPF sidecar (root): kernel TCP metrics for Prometheus (see npcd sidecar --help).
  tcp-advise Recommend TCP settings from observed RTTs and this host's sysctls (see npcd tcp-advise --help).
  help       Show this help.
  version    Print the version.
`;

async function serve(argv: string[]): Promise<number> {
  const { config, help } = loadServeConfig(argv);
  if (help) {
    process.stdout.write(serveHelp());
    return 0;
  }
  const logger = createLogger(config.logLevel);
  const server = await startServer(config, { logger });
  stopOnSignals(logger, () => server.shutdown(), { stopping: 'signal received: graceful shutdown', stopped: 'shutdown complete' });
  return -1; // keep running
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      return serve([]);
    case 'serve':
      return serve(rest);
    case 'check':
      return runCheck(rest, (s) => process.stdout.write(s));
    case 'sidecar':
      return runSidecar(rest);
    case 'tcp-advise':
      return runTcpAdvise(rest, (s) => process.stdout.write(s));
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(USAGE);
      return 0;
    case 'version':
    case '--version':
    case '-v':
      process.stdout.write(`npcd ${VERSION}\n`);
      return 0;
    default:
      if (command.startsWith('--')) return serve(argv);
      process.stderr.write(`npcd: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof NpcdError) {
      process.stderr.write(`npcd: ${err.code}: ${err.message}\n`);
      // Bad options exit 2; a host the sidecar cannot trace on is a failure to run (1).
      process.exitCode = err.code === 'ERR_SIDECAR_UNSUPPORTED' ? 1 : 2;
    } else {
      process.stderr.write(`npcd: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
