// `stargzfs serve` for tests: started through the launcher people run, on its own state
// root, ready once its control socket answers; stopped with SIGTERM (then SIGKILL) by PID
// in `finally`, and whatever it left mounted under the root is detached.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { launcherPath } from './paths.js';
import { callService } from '../../src/service/client.js';

export interface TestService {
  readonly root: string;
  readonly pid: number;
  readonly socket: string;
  /** What it wrote to stderr so far. */
  log(): string;
  /** SIGTERM and wait for the exit (SIGKILL after `graceMs`); returns the exit code or signal. */
  stop(graceMs?: number): Promise<number | string>;
  /** SIGKILL of its supervisor (which would start another), then of the service, and wait: its mounts die with it. */
  kill(): Promise<void>;
  /** The supervisor holding its mounts (null with --no-supervise). */
  readonly supervisorPid: number | null;
}

export async function startService(root: string, args: readonly string[] = [], env: NodeJS.ProcessEnv = process.env): Promise<TestService> {
  const child: ChildProcess = spawn(launcherPath, ['serve', '--root', root, ...args], {
    env: { ...env, STARGZFS_NODE: process.execPath },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => void (err += b.toString()));
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)));
  const socket = join(root, 'serve.sock');
  let done = false;
  void exited.then(() => { done = true; });
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (done) throw new Error(`stargzfs serve exited before it answered:\n${err}`);
    if (existsSync(socket) && (await callService(socket, 'GET', '/v1/status').catch(() => undefined)) !== undefined) break;
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`stargzfs serve did not answer at ${socket} within 30 s:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const said = (await callService(socket, 'GET', '/v1/status').catch(() => undefined)) as { body?: unknown } | undefined;
  const supervisorPid = ((said?.body ?? said) as { supervisorPid?: number | null } | undefined)?.supervisorPid ?? null;
  const killSupervisor = (): void => {
    if (supervisorPid === null) return;
    try {
      process.kill(supervisorPid, 'SIGKILL');
    } catch {
      // gone
    }
  };
  const stop = async (graceMs = 15_000): Promise<number | string> => {
    if (!done) child.kill('SIGTERM');
    const t = setTimeout(() => {
      killSupervisor();
      child.kill('SIGKILL');
    }, graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(t);
    }
  };
  return {
    root,
    pid: child.pid as number,
    socket,
    log: () => err,
    stop,
    supervisorPid,
    kill: async () => {
      killSupervisor();
      if (!done) child.kill('SIGKILL');
      await exited;
    },
  };
}

/** The FUSE mounts (fuse.stargzfs) at or below `dir`, deepest first. */
export function stargzfsMountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' '))
    .filter((f) => f.length > 5 && (f[4] === dir || (f[4] ?? '').startsWith(`${dir}/`)) && f[f.indexOf('-') + 1] === 'fuse.stargzfs')
    .map((f) => f[4] as string)
    .sort((a, b) => b.length - a.length);
}

/** Detaches every stargzfs mount left at or below `dir` (a test that failed mid-run, a killed service). */
export function detachStargzfsMounts(dir: string): void {
  for (const m of stargzfsMountsUnder(dir)) {
    try {
      execFileSync('umount', ['-l', m], { stdio: 'ignore' });
    } catch {
      // gone meanwhile
    }
  }
}
