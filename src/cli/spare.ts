// Spare servers: a `mount … --daemon` that finds one starts without starting Node or
// loading the CLI (0.28–0.34 s of a cold mount's start-up here, before its first request).
// A spare is a process like any mount's server, started ahead: it loads the CLI and the
// addons, listens on a Unix socket in a directory of its user's, and waits. The shell
// launcher (src/cli/stargzfs.sh) hands it the command through native/spare_client.c; the
// spare takes the launcher's working directory, environment and arguments, and from then
// on it is that mount's server, one process per mount as before. It answers on the socket
// exactly as on the launcher's pipe (src/cli/ready.ts). A taken spare starts its own
// replacement a little later, so the number waiting stays what `stargzfs spare` made.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, readdirSync, realpathSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { setPriority } from 'node:os';
import { join } from 'node:path';
import { acceptClaim, listenSpare, stopListening } from '../fs/fuse-binding.js';
import { plainMount } from './daemon-args.js';
import { alive } from './pids.js';
import { readOutcome } from './ready.js';
import { EXIT } from './exit-codes.js';

export const SPARE_ENV = 'STARGZFS_SPARE';
export const SPARE_DIR_ENV = 'STARGZFS_SPARE_DIR';
const SPARE_READY_FD_ENV = 'STARGZFS_SPARE_READY_FD';
const PROTOCOL = 'stargzfs-spare/1';
/**
 * A taken spare starts its replacement once the machine has been quiet for a second (the
 * CPUs at least three-quarters idle), not while the workload that wanted the mount is
 * starting: loading Node and the CLI is a second of CPU and, after a cold boot, disk reads.
 * At the latest after REPLACE_WITHIN_MS, or when the server exits.
 */
const QUIET_SAMPLE_MS = 250;
const QUIET_SAMPLES = 4;
const QUIET_IDLE = 0.75;
const REPLACE_WITHIN_MS = 30_000;

/** Where a user's spares listen (native/spare_client.c chooses the same way); undefined: nowhere. */
export function spareDir(env: NodeJS.ProcessEnv, euid: number): string | undefined {
  const dir = env[SPARE_DIR_ENV];
  if (dir !== undefined && dir !== '') return dir;
  if (euid === 0) return '/run/stargzfs/spares';
  const run = env['XDG_RUNTIME_DIR'];
  return run !== undefined && run !== '' ? join(run, 'stargzfs', 'spares') : undefined;
}

/** Left by `spare --stop` so that a replacement already starting does not stay; `spare` removes it. */
const STOPPED = 'stopped';

/** A command a launcher hands to a spare. */
export interface Claim {
  /** The bundle the launcher would have run (its stargzfs.mjs). */
  readonly main: string;
  readonly cwd: string;
  readonly args: string[];
  readonly env: Record<string, string>;
}

/** The request native/spare_client.c sends (without its length prefix); undefined if it is not one. */
export function parseClaim(request: Buffer): Claim | undefined {
  const fields = request.toString('utf8').split('\0');
  // Every field ends with a NUL, so the last split piece is empty.
  if (fields.pop() !== '' || fields[0] !== PROTOCOL || fields.length < 4) return undefined;
  const [, main, cwd, count] = fields as [string, string, string, string];
  if (!/^[0-9]+$/.test(count) || 4 + Number(count) > fields.length) return undefined;
  const args = fields.slice(4, 4 + Number(count));
  const env: Record<string, string> = {};
  for (const e of fields.slice(4 + Number(count))) {
    const eq = e.indexOf('=');
    if (eq > 0) env[e.slice(0, eq)] = e.slice(eq + 1);
  }
  return { main, cwd, args, env };
}

/** The bundle's identity: a spare serves only launchers of the very build it loaded. */
function buildOf(main: string): string {
  try {
    const real = realpathSync(main);
    return `${real}@${statSync(real).mtimeMs}`;
  } catch {
    return `${main}@missing`;
  }
}

/**
 * This process as a spare (started by startSpares or by a taken spare): loads what a mount
 * needs (`warm`), listens, says `ready` on fd 3 if it has one, and returns the first
 * `mount … --daemon` claim, with the claim's socket as its ready channel. Commands it
 * cannot serve are told `use-node` (the launcher then runs them itself); a launcher of
 * another build makes it retire (exit).
 */
export async function becomeSpare(main: string, warm: () => Promise<void>): Promise<{ claim: Claim; fd: number }> {
  const dir = spareDir(process.env, process.geteuid?.() ?? 0);
  const readyFd = process.env[SPARE_READY_FD_ENV] !== undefined ? Number(process.env[SPARE_READY_FD_ENV]) : undefined;
  delete process.env[SPARE_READY_FD_ENV];
  const spareEnv = { ...process.env };
  const tell = (line: string): void => {
    if (readyFd === undefined) return;
    try {
      writeSync(readyFd, `${line}\n`);
      closeSync(readyFd);
    } catch {
      // Whoever started us is gone.
    }
  };
  if (dir === undefined) {
    tell(`stargzfs: no directory for spares (set ${SPARE_DIR_ENV} or XDG_RUNTIME_DIR)\nexit 2`);
    process.exit(2);
  }
  const root = process.geteuid?.() === 0;
  // While it waits, a spare yields the CPU to everything else (root can raise it back).
  if (root) setPriority(19);
  const build = buildOf(main);
  await warm();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (existsSync(join(dir, STOPPED))) {
    // `spare --stop` ran while this one was starting (a replacement): stop means stop.
    // Said as a failure to whoever waits for it: `exit 0` would read as started (ready.ts).
    tell(`stargzfs: spares were stopped meanwhile\nexit ${EXIT.error}`);
    process.exit(0);
  }
  const path = join(dir, `${process.pid}.sock`);
  const listenFd = listenSpare(path);
  const unlisten = (): void => {
    try {
      closeSync(listenFd);
      unlinkSync(path);
    } catch {
      // Already gone.
    }
  };
  const retire = (): never => {
    unlisten();
    process.exit(0);
  };
  const stop = (): void => stopListening(listenFd);
  process.on('SIGTERM', stop);
  tell(`stargzfs: spare ${process.pid} waiting at ${path}\nready`);
  for (;;) {
    // Rejects when stopped (SIGTERM) or when the socket fails: either way, no longer a spare.
    const taken = await acceptClaim(listenFd).catch(retire);
    const claim = parseClaim(taken.request);
    if (claim === undefined) {
      closeSync(taken.fd);
      continue;
    }
    if (buildOf(claim.main) !== build) {
      // Another build, or this one rebuilt: its launcher must not get our code.
      closeSync(taken.fd);
      retire();
    }
    if (plainMount(claim.args)?.daemon !== true) {
      writeSync(taken.fd, 'use-node\n');
      closeSync(taken.fd);
      continue;
    }
    unlisten();
    process.off('SIGTERM', stop);
    if (root) setPriority(0);
    replaceLater(main, spareEnv);
    return { claim, fd: taken.fd };
  }
}

