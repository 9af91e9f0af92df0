// The supervisor as a systemd unit's main process (contrib/systemd/stargzfs.service:
// Type=notify, NotifyAccess=all, KillMode=mixed). It tells systemd READY=1 and
// MAINPID=itself, so that a killed service is its to replace and not systemd's (which
// would start a second service beside the replacement), and SIGTERM to it (`systemctl
// stop`) stops the server cleanly: every mount unmounted, nobody started again.
// systemd is not on this machine: its notify socket is a real AF_UNIX datagram socket
// the test binds (python3, as systemd binds its own); the supervisor, service and
// mounts are the real ones (native/supervisor.c).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fixturesDir } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { mountDaemon, processesWith, supervisorsOf } from '../helpers/mount.js';
import { detachStargzfsMounts, stargzfsMountsUnder, startService } from '../helpers/service.js';

const VARIANT = 'esgz-chunk64k';
const source = (): string => `oci:${join(fixturesDir(), VARIANT, 'oci')}`;

/** A regular file of the image and its sha256 (EXPECTED.tsv). */
function aFile(): { path: string; sha256: string } {
  for (const line of readFileSync(join(fixturesDir(), VARIANT, 'EXPECTED.tsv'), 'utf8').split('\n')) {
    const f = line.split('\t');
    if (!line.startsWith('#') && f[1] === 'reg' && Number(f[5]) > 100_000) return { path: f[0] as string, sha256: f[8] as string };
  }
  throw new Error('no file over 100 kB in the fixture');
}

const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitFor(what: string, ms: number, ok: () => boolean | Promise<boolean>): Promise<void> {
  const until = Date.now() + ms;
  while (!(await ok())) {
    if (Date.now() > until) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

// Each datagram on a line of its own, its newlines as spaces.
const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print('bound', flush=True)
while True:
    print(s.recv(4096).decode().replace('\\n', ' '), flush=True)
`;

describe('the supervisor as a systemd unit’s main process', () => {
  it('tells systemd READY=1 and MAINPID=itself once; replaces a killed service itself; its SIGTERM unmounts everything and starts nobody', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stargzfs-systemd-'));
    const sock = join(dir, 'notify.sock');
    const root = join(dir, 'root');
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const listener = spawn('python3', ['-c', LISTENER, sock], { stdio: ['ignore', 'pipe', 'inherit'] });
    let heard = '';
    listener.stdout.on('data', (b: Buffer) => void (heard += b.toString()));
    let svc: Awaited<ReturnType<typeof startService>> | undefined;
    try {
      await waitFor('the notify socket bound', 10_000, () => heard.includes('bound'));
      svc = await startService(root, ['--no-snapshotter'], { ...process.env, NOTIFY_SOCKET: sock });
      const sup = svc.supervisorPid;
      assert.ok(sup !== null && sup > 1, 'the service started a supervisor');
      await waitFor('systemd told', 10_000, () => heard.includes('MAINPID='));
      assert.match(heard, new RegExp(`^READY=1 MAINPID=${sup}$`, 'm'), `what systemd heard: ${heard}`);

      const m = await runCli(['mount', '--root', root, '--daemon', '--no-prefetch', source(), mnt]);
      assert.equal(m.code, 0, m.stderr);
      const f = aFile();
      assert.equal(sha(await readFile(join(mnt, f.path))), f.sha256);

      // A killed service: the supervisor's to replace (systemd follows the supervisor, not it).
      process.kill(svc.pid, 'SIGKILL');
      const pidOf = async (): Promise<number> => (JSON.parse(await readFile(join(mnt, '.stargzfs', 'status.json'), 'utf8')) as { pid: number }).pid;
      let next = svc.pid;
      await waitFor('a new service', 15_000, async () => (next = await pidOf().catch(() => svc?.pid ?? 0)) !== svc?.pid);
      assert.ok(alive(sup), 'the supervisor lives on');
      assert.equal(sha(await readFile(join(mnt, f.path))), f.sha256, 'the mount serves on, from the new service');
      assert.equal(heard.split('\n').filter((l) => l.includes('READY=1')).length, 1, `systemd is told once: ${heard}`);

      // systemctl stop: SIGTERM to the main process. The service unmounts and exits; the supervisor follows; nobody is started.
      process.kill(sup, 'SIGTERM');
      await waitFor('the supervisor gone', 20_000, () => !alive(sup));
      await waitFor('the service gone', 10_000, () => !alive(next));
      assert.deepEqual(stargzfsMountsUnder(dir), [], 'every mount unmounted, none left dead');
      assert.deepEqual(processesWith(root), [], 'no server started after the stop');
    } finally {
      listener.kill('SIGKILL');
      await svc?.kill();
      for (const s of supervisorsOf(root)) process.kill(s, 'SIGKILL');
      for (const p of processesWith(root)) process.kill(p, 'SIGKILL');
      detachStargzfsMounts(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('SIGTERM to a mount’s supervisor unmounts it cleanly (the server stops, nobody replaces it)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'stargzfs-supervisor-term-'));
    const mnt = join(dir, 'mnt');
    const root = join(dir, 'root');
    try {
      const m = await mountDaemon(['--root', root, '--no-prefetch', source()], mnt);
      const sup = m.supervisorPid;
      assert.ok(sup !== null && sup > 1);
      const f = aFile();
      assert.equal(sha(await readFile(join(mnt, f.path))), f.sha256);
      process.kill(sup, 'SIGTERM');
      await waitFor('the supervisor gone', 20_000, () => !alive(sup));
      await waitFor('the server gone', 10_000, () => !alive(m.pid));
      assert.deepEqual(stargzfsMountsUnder(dir), [], 'unmounted, not left dead');
      assert.ok(!existsSync(join(mnt, '.stargzfs', 'status.json')), 'nothing serves there');
      assert.deepEqual(processesWith(root), [], 'no server started after the stop');
    } finally {
      for (const s of supervisorsOf(root)) process.kill(s, 'SIGKILL');
      for (const p of processesWith(root)) process.kill(p, 'SIGKILL');
      detachStargzfsMounts(dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
