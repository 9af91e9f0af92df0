// Real FUSE mounts for tests: `stargzfs mount --daemon` (so readiness is the CLI's own
// promise), torn down in `finally` by `stargzfs unmount`, falling back to a lazy umount
// and killing the server by its PID (never by name).
import { execFileSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli, type CliResult } from './cli.js';
import { repoRoot } from './paths.js';

export interface TestMount {
  readonly mountpoint: string;
  readonly pid: number;
  /** The supervisor holding the mount (null with --no-supervise). */
  readonly supervisorPid: number | null;
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
  const status = JSON.parse(readFileSync(join(mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { pid: number; supervisorPid?: number | null };
  let stopped = false;
  const supervisorPid = status.supervisorPid ?? null;
  return {
    mountpoint,
    pid: status.pid,
    supervisorPid,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      const u = await runCli(['unmount', mountpoint]);
      if (u.code !== 0) forceUnmount(mountpoint, status.pid, supervisorPid ?? undefined);
      // A supervisor that outlived its server (it never should) is ours to end.
      else if (supervisorPid !== null) killQuietly(supervisorPid);
    },
  };
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

/** Processes (this one excepted) whose command line, as words, passes `match`. */
function processesWhere(match: (argv: string[]) => boolean): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (match(readFileSync(`/proc/${d}/cmdline`, 'utf8').split('\0'))) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

/**
 * The supervisors a mount at `mountpoint` started (native/supervisor.c; its command line
 * holds the mount command's, mountpoint included): our tests' temp paths are unique.
 */
export function supervisorsOf(mountpoint: string): number[] {
  return processesWhere((argv) => argv[0]?.endsWith('/stargzfs-supervisor') === true && argv.includes(mountpoint));
}

/** Processes whose command line has `arg` as one of its words (a test's unique temp path: ours). */
export function processesWith(arg: string): number[] {
  return processesWhere((argv) => argv.includes(arg));
}

/** Last resort: detach whatever is mounted there and kill the supervisor and server we started (supervisor first: it would start another). */
export function forceUnmount(mountpoint: string, pid?: number, supervisorPid?: number): void {
  if (supervisorPid !== undefined) killQuietly(supervisorPid);
  for (const s of supervisorsOf(mountpoint)) killQuietly(s);
  try {
    execFileSync('umount', ['-l', mountpoint], { stdio: 'ignore' });
  } catch {
    // not mounted
  }
  if (pid !== undefined) killQuietly(pid);
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
