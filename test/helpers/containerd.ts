// Debian's containerd (1.6) for tests: its own root, state and sockets under a temp dir,
// no CRI plugin, and `stargzfs` as a proxy snapshotter at the given socket. Started after
// the snapshotter (containerd dials proxy plugins lazily and backs off after a failure),
// stopped by PID in `finally`; `ctr` and `ctr-remote` are run against its socket.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface TestContainerd {
  readonly address: string;
  /** `ctr -a ADDRESS ARGS…` (or ctr-remote with `remote`); rejects with stderr on a non-zero exit. */
  ctr(args: readonly string[], opts?: { remote?: boolean; timeoutMs?: number }): Promise<string>;
  /** `ctr run --rm` of IMAGE as a container named ID (made unique to this process), its runc state under the test's dir; resolves with its stdout. */
  run(image: string, id: string, cmd: readonly string[], snapshotter?: string): Promise<string>;
  log(): string;
  stop(): Promise<void>;
}

/**
 * PIDs of what our containerd started: its shims (their command line names its socket)
 * and the containers' processes (their root is a rootfs under its state directory).
 */
function startedBy(address: string, state: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(name)) continue;
    try {
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if ((argv[0] ?? '').includes('containerd-shim') && argv.includes(address)) out.push(Number(name));
      else if (readlinkSync(`/proc/${name}/root`).startsWith(`${state}/`)) out.push(Number(name));
    } catch {
      // gone meanwhile, or not ours to look at
    }
  }
  return out;
}

export async function startContainerd(dir: string, snapshotterSocket: string): Promise<TestContainerd> {
  mkdirSync(dir, { recursive: true });
  const address = join(dir, 'containerd.sock');
  const config = join(dir, 'config.toml');
  writeFileSync(config, [
    'version = 2',
    `root = "${join(dir, 'root')}"`,
    `state = "${join(dir, 'state')}"`,
    'disabled_plugins = ["io.containerd.grpc.v1.cri"]',
    '[grpc]',
    `  address = "${address}"`,
    '[ttrpc]',
    `  address = "${address}.ttrpc"`,
    '[proxy_plugins]',
    '  [proxy_plugins.stargzfs]',
    '    type = "snapshot"',
    `    address = "${snapshotterSocket}"`,
    '',
  ].join('\n'));
  const child: ChildProcess = spawn('containerd', ['--config', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr?.on('data', (b: Buffer) => {
    err += b.toString();
    if (err.length > 200_000) err = err.slice(-100_000);
  });
  let exited = false;
  const done = new Promise<void>((resolve) => child.on('exit', () => { exited = true; resolve(); }));
  const ctr = (args: readonly string[], opts: { remote?: boolean; timeoutMs?: number } = {}): Promise<string> =>
    new Promise((resolve, reject) => {
      execFile(opts.remote === true ? 'ctr-remote' : 'ctr', ['-a', address, ...args], { timeout: opts.timeoutMs ?? 120_000, maxBuffer: 16 << 20 }, (e, stdout, stderr) => {
        if (e !== null) reject(new Error(`${opts.remote === true ? 'ctr-remote' : 'ctr'} ${args.join(' ')}: ${e.message}\n${stderr}`));
        else resolve(stdout);
      });
    });
  const stop = async (): Promise<void> => {
    if (!exited) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(t);
    // A container still running when a test failed: it and its shim outlive containerd.
    for (const pid of startedBy(address, join(dir, 'state'))) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
  };
  const run = (image: string, id: string, cmd: readonly string[], snapshotter = 'stargzfs'): Promise<string> =>
    ctr(['run', '--rm', '--runc-root', join(dir, 'runc'), '--snapshotter', snapshotter, image, `${id}-${process.pid}`, ...cmd]);
  for (let i = 0; ; i++) {
    if (exited) throw new Error(`containerd exited at start:\n${err}`);
    if (existsSync(address) && (await ctr(['version']).then(() => true, () => false))) break;
    if (i > 150) {
      await stop();
      throw new Error(`containerd did not answer at ${address}:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { address, ctr, run, log: () => err, stop };
}
