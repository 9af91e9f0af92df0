// The `mount --daemon` server's side of the pipe its launcher waits on: fd
// STARGZFS_READY_FD, opened by src/cli/daemon.ts or by the shell launcher
// (src/cli/stargzfs.sh). The server writes lines for the launcher to show, then one status
// line: `ready` once the mount serves, or `exit N` if the process ends first. The
// launcher's exit code is then the truth a snapshotter needs, and the words come from
// here, whichever launcher relays them.
import { closeSync, readFileSync, writeSync } from 'node:fs';
import { EXIT } from './exit-codes.js';

export const READY_FD_ENV = 'STARGZFS_READY_FD';
export const LOG_FILE_ENV = 'STARGZFS_LOG_FILE';

let fd: number | undefined;

/** Takes the pipe named by the environment, if any; says `exit N` on it if the process ends before ready. */
export function armReadyChannel(): void {
  const raw = process.env[READY_FD_ENV];
  if (raw === undefined || !/^[0-9]+$/.test(raw)) return;
  fd = Number(raw);
  // stdout and stderr are the log file: a write failing there (ENOSPC on a full disk) makes
  // Node's stream emit an 'error' that, unhandled, would end a server still able to serve.
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
  process.on('exit', (code) => {
    if (fd === undefined) return;
    const log = process.env[LOG_FILE_ENV];
    const tail = log !== undefined ? lastLines(log, 5) : '';
    say(`stargzfs: the mount did not start${tail !== '' ? `:\n${tail}` : ''}\nexit ${code === 0 ? EXIT.error : code}\n`);
  });
}

/** This process is a --daemon server: its stderr is a log file, not a person. */
export const isDaemonServer = (): boolean => process.env[READY_FD_ENV] !== undefined;

/** The mount serves: tell the launcher, which then exits 0 and leaves us running. */
export function signalReady(mountpoint: string, shown?: string): void {
  if (fd === undefined) return;
  const log = process.env[LOG_FILE_ENV];
  say(`${shown ?? `stargzfs: mounted at ${mountpoint} (pid ${process.pid}${log !== undefined ? `, log ${log}` : ''})`}\nready\n`);
  closeSync(fd);
  fd = undefined;
}

function say(text: string): void {
  try {
    writeSync(fd as number, text);
  } catch {
    // The launcher is gone (killed); nobody is left to tell.
  }
}

/** The last `n` lines of a log file ('' when it cannot be read). */
export function lastLines(file: string, n: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '';
  }
}

/** The launcher's side: what the server said → the lines to show and the exit code (undefined: it said no status). */
export function readOutcome(said: string): { shown: string; code: number | undefined } {
  const lines = said.replace(/\n$/, '').split('\n');
  const status = lines.at(-1) ?? '';
  const code = status === 'ready' ? EXIT.ok : /^exit [0-9]+$/.test(status) ? Number(status.slice(5)) : undefined;
  return { shown: (code !== undefined ? lines.slice(0, -1) : lines).join('\n'), code };
}
