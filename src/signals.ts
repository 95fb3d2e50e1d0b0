/**
 * How long-running commands (`npcd serve`, `npcd sidecar`) end: the first
 * SIGTERM or SIGINT runs their stop and exits 0 once it is done (1 if it
 * fails); a second signal exits 1 at once.
 */
import type { Logger } from 'pino';

export function stopOnSignals(logger: Logger, stop: () => Promise<void>, said: { readonly stopping: string; readonly stopped: string }): void {
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    logger.info({ signal }, said.stopping);
    stop().then(
      () => {
        logger.info(said.stopped);
        logger.flush();
        // Keep-alive HTTP sockets may linger; nothing is in flight any more.
        setTimeout(() => process.exit(0), 50).unref();
      },
      (err: unknown) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}
