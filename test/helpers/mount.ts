// Real FUSE mounts for tests: `stargzfs mount --daemon` (so readiness is the CLI's own
// promise), torn down in `finally` by `stargzfs unmount`, falling back to a lazy umount
// and killing the server by its PID (never by name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliResult } from './cli.js';
import { repoRoot } from './paths.js';

export interface TestMount {
  readonly mountpoint: string;
  readonly pid: number;
  /** Unmounts and waits for the server to exit; safe to call twice. */
  stop(): Promise<void>;
}

export async function mountDaemon(args: readonly string[], mountpoint: string): Promise<TestMount> {
  try {
    mkdirSync(mountpoint, { recursive: true });
  } catch (err) {
    // A dead mount left there (ENOTCONN) is the mount command's to clear.
    if ((err as NodeJS.ErrnoException).code !== 'ENOTCONN') throw err;
  }
  const r: CliResult = await runCli(['mount', '--daemon', ...args, mountpoint]);
  if (r.code !== 0) throw new Error(`stargzfs mount exited ${r.code}: ${r.stderr}`);
  const status = JSON.parse(readFileSync(join(mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { pid: number };
  let stopped = false;
  return {
    mountpoint,
    pid: status.pid,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      const u = await runCli(['unmount', mountpoint]);
      if (u.code !== 0) forceUnmount(mountpoint, status.pid);
    },
  };
}

/** Last resort: detach whatever is mounted there and kill the server we started. */
export function forceUnmount(mountpoint: string, pid?: number): void {
  try {
    execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
  if (pid !== undefined) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** `compare-tree.py MOUNTPOINT TRUTH` (the fixtures' own checker): its exit code and report. */
export function compareTree(mountpoint: string, truth: string, extra: readonly string[] = []): { ok: boolean; report: string } {
  const tool = join(repoRoot, '../shared/fixtures/tools/compare-tree.py');
  try {
    const out = execFileSync('python3', [tool, ...extra, mountpoint, truth], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { ok: true, report: out };
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string };
    return { ok: false, report: `${e.stdout ?? ''}${e.stderr ?? ''}` };
  }
}
