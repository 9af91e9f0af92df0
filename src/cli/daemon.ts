// `mount --daemon`: the same command re-run in the background, whose "ready" on a pipe
// (fd 3) means the mount serves. The parent's exit code is the truth a snapshotter needs:
// 0 once serving, else the child's code with its last log lines on stderr.
import { spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { EXIT } from './exit-codes.js';

export async function daemonize(args: readonly string[], root: string, mountpoint: string): Promise<number> {
  mkdirSync(join(root, 'logs'), { recursive: true });
  const logFile = join(root, 'logs', `mount-${resolve(mountpoint).replace(/[^A-Za-z0-9._-]+/g, '_')}.log`);
  const fd = openSync(logFile, 'a');
  const child = spawn(process.execPath, [process.argv[1] as string, ...args], {
    detached: true,
    stdio: ['ignore', fd, fd, 'pipe'],
    env: { ...process.env, STARGZFS_READY_FD: '3' },
  });
  closeSync(fd);
  const ready = child.stdio[3] as NodeJS.ReadableStream;
  const outcome = await new Promise<number>((done) => {
    let said = '';
    ready.on('data', (b: Buffer) => {
      said += b.toString();
      if (said.includes('ready')) done(EXIT.ok);
    });
    child.on('exit', (code) => done(code === 0 || code === null ? EXIT.error : code));
    child.on('error', () => done(EXIT.error));
  });
  if (outcome === EXIT.ok) {
    (ready as NodeJS.ReadableStream & { destroy(): void }).destroy();
    child.unref();
    process.stderr.write(`stargzfs: mounted at ${mountpoint} (pid ${child.pid ?? '?'}, log ${logFile})\n`);
    return EXIT.ok;
  }
  const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-5).join('\n');
  process.stderr.write(`stargzfs: the mount did not start:\n${tail}\n`);
  return outcome;
}
