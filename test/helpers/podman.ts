// Debian's podman (4.3) for tests, as root in this VM: its own storage (--root, --runroot,
// --tmpdir) under a temp dir, the overlay driver (the only one with an additional layer
// store), cgroupfs and file events (no systemd), and, when a store is given,
// `overlay.additionallayerstore=STORE:ref`. Registries and storage configuration come from
// files under the dir, not the machine's. Containers run with low rlimits (without
// CAP_SYS_RESOURCE podman's default, raised to the maximum, fails in runc). `cleanup`
// removes every container and image, detaches what is still mounted under the dir and
// removes it.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestPodman {
  readonly dir: string;
  /** `podman GLOBAL-OPTIONS ARGS…`; resolves with stdout, rejects with stderr on a non-zero exit or the timeout. */
  podman(args: readonly string[], opts?: { timeoutMs?: number }): Promise<string>;
  /**
   * `podman run --rm --network none --tls-verify=false` (low rlimits) of IMAGE with CMD, and
   * `runArgs` (e.g. `--pull=never`) before IMAGE; resolves with its stdout.
   */
  run(image: string, cmd: readonly string[], opts?: { timeoutMs?: number; runArgs?: readonly string[] }): Promise<string>;
  /** Removes every container and image, detaches the mounts left under the dir, removes the dir. */
  cleanup(): Promise<void>;
}

/** Mount points at or below `dir` (any file system type), deepest first. */
function mountsUnder(dir: string): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .map((p) => p.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8))))
    .filter((p) => p === dir || p.startsWith(`${dir}/`))
    .sort((a, b) => b.length - a.length);
}

/** podman with its storage under `dir` (created), and `store` as its additional layer store when given. */
export function startPodman(dir: string, store: string | undefined): TestPodman {
  const root = join(dir, 'root');
  const runroot = join(dir, 'run');
  const tmp = join(dir, 'tmp');
  for (const d of [root, runroot, tmp]) mkdirSync(d, { recursive: true });
  // Only fully qualified references are used: no search registries, no short names asked for.
  const registries = join(dir, 'registries.conf');
  writeFileSync(registries, 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n');
  // The machine's storage.conf (additional stores, mount options) must not apply.
  const storage = join(dir, 'storage.conf');
  writeFileSync(storage, `[storage]\ndriver = "overlay"\ngraphroot = "${root}"\nrunroot = "${runroot}"\n`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CONTAINERS_REGISTRIES_CONF: registries,
    CONTAINERS_STORAGE_CONF: storage,
    // Pulled blobs are staged here rather than in /var/tmp.
    TMPDIR: tmp,
  };
  const global = [
    '--root', root,
    '--runroot', runroot,
    '--tmpdir', join(tmp, 'libpod'),
    '--storage-driver', 'overlay',
    ...(store !== undefined ? ['--storage-opt', `overlay.additionallayerstore=${store}:ref`] : []),
    '--cgroup-manager', 'cgroupfs',
    '--events-backend', 'file',
  ];
  const podman = (args: readonly string[], opts: { timeoutMs?: number } = {}): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile('podman', [...global, ...args], { env, timeout: opts.timeoutMs ?? 120_000, killSignal: 'SIGKILL', maxBuffer: 16 << 20 }, (e, stdout, stderr) => {
        if (e !== null) reject(new Error(`podman ${args.join(' ')}: ${e.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  const run = (image: string, cmd: readonly string[], opts: { timeoutMs?: number; runArgs?: readonly string[] } = {}): Promise<string> =>
    podman(
      ['run', '--rm', '--network', 'none', '--tls-verify=false', '--ulimit', 'nofile=1024:1024', '--ulimit', 'nproc=1024:1024', ...(opts.runArgs ?? []), image, ...cmd],
      opts,
    );
  const cleanup = async (): Promise<void> => {
    await podman(['rm', '-a', '-f'], { timeoutMs: 60_000 }).catch(() => undefined);
    await podman(['rmi', '-a', '-f'], { timeoutMs: 60_000 }).catch(() => undefined);
    // Overlays of containers a failed test left, their shm tmpfs, anything else podman mounted.
    for (const m of mountsUnder(dir)) {
      try {
        execFileSync('umount', ['-l', m], { stdio: 'ignore' });
      } catch {
        // gone meanwhile
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  return { dir, podman, run, cleanup };
}
