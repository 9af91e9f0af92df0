// The root pino logger. Modules derive `log.child({ mod })`; nothing else creates loggers.
// Redaction is configured once here so that no module has to remember it.
import { pino, type Logger, type DestinationStream } from 'pino';
import { createRequire } from 'node:module';
import { writeSync as fsWriteSync } from 'node:fs';

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
    destination ?? new SafeDestination(2),
  );
}

/** How often a write that would block (EAGAIN: a non-blocking pipe) is tried before its line is dropped. */
const EAGAIN_TRIES = 50;
const pause = new Int32Array(new SharedArrayBuffer(4));
/** Lines held while the log cannot be written (the oldest are dropped past this), about 200 lines. */
const HELD_MAX_BYTES = 64 << 10;

/**
 * Log lines written synchronously to a file descriptor, where a failed write is never
 * fatal: a --daemon server's stderr is its log file on the state root's disk, and once
 * that disk was full (ENOSPC) pino's own destination emitted an 'error' nobody handles,
 * which ended a server that could still serve every file from memory. Lines that cannot
 * be written are held, and written once the log can be written again: the warning that
 * the disk is full is logged when the disk is full. Past HELD_MAX_BYTES the oldest are
 * dropped, and a line says how many and why.
 */
export class SafeDestination implements DestinationStream {
  private readonly held: string[] = [];
  private heldBytes = 0;
  /** Lines dropped since the last one written. */
  private dropped = 0;
  private lastError = '';
  /** A line was cut off part-way: the next write starts a new line. */
  private torn = false;

  constructor(private readonly fd: number, private readonly writeSync: typeof fsWriteSync = fsWriteSync) {}

  write(line: string): void {
    this.held.push(line);
    this.heldBytes += line.length;
    while (this.heldBytes > HELD_MAX_BYTES && this.held.length > 1) {
      this.heldBytes -= (this.held.shift() as string).length;
      this.dropped++;
    }
    if (this.dropped > 0) {
      const note = JSON.stringify({ level: 40, time: Date.now(), pid: process.pid, mod: 'log', dropped: this.dropped, code: this.lastError, msg: 'log lines lost: the log could not be written' });
      if (!this.put(`${note}\n`)) return;
      this.dropped = 0;
    }
    for (let next = this.held[0]; next !== undefined && this.put(next); next = this.held[0]) {
      this.held.shift();
      this.heldBytes -= next.length;
    }
  }

  /** Writes all of `text`, or as much as goes before an error; false then. */
  private put(text: string): boolean {
    const b = Buffer.from(this.torn ? `\n${text}` : text);
    let at = 0;
    for (let tries = 0; at < b.length; ) {
      try {
        at += this.writeSync(this.fd, b, at);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code ?? 'EIO';
        if (code === 'EAGAIN' && ++tries < EAGAIN_TRIES) {
          Atomics.wait(pause, 0, 0, 2);
          continue;
        }
        this.lastError = code;
        this.torn ||= at > 0;
        return false;
      }
    }
    this.torn = false;
    return true;
  }
}