/** Starts a spare in this one's place once the machine is quiet (or at exit, if sooner). */
function replaceLater(main: string, env: NodeJS.ProcessEnv): void {
  let done = false;
  const replace = (): void => {
    if (done) return;
    done = true;
    clearInterval(sampler);
    const child = spawn(process.execPath, [main, 'spare'], { detached: true, stdio: 'ignore', cwd: '/', env: { ...env, [SPARE_ENV]: '1' } });
    child.on('error', () => {});
    child.unref();
  };
  const started = Date.now();
  let last = cpuTimes();
  let quiet = 0;
  const sampler = setInterval(() => {
    const now = cpuTimes();
    const idle = now !== undefined && last !== undefined && now.total > last.total ? (now.idle - last.idle) / (now.total - last.total) : 0;
    last = now;
    quiet = idle >= QUIET_IDLE ? quiet + 1 : 0;
    if (quiet >= QUIET_SAMPLES || Date.now() - started >= REPLACE_WITHIN_MS) replace();
  }, QUIET_SAMPLE_MS).unref();
  process.on('exit', replace);
}

/** All CPUs' idle and total time since boot (/proc/stat, in clock ticks); undefined where there is none. */
export function cpuTimes(stat?: string): { idle: number; total: number } | undefined {
  let text = stat;
  try {
    text ??= readFileSync('/proc/stat', 'utf8');
  } catch {
    return undefined;
  }
  const f = /^cpu\s+([0-9 ]+)/.exec(text)?.[1]?.trim().split(/\s+/).map(Number);
  if (f === undefined || f.length < 5) return undefined;
  // user nice system idle iowait irq softirq steal …: waiting for the disk counts as idle.
  return { idle: (f[3] as number) + (f[4] as number), total: f.slice(0, 8).reduce((a, b) => a + b, 0) };
}

/** This process becomes the claim's command: its directory, environment and arguments. */
export function adoptClaim(claim: Claim): void {
  process.chdir(claim.cwd);
  // Only what differs: each change is a setenv or unsetenv, and clearing and refilling
  // forty variables took 2–3 ms on the way to the mount's first request.
  for (const k of Object.keys(process.env)) if (!(k in claim.env)) delete process.env[k];
  for (const [k, v] of Object.entries(claim.env)) if (process.env[k] !== v) process.env[k] = v;
  process.argv.splice(2, Infinity, ...claim.args);
}

/** `stargzfs spare`: starts `count` spares and waits until each listens; returns their pids. */
export async function startSpares(main: string, dir: string, count: number): Promise<number[]> {
  rmSync(join(dir, STOPPED), { force: true });
  const started = Array.from({ length: count }, () => startOne(main));
  return Promise.all(started);
}

function startOne(main: string): Promise<number> {
  const child = spawn(process.execPath, [main, 'spare'], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'pipe'],
    cwd: '/',
    env: { ...process.env, [SPARE_ENV]: '1', [SPARE_READY_FD_ENV]: '3' },
  });
  const pipe = child.stdio[3] as NodeJS.ReadableStream;
  let said = '';
  pipe.on('data', (b: Buffer) => void (said += b.toString()));
  return new Promise((resolve, reject) => {
    // The spare tells its start as a mount's server tells its own (src/cli/ready.ts).
    pipe.on('end', () => {
      const { shown, code } = readOutcome(said);
      if (code === EXIT.ok && child.pid !== undefined) {
        child.unref();
        resolve(child.pid);
      } else {
        reject(new Error(shown !== '' ? shown : 'a spare ended before it was ready'));
      }
    });
    child.on('error', reject);
  });
}

/** The pids of the spares waiting in `dir`. */
export function listSpares(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((n) => /^[0-9]+\.sock$/.test(n)).map((n) => Number(n.slice(0, -5)));
}

/** `stargzfs spare --stop`: asks every spare waiting in `dir` to end, and waits (up to `waitMs`) until they have. */
export async function stopSpares(dir: string, waitMs = 5000): Promise<number[]> {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(dir, STOPPED), '');
  const pids = listSpares(dir).filter((pid) => {
    try {
      process.kill(pid, 'SIGTERM');
      return true;
    } catch {
      // Gone without removing its socket (killed): the file is stale.
      try {
        unlinkSync(join(dir, `${pid}.sock`));
      } catch {
        // Already gone.
      }
      return false;
    }
  });
  const deadline = Date.now() + waitMs;
  while (pids.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return pids;
}
