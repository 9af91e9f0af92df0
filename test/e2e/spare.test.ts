// Spare servers (src/cli/spare.ts, native/spare.cc, native/spare_client.c) with real
// mounts: a spare becomes the next `mount --daemon`'s server, in the launcher's working
// directory, and is replaced; what it cannot serve, or a spare of another build, or a
// dead one, leaves the mount to start as without spares; `spare --stop` stops them all,
// a replacement already starting included. Every process a test starts is found by its
// environment (a spare directory of the test's own) and killed by PID in `finally`.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, readFileSync, statSync, utimesSync } from 'node:fs';
import { join } from 'node:path';
import { cliPath, fixturesDir } from '../helpers/paths.js';
import { fixtureRegistry, type FixtureRegistry } from '../helpers/fixture-registry.js';
import { runCli } from '../helpers/cli.js';
import { compareTree, forceUnmount } from '../helpers/mount.js';

/** PIDs of the processes started with STARGZFS_SPARE_DIR=dir: the test's spares and the servers they became. */
function startedWith(dir: string): number[] {
  const mark = Buffer.from(`STARGZFS_SPARE_DIR=${dir}\0`);
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(p) || Number(p) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${p}/environ`).includes(mark)) pids.push(Number(p));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

const sockets = (dir: string): number[] => {
  try {
    return readdirSync(dir).filter((n) => n.endsWith('.sock')).map((n) => Number(n.slice(0, -5)));
  } catch {
    return [];
  }
};

async function until<T>(what: string, ms: number, probe: () => T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('stargzfs spare (real FUSE)', () => {
  let fx: FixtureRegistry;
  const truth = (): string => join(fixturesDir(), 'esgz', 'EXPECTED.tsv');

  before(async () => {
    fx = await fixtureRegistry(['esgz']);
  });
  after(async () => {
    await fx?.stop();
  });

  /** A spare directory of this test's own, its environment, and the clean-up for `finally`. */
  function spares(): { dir: string; env: NodeJS.ProcessEnv; cleanUp(mounts: string[]): Promise<void> } {
    const dir = fx.fresh('spares');
    const env = { ...process.env, STARGZFS_SPARE_DIR: dir };
    return {
      dir,
      env,
      cleanUp: async (mounts) => {
        await runCli(['spare', '--stop'], { env });
        for (const m of mounts) {
          const u = await runCli(['unmount', m], { env });
          if (u.code !== 0) forceUnmount(m);
        }
        for (const pid of startedWith(dir)) process.kill(pid, 'SIGKILL');
      },
    };
  }

  /** A spare directory and a mountpoint of the test's own, cleaned up whatever `body` does. */
  async function withSpares(body: (s: ReturnType<typeof spares>, mnt: string) => Promise<void>): Promise<void> {
    const s = spares();
    const mnt = fx.fresh('mnt');
    mkdirSync(mnt, { recursive: true });
    try {
      await body(s, mnt);
    } finally {
      await s.cleanUp([mnt]);
    }
  }

  async function startSpare(env: NodeJS.ProcessEnv): Promise<number> {
    const r = await runCli(['spare', '--json'], { env });
    assert.equal(r.code, 0, r.stderr);
    const { pids } = JSON.parse(r.stdout.toString('utf8')) as { pids: number[] };
    assert.equal(pids.length, 1);
    return pids[0] as number;
  }

  /** `mount --daemon` of the esgz fixture at `mnt` through the launcher; the pid of the server that serves it. */
  async function mountWith(env: NodeJS.ProcessEnv, mnt: string): Promise<number> {
    const r = await runCli(['--root', fx.fresh('root'), 'mount', '--daemon', fx.ref('esgz'), mnt], { env });
    assert.equal(r.code, 0, r.stderr);
    return Number(/pid ([0-9]+)/.exec(r.stderr)?.[1]);
  }

  /**
   * Until `pid` has closed its files, so its socket takes no more connections. Neither an
   * unreadable environment (memory released, files not yet closed) nor a zombie leader
   * (its other threads may still hold them) shows that; a leader that is the last of its
   * threads and a zombie does: each thread closes its files before it goes from `task/`.
   */
  const exited = (pid: number): Promise<true> =>
    until(`process ${pid} to exit`, 5000, () => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
        const state = stat[stat.lastIndexOf(')') + 2];
        return (state === 'Z' || state === 'X') && readdirSync(`/proc/${pid}/task`).length <= 1 ? true : undefined;
      } catch {
        return true;
      }
    });

  it('the next mount --daemon is served by the spare, from the launcher\'s directory; a replacement follows', async () => {
    const s = spares();
    const cwd = fx.fresh('cwd');
    const root = fx.fresh('root');
    mkdirSync(join(cwd, 'mnt'), { recursive: true });
    try {
      const spare = await startSpare(s.env);
      assert.deepEqual(sockets(s.dir), [spare]);
      // A relative mountpoint: the spare must take the launcher's working directory.
      const r = await runCli(['--root', root, '--log-level', 'info', 'mount', '--daemon', fx.ref('esgz'), 'mnt'], { env: s.env, cwd });
      assert.equal(r.code, 0, r.stderr);
      const said = /mounted at (.+) \(pid ([0-9]+), log (.+)\)/.exec(r.stderr);
      assert.ok(said !== null, r.stderr);
      assert.equal(Number(said[2]), spare, 'the spare itself serves the mount');
      assert.equal(said[1], join(cwd, 'mnt'));
      // Its log is where the command's --root puts it, and the launcher showed none of it.
      assert.equal(said[3], join(root, 'logs', `mount-${join(cwd, 'mnt').replace(/[^A-Za-z0-9._-]+/g, '_')}.log`));
      assert.match(readFileSync(said[3] as string, 'utf8'), /"msg":"mounted"/);
      const cmp = compareTree(join(cwd, 'mnt'), truth());
      assert.ok(cmp.ok, cmp.report);
      assert.deepEqual(sockets(s.dir).filter((p) => p === spare), [], 'a taken spare no longer listens');
      const next = await until('a replacement spare', 45_000, () => sockets(s.dir).find((p) => p !== spare));
      assert.notEqual(next, spare);
    } finally {
      await s.cleanUp([join(cwd, 'mnt')]);
    }
  });

  it('a command the spare does not serve is run by the launcher, and the spare keeps waiting', () =>
    withSpares(async (s) => {
      const spare = await startSpare(s.env);
      const r = await runCli(['mount', '--daemon', '--help'], { env: s.env });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout.toString('utf8'), /--daemon/);
      assert.deepEqual(sockets(s.dir), [spare]);
    }));

  it('a spare of another build retires, and the mount starts without it', () =>
    withSpares(async (s, mnt) => {
      const { atime, mtime } = statSync(cliPath);
      try {
        const spare = await startSpare(s.env);
        // The bundle rebuilt in place (a new mtime): the spare's code is not the launcher's.
        utimesSync(cliPath, atime, new Date(mtime.getTime() + 1000));
        assert.notEqual(await mountWith(s.env, mnt), spare);
        assert.ok(compareTree(mnt, truth()).ok);
        await exited(spare);
        assert.deepEqual(sockets(s.dir), []);
      } finally {
        utimesSync(cliPath, atime, mtime);
      }
    }));

  it('a killed spare\'s socket is removed and the mount starts without it', () =>
    withSpares(async (s, mnt) => {
      const spare = await startSpare(s.env);
      process.kill(spare, 'SIGKILL');
      await exited(spare);
      assert.deepEqual(sockets(s.dir), [spare], 'its socket file is left behind');
      assert.notEqual(await mountWith(s.env, mnt), spare);
      assert.ok(compareTree(mnt, truth()).ok);
      assert.deepEqual(sockets(s.dir), []);
    }));

  it('spare --stop stops every spare, and a replacement already on its way does not stay', () =>
    withSpares(async (s, mnt) => {
      const spare = await startSpare(s.env);
      assert.equal(await mountWith(s.env, mnt), spare);
      const extra = await startSpare(s.env);
      const stop = await runCli(['spare', '--stop', '--json'], { env: s.env });
      assert.deepEqual((JSON.parse(stop.stdout.toString('utf8')) as { pids: number[] }).pids, [extra]);
      // The server's exit starts its replacement, which must see the stop and end.
      const u = await runCli(['unmount', mnt], { env: s.env });
      assert.equal(u.code, 0, u.stderr);
      await until('every process of this spare directory to end', 20_000, () => (startedWith(s.dir).length === 0 ? true : undefined));
      assert.deepEqual(sockets(s.dir), []);
    }));
});
