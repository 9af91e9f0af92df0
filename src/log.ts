// The root pino logger. Modules derive `log.child({ mod })`; nothing else creates loggers.
// Redaction is configured once here so that no module has to remember it.
import { pino, type Logger, type DestinationStream } from 'pino';
import { createRequire } from 'node:module';

export type { Logger };

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export const REDACT_PATHS = [
  'authorization',
  '*.authorization',
  'headers.authorization',
  '*.headers.authorization',
  'token',
  '*.token',
  'password',
  '*.password',
  'auth',
  '*.auth',
];

/** JSON lines on stderr; `pretty`: coloured, one line per message, for a person at a terminal. */
export function createLogger(level: LogLevel, destination?: DestinationStream, pretty = false): Logger {
  if (pretty && destination === undefined) {
    // Loaded only for a terminal: it is a tenth of a second of start-up otherwise spent for nothing.
    const { PinoPretty } = createRequire(import.meta.url)('pino-pretty') as typeof import('pino-pretty');
    destination = PinoPretty({ destination: 2, sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname' });
  }
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    // Logs go to stderr: stdout carries command output (file bytes for `cat`, JSON for --json).
    // Written synchronously: a --daemon server's stderr is its log file, and the launcher
    // (and whoever reads the log after "ready" or after a crash) must find every line
    // written before it. At info level a mount logs a handful of lines, so the main thread
    // loses nothing measurable; the async default left lines in flight past "ready".
    destination ?? pino.destination({ dest: 2, sync: true }),
  );
}
