// The service for real: `stargzfs serve` on its own root, a real registry, real FUSE
// mounts. `stargzfs mount` (through the launcher's C client, and from Node) hands its
// mount to the service, which serves many in one process; unmount, status and the
// control API work on them; bad requests get clear errors and leave the service serving;
// SIGTERM unmounts everything.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixturesDir } from '../helpers/paths.js';
import { fixtureRegistry, type FixtureRegistry } from '../helpers/fixture-registry.js';
import { runCli } from '../helpers/cli.js';
import { compareTree } from '../helpers/mount.js';
import { detachStargzfsMounts, startService, stargzfsMountsUnder, type TestService } from '../helpers/service.js';
import { callService } from '../../src/service/client.js';

interface Status {
  pid: number;
  service?: { pid: number; controlSocket: string };
  layers: Array<{ prefetch: Record<string, string> | null }>;
}
const statusOf = (mnt: string): Status => JSON.parse(readFileSync(join(mnt, '.stargzfs', 'status.json'), 'utf8')) as Status;


describe('stargzfs serve (real registry, real FUSE)', () => {
  let fx: FixtureRegistry;
  before(async () => {
    fx = await fixtureRegistry(['esgz', 'zstdchunked']);
  });
  after(async () => {
    await fx?.stop();
  });

  it('takes mounts from `stargzfs mount` (launcher and Node), serves several in one process, unmounts them, and stops on SIGTERM', async () => {
    const root = fx.fresh('root');
    const dir = fx.fresh('mnts');
    mkdirSync(dir, { recursive: true });
    let svc: TestService | undefined;
    try {
      svc = await startService(root, ['--no-snapshotter', '--no-learned-prefetch']);
      const m1 = join(dir, 'a');
      const m2 = join(dir, 'b');
      const m3 = join(dir, 'c');
      for (const m of [m1, m2, m3]) mkdirSync(m);

      // The launcher (C client): --daemon and a foreground mount both return once the tree is visible.
      const r1 = await runCli(['mount', '--daemon', '--root', root, fx.ref('esgz'), m1]);
      assert.equal(r1.code, 0, r1.stderr);
      assert.match(r1.stderr, new RegExp(`service pid ${svc.pid}`));
      const cmp = compareTree(m1, join(fixturesDir(), 'esgz', 'EXPECTED.tsv'));
      assert.ok(cmp.ok, cmp.report);
      const s1 = statusOf(m1);
      assert.equal(s1.pid, svc.pid);
      assert.equal(s1.service?.pid, svc.pid);
      // serve's flags are every mount's defaults.
      assert.equal(s1.layers[0]?.prefetch?.['learned'], 'off');
      assert.notEqual(s1.layers[0]?.prefetch?.['background'], 'off');

      // A relative mountpoint is the caller's; the request's own flags reach the mount.
      const r2 = await runCli(['mount', '--root', root, '--layer', '-1', '--no-prefetch', '--no-background-fetch', fx.ref('zstdchunked'), 'b'], { cwd: dir });
      assert.equal(r2.code, 0, r2.stderr);
      const s2 = statusOf(m2);
      assert.equal(s2.pid, svc.pid);
      assert.equal(s2.layers[0]?.prefetch?.['landmark'], 'off');
      assert.equal(s2.layers[0]?.prefetch?.['background'], 'off');

      // From Node, without the launcher: the CLI's own hand-over.
      const r3 = await runCli(['mount', '--daemon', '--root', root, fx.ref('esgz'), m3], { node: true });
      assert.equal(r3.code, 0, r3.stderr);
      assert.equal(statusOf(m3).pid, svc.pid);

      const listed = await callService(svc.socket, 'GET', '/v1/mounts');
      assert.deepEqual((listed?.body as Array<{ mountpoint: string }>).map((m) => m.mountpoint).sort(), [m1, m2, m3]);
      const st = await runCli(['status', m1]);
      assert.equal(st.code, 0, st.stderr);
      assert.match(st.stdout.toString(), new RegExp(`service pid ${svc.pid}`));

      // Errors name the problem and the service serves on.
      const busy = await runCli(['mount', '--daemon', '--root', root, fx.ref('esgz'), m1]);
      assert.notEqual(busy.code, 0);
      assert.match(busy.stderr, /already a mount of this service/);
      const missing = await runCli(['mount', '--daemon', '--root', root, `${fx.reg.host}/fixture/nope:latest`, join(dir, 'nowhere')]);
      assert.notEqual(missing.code, 0);
      assert.match(missing.stderr, /nope/);
      const badFlag = await runCli(['mount', '--root', root, '--no-such-flag', fx.ref('esgz'), m1]);
      assert.equal(badFlag.code, 2, badFlag.stderr);
      assert.match(badFlag.stderr, /Unknown arguments: such-flag/);

      // unmount: the mount goes, the service stays.
      const u = await runCli(['unmount', m1]);
      assert.equal(u.code, 0, u.stderr);
      assert.deepEqual(stargzfsMountsUnder(dir).sort(), [m2, m3]);
      assert.ok(existsSync(svc.socket));

      // SIGTERM: every mount goes, the process exits 0, the socket is removed.
      assert.equal(await svc.stop(), 0, svc.log());
      assert.deepEqual(stargzfsMountsUnder(dir), []);
      assert.equal(existsSync(join(root, 'serve.sock')), false);
      svc = undefined;

      // Without a service, mount runs on its own again.
      const alone = await runCli(['mount', '--daemon', '--root', root, fx.ref('esgz'), m1]);
      assert.equal(alone.code, 0, alone.stderr);
      assert.equal(statusOf(m1).service, undefined);
      assert.equal((await runCli(['unmount', m1])).code, 0);
    } finally {
      await svc?.stop();
      detachStargzfsMounts(dir);
    }
  });
});
