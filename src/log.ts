// The root pino logger. Modules derive `log.child({ mod })`; nothing else creates loggers.
// Redaction is configured once here so that no module has to remember it.
import { pino, type Logger, type DestinationStream } from 'pino';

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

export function createLogger(level: LogLevel, destination?: DestinationStream): Logger {
  return pino(
    {
      level,
      redact: { paths: REDACT_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    // Logs go to stderr: stdout carries command output (file bytes for `cat`, JSON for --json).
    destination ?? pino.destination(2),
  );
}
