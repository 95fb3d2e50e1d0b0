/**
 * One pino root logger; each subsystem takes a child with `subsystem` set.
 * Nothing is logged per frame or per token: that is what metrics are for.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Keys that may hold credentials never reach the log.
      redact: { paths: ['token', 'apiKey', 'authorization', '*.token', '*.apiKey', '*.authorization'], censor: '[redacted]' },
      serializers: { err: pino.stdSerializers.err },
    },
    destination ?? pino.destination({ fd: 1, sync: false }),
  );
}

/** A logger that drops everything, for tests and library use. */
export const silentLogger: Logger = pino({ level: 'silent' });
