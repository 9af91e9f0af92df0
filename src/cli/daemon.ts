// `mount --daemon` from Node (the shell launcher, src/cli/stargzfs.sh, does the same
// without a Node process): the same command re-run in the background, which says on a
// pipe (fd 3, src/cli/ready.ts) when the mount serves or why it did not.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EXIT } from './exit-codes.js';
import { lastLines, LOG_FILE_ENV, READY_FD_ENV, readOutcome } from './ready.js';

/** Where the server for `mountpoint` logs (its directory is made). */
export function daemonLogFile(root: string, mountpoint: string): string {
  mkdirSync(join(root, 'logs'), { recursive: true });
  return join(root, 'logs', `mount-${resolve(mountpoint).replace(/[^A-Za-z0-9._-]+/g, '_')}.log`);
}

/**
 * The environment a supervisor starts a new server with: this one's, less what tied this
 * process to its launcher (the ready pipe is long closed by then).
 */
export function supervisedEnv(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out[READY_FD_ENV];
  delete out['STARGZFS_DAEMON'];
  return out;
}

/** How to start this process again with the same command line (what a supervisor runs after a death or for an upgrade). */
export function sameCommandLine(): string[] {
  return [process.execPath, ...process.execArgv, process.argv[1] as string, ...process.argv.slice(2)];
}

export async function daemonize(args: readonly string[], root: string, mountpoint: string): Promise<number> {
  const logFile = daemonLogFile(root, mountpoint);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [process.argv[1] as string, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd, 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3', [LOG_FILE_ENV]: logFile },
  });
  closeSync(fd);
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let said = '';
  pipe.on('data', (b: Buffer) => void (said += b.toString()));
  await new Promise<void>((done) => {
    pipe.on('end', done);
    pipe.on('error', done);
    child.on('error', done);
  });
  const { shown, code } = readOutcome(said);
  if (shown !== '') process.stderr.write(`${shown}\n`);
  if (code === EXIT.ok) {
    child.unref();
    return EXIT.ok;
  }
  if (code !== undefined) return code;
  // It ended without a word (killed, or it never started): its log says why.
  const tail = lastLines(logFile, 5);
  process.stderr.write(`stargzfs: the mount did not start:\n${tail}\n`);
  return EXIT.error;
}
