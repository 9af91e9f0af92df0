// Real FUSE mounts (as root): every fixture, from its OCI layout and pushed to a real
// registry, walked by the fixtures' own compare-tree.py against EXPECTED.tsv; the same
// images mounted layer by layer and stacked with real overlayfs; the status file, the
// read-only refusals, a dead mount left by a killed server, and --daemon's exit codes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FIXTURE_VARIANTS, fixtureManifest, fixturesDir, launcherPath } from '../helpers/paths.js';
import { fixtureRegistry, type FixtureRegistry } from '../helpers/fixture-registry.js';
import { runCli } from '../helpers/cli.js';
import { startFaultProxy } from '../helpers/fault-proxy.js';
import { compareTree, forceUnmount, mountDaemon, type TestMount } from '../helpers/mount.js';

const VARIANTS = [...FIXTURE_VARIANTS, 'gzip'];
const layersOf = (v: string): number =>
  (JSON.parse(readFileSync(join(fixturesDir(), v, 'oci', 'blobs', ...fixtureManifest(v).split(':')), 'utf8')) as { layers: unknown[] }).layers.length;

describe('stargzfs mount (real FUSE, real overlayfs)', () => {
  let fx: FixtureRegistry;
  const fresh = (name: string): string => fx.fresh(name);

  before(async () => {
    fx = await fixtureRegistry(VARIANTS);
  });
  after(async () => {
    await fx?.stop();
  });

  for (const v of VARIANTS) {
    for (const from of ['oci', 'registry'] as const) {
      it(`${v} from ${from === 'oci' ? 'its OCI layout' : 'a registry'}: the mounted tree equals EXPECTED.tsv`, async () => {
        const src = from === 'oci' ? `oci:${join(fixturesDir(), v, 'oci')}` : fx.ref(v);
        let m: TestMount | undefined;
        try {
          m = await mountDaemon(['--root', fresh('root'), src], fresh('mnt'));
          const cmp = compareTree(m.mountpoint, join(fixturesDir(), v, 'EXPECTED.tsv'));
          assert.ok(cmp.ok, cmp.report);
          assert.match(cmp.report, / 0 failed/);
        } finally {
          await m?.stop();
        }
      });
    }
  }

  const stacks: Array<{ v: string; userxattr: boolean }> = [
    { v: 'esgz', userxattr: false }, { v: 'zstdchunked', userxattr: false }, { v: 'gzip', userxattr: false }, { v: 'esgz', userxattr: true },
  ];
  for (const { v, userxattr } of stacks) {
    it(`${v}: each layer mounted with --layer${userxattr ? ' --userxattr' : ''} and stacked with overlayfs${userxattr ? ' -o userxattr' : ''} equals the merged tree`, async () => {
      const root = fresh('root');
      const src = `oci:${join(fixturesDir(), v, 'oci')}`;
      const mounts: TestMount[] = [];
      const ov = fresh('overlay');
      mkdirSync(ov, { recursive: true });
      let overlayMounted = false;
      try {
        for (let i = 0; i < layersOf(v); i++) {
          mounts.push(await mountDaemon(['--root', root, '--layer', String(i), ...(userxattr ? ['--userxattr'] : []), src], fresh(`layer${i}`)));
        }
        const lower = mounts.map((m) => m.mountpoint).reverse().join(':');
        execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `${userxattr ? 'userxattr,' : ''}lowerdir=${lower}`, ov]);
        overlayMounted = true;
        const cmp = compareTree(ov, join(fixturesDir(), v, 'EXPECTED.tsv'));
        assert.ok(cmp.ok, cmp.report);
      } finally {
        if (overlayMounted) execFileSync('umount', [ov]);
        for (const m of mounts) await m.stop();
      }
    });
  }

  it('status file and command; writes refused with EROFS; unmount waits for the server', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), `oci:${join(fixturesDir(), 'esgz', 'oci')}`], fresh('mnt'));
      const status = JSON.parse(readFileSync(join(m.mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { layers: Array<{ format: string; verified: boolean; lazy: boolean; totalBytes: number }> };
      assert.equal(status.layers.length, 3);
      assert.ok(status.layers.every((l) => l.format === 'eStargz' && l.verified && l.lazy && l.totalBytes > 0));
      assert.ok(!execFileSync('ls', ['-a', m.mountpoint], { encoding: 'utf8' }).includes('.stargzfs'), 'the status directory is not listed');
      const human = await runCli(['status', m.mountpoint]);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout.toString(), /layer 0 sha256:\S+\s+eStargz/);
      assert.throws(() => writeFileSync(join(m?.mountpoint ?? '', 'new-file'), 'x'), { code: 'EROFS' });
      assert.throws(() => mkdirSync(join(m?.mountpoint ?? '', 'new-dir')), { code: 'EROFS' });
      const pid = m.pid;
      await m.stop();
      assert.throws(() => process.kill(pid, 0), 'the server has exited');
    } finally {
      await m?.stop();
    }
  });

  it('a mountpoint left dead by a killed server is cleared and mounted again', async () => {
    const mnt = fresh('mnt');
    const root = fresh('root');
    const src = `oci:${join(fixturesDir(), 'esgz', 'oci')}`;
    let first: TestMount | undefined;
    let second: TestMount | undefined;
    try {
      first = await mountDaemon(['--root', root, src], mnt);
      // The supervisor first (it would start another server), then the server: nobody holds the mount.
      process.kill(first.supervisorPid ?? 0, 'SIGKILL');
      process.kill(first.pid, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      assert.throws(() => statSync(mnt), { code: 'ENOTCONN' });
      second = await mountDaemon(['--root', root, src], mnt);
      assert.ok(compareTree(mnt, join(fixturesDir(), 'esgz', 'EXPECTED.tsv')).ok);
    } finally {
      await second?.stop();
      if (first !== undefined) forceUnmount(mnt, first.pid, first.supervisorPid ?? undefined);
    }
  });

  it('a mountpoint a live stargzfs mount serves is refused (exit 2, SGZ_MOUNTPOINT_BUSY), and the mount there serves on', async () => {
    const mnt = fresh('mnt');
    const src = `oci:${join(fixturesDir(), 'esgz', 'oci')}`;
    let first: TestMount | undefined;
    try {
      first = await mountDaemon(['--root', fresh('root'), src], mnt);
      const again = await runCli(['mount', '--root', fresh('root'), '--daemon', src, mnt]);
      assert.equal(again.code, 2, again.stderr);
      assert.match(again.stderr, /served there already.*SGZ_MOUNTPOINT_BUSY/s);
      const there = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === mnt);
      assert.equal(there.length, 1, 'one mount there, not two stacked');
      assert.equal((JSON.parse(readFileSync(join(mnt, '.stargzfs', 'status.json'), 'utf8')) as { pid: number }).pid, first.pid, 'the first server serves it still');
      assert.ok(compareTree(mnt, join(fixturesDir(), 'esgz', 'EXPECTED.tsv')).ok);
    } finally {
      await first?.stop();
    }
  });

  // Both launchers: the shell one people run, and the bundle's own under node.
  for (const launcher of ['shell', 'node'] as const) {
    const viaNode = launcher === 'node';
    it(`--daemon (${launcher} launcher): exit 0 once serving, the server's pid and log named, the server detached`, async () => {
      const mnt = fresh('mnt');
      const root = fresh('root');
      mkdirSync(mnt, { recursive: true });
      let pid: number | undefined;
      try {
        const r = await runCli(['--root', root, '--log-level', 'info', 'mount', '--daemon', `oci:${join(fixturesDir(), 'esgz', 'oci')}`, mnt], { node: viaNode });
        assert.equal(r.code, 0, r.stderr);
        const said = /mounted at (.+) \(pid ([0-9]+), log (.+)\)/.exec(r.stderr);
        assert.ok(said !== null, r.stderr);
        pid = Number(said[2]);
        assert.equal(said[1], mnt);
        assert.equal((JSON.parse(readFileSync(join(mnt, '.stargzfs', 'status.json'), 'utf8')) as { pid: number }).pid, pid);
        // The server's output went to its log, not to the launcher's stderr.
        assert.match(readFileSync(said[3] as string, 'utf8'), /"msg":"mounted"/);
        assert.doesNotMatch(r.stderr, /"msg":/);
        // Its own session: a signal to the launcher's process group does not reach it.
        assert.equal(execFileSync('ps', ['-o', 'sid=', '-p', String(pid)]).toString().trim(), String(pid));
        assert.ok(compareTree(mnt, join(fixturesDir(), 'esgz', 'EXPECTED.tsv')).ok);
        const u = await runCli(['unmount', mnt]);
        assert.equal(u.code, 0, u.stderr);
      } finally {
        forceUnmount(mnt, pid);
      }
    });

    it(`--daemon (${launcher} launcher) fails with the reason and the command's exit code when the image cannot be mounted`, async () => {
      const mnt = fresh('mnt');
      mkdirSync(mnt, { recursive: true });
      try {
        const r = await runCli(['--root', fresh('root'), 'mount', '--daemon', `${fx.ref('esgz').replace(/:[^:/]+$/, '')}-missing:latest`, mnt], { node: viaNode });
        assert.equal(r.code, 7, r.stderr);
        assert.match(r.stderr, /did not start:\n(.*\n)*.*HTTP 404/);
        assert.throws(() => execFileSync('mountpoint', ['-q', mnt]));
      } finally {
        forceUnmount(mnt);
      }
    });
  }

  it("a mount's first requests go out while the CLI loads and are used, not sent again; a failed one is sent again", async () => {
    const proxy = await startFaultProxy(fx.reg.host);
    const layers = layersOf('esgz');
    const warmRoot = fresh('root');
    try {
      // cold: manifest and every TOC early; failed: the early manifest gets a 500 and the
      // client asks again; warm: meta.db has every layer, so only the manifest goes early.
      for (const round of ['cold', 'failed', 'warm'] as const) {
        proxy.reset();
        if (round === 'failed') proxy.inject({ kind: 'status', status: 500 }, 1, /\/manifests\//);
        const root = round === 'failed' ? fresh('root') : warmRoot;
        const mnt = fresh('mnt');
        mkdirSync(mnt, { recursive: true });
        let pid: number | undefined;
        try {
          const r = await runCli(['--root', root, '--plain-http', '--log-level', 'debug', 'mount', '--daemon', '--no-prefetch', '--no-learned-prefetch', '--no-background-fetch', `${proxy.host}/fixture/esgz:latest`, mnt]);
          assert.equal(r.code, 0, r.stderr);
          pid = Number(/pid ([0-9]+)/.exec(r.stderr)?.[1]);
          const log = readFileSync(/log (.+)\)/.exec(r.stderr)?.[1] as string, 'utf8').split('\n').filter((l) => l.includes(`"pid":${pid}`));
          const used = log.filter((l) => l.includes('answered by the request sent early'));
          const said = `${round}: ${log.filter((l) => /early|resolv|manifest/.test(l)).join('\n')}`;
          assert.equal(used.filter((l) => l.includes('/manifests/')).length, round === 'failed' ? 0 : 1, said);
          assert.equal(used.filter((l) => l.includes('/blobs/')).length, round === 'cold' ? layers : 0, said);
          // Each sent once: the manifest (twice when the first failed), and a TOC read per layer not indexed yet.
          assert.equal(proxy.stats.ranges.length, round === 'warm' ? 0 : layers, `${round}: ${proxy.stats.ranges.join(' ')}`);
          assert.equal(proxy.stats.requests, (round === 'failed' ? 2 : 1) + (round === 'warm' ? 0 : layers), round);
          // Read asynchronously: the proxy runs in this process (compare-tree.py would block it).
          assert.ok((await readdir(mnt)).includes('dup'));
          assert.ok((await readFile(join(mnt, 'dup', 'twice'))).length > 0);
        } finally {
          const u = await runCli(['unmount', mnt]);
          if (u.code !== 0) forceUnmount(mnt, pid);
        }
      }
    } finally {
      await proxy.stop();
    }
  });

  it('--daemon through the shell launcher: a server that dies without a word is an error, with what it printed', () => {
    const mnt = fresh('mnt');
    mkdirSync(mnt, { recursive: true });
    // A "node" that prints a crash and exits: no status line ever comes.
    const fake = join(fresh('bin'), 'node');
    mkdirSync(join(fake, '..'), { recursive: true });
    writeFileSync(fake, '#!/bin/sh\necho "first line of a crash" >&2\necho "last line of a crash" >&2\nexit 9\n', { mode: 0o755 });
    const r = spawnSync(launcherPath, ['mount', '--daemon', 'oci:/nowhere:x', mnt], { env: { ...process.env, STARGZFS_NODE: fake } });
    assert.equal(r.status, 1);
    assert.match(r.stderr.toString(), /first line of a crash\nlast line of a crash\nstargzfs: the mount's server ended before it served/);
  });

  it('--daemon with arguments the plain reader leaves to the full CLI still works through the shell launcher', async () => {
    const r = await runCli(['mount', '--daemon', '--help']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /serve the image lazily/);
  });
});
