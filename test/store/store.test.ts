// The additional layer store's contract, as containers-storage 1.43 uses it, without
// podman: `stargzfs serve --store DIR` over a real registry holding the fixtures. Lookups
// of `<base64 ref>/<digest>/{diff,info,blob}` resolve the image and mount the layer;
// overlayfs stacks the three `diff` paths (symlinks followed, as podman's lowerdirs are)
// into the expected tree; `info` is the layer record with the config's diff_id; `blob`
// is the layer's bytes; bad names, unknown layers and plain gzip layers answer ENOENT
// and the store serves on; `use` and rmdir count (ENOENT both); a released layer is let
// go after the grace and mounted again when followed; a restart mounts the layers in use.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, readlinkSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureRegistry, type FixtureRegistry } from '../helpers/fixture-registry.js';
import { fixturesDir, fixtureManifest, launcherPath } from '../helpers/paths.js';
import { compareTree } from '../helpers/mount.js';
import { detachStargzfsMounts, startService, type TestService } from '../helpers/service.js';
import { callService } from '../../src/service/client.js';
import { nameOfRef } from '../../src/store/names.js';

interface StoreLayer { digest: string; refs: string[]; uses: number; mounted: boolean; mountpoint: string; notLazy?: string }

function blobJson(variant: string, digest: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(fixturesDir(), variant, 'oci', 'blobs', 'sha256', digest.slice(7)), 'utf8')) as Record<string, unknown>;
}

/** The fixture's layers and diff_ids, from its OCI layout. */
function fixtureLayers(variant: string): Array<{ digest: string; size: number; mediaType: string; diffId: string; annotations?: Record<string, string> }> {
  const manifest = blobJson(variant, fixtureManifest(variant)) as { config: { digest: string }; layers: Array<{ digest: string; size: number; mediaType: string; annotations?: Record<string, string> }> };
  const config = blobJson(variant, manifest.config.digest) as { rootfs: { diff_ids: string[] } };
  return manifest.layers.map((l, i) => ({ ...l, diffId: config.rootfs.diff_ids[i] as string }));
}

async function storeLayers(svc: TestService): Promise<StoreLayer[]> {
  const answer = await callService(svc.socket, 'GET', '/v1/status');
  return (answer?.body as { store: { layers: StoreLayer[] } }).store.layers;
}

async function until(svc: TestService, ok: (l: StoreLayer[]) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const layers = await storeLayers(svc);
    if (ok(layers)) return;
    if (Date.now() > deadline) assert.fail(`${what}: ${JSON.stringify(layers)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The errno code a filesystem call failed with, or 'ok'. */
function codeOf(fn: () => unknown): string {
  try {
    fn();
    return 'ok';
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
}

describe('stargzfs serve --store (the additional layer store, real FUSE, overlayfs, registry)', () => {
  let fx: FixtureRegistry;
  before(async () => {
    fx = await fixtureRegistry(['esgz', 'zstdchunked', 'gzip']);
  });
  after(async () => {
    await fx?.stop();
  });

  it('serves diff, info and blob of each eStargz layer; overlayfs over the diff paths is the image; ENOENT for what it cannot serve', async () => {
    const root = fx.fresh('root');
    const store = fx.fresh('store');
    const ov = fx.fresh('overlay');
    mkdirSync(ov, { recursive: true });
    let svc: TestService | undefined;
    let overlayMounted = false;
    try {
      // With containerd's snapshotter beside it, in one service.
      const snapDir = fx.fresh('snap');
      mkdirSync(snapDir, { recursive: true });
      const snapSock = join(snapDir, 'snapshotter.sock');
      svc = await startService(root, ['--store', store, '--snapshotter-address', snapSock, '--no-background-fetch']);
      const both = (await callService(svc.socket, 'GET', '/v1/status'))?.body as { snapshotter?: { address: string }; store?: { dir: string } };
      assert.equal(both.snapshotter?.address, snapSock);
      assert.equal(both.store?.dir, store);
      assert.ok(existsSync(snapSock));
      const refDir = join(store, nameOfRef(fx.ref('esgz')));
      const layers = fixtureLayers('esgz');
      for (const l of layers) {
        const dir = join(refDir, l.digest);
        assert.ok(statSync(join(dir, 'diff')).isDirectory(), `${l.digest}/diff is a directory`);
        assert.ok(lstatSync(join(dir, 'diff')).isSymbolicLink());
        assert.ok(readlinkSync(join(dir, 'diff')).startsWith(join(root, 'layer-store', 'layers')));
        assert.deepEqual(JSON.parse(readFileSync(join(dir, 'info'), 'utf8')), {
          'compressed-diff-digest': l.digest, 'compressed-size': l.size, 'diff-digest': l.diffId, 'diff-size': Number(l.annotations?.['io.containers.estargz.uncompressed-size'] ?? 0), compression: 2,
        });
        const blob = readFileSync(join(dir, 'blob'));
        assert.equal(`sha256:${createHash('sha256').update(blob).digest('hex')}`, l.digest);
        assert.deepEqual(readdirSync(dir).sort(), ['blob', 'diff', 'info']);
      }
      // podman's lowerdirs are these very paths (symlinks followed by the kernel), top layer first.
      // A digest has a colon: escaped for overlayfs's lowerdir list, as containers-storage does.
      const lower = layers.map((l) => join(refDir, l.digest, 'diff').replaceAll(':', '\\:')).reverse().join(':');
      execFileSync('mount', ['-t', 'overlay', 'overlay', '-o', `lowerdir=${lower}`, ov]);
      overlayMounted = true;
      const cmp = compareTree(ov, join(fixturesDir(), 'esgz', 'EXPECTED.tsv'));
      assert.ok(cmp.ok, cmp.report);
      execFileSync('umount', [ov]);
      overlayMounted = false;

      // zstd:chunked: compression 4 (containers-storage's zstd).
      const z = fixtureLayers('zstdchunked')[0] as { digest: string };
      const zinfo = JSON.parse(readFileSync(join(store, nameOfRef(fx.ref('zstdchunked')), z.digest, 'info'), 'utf8')) as { compression: number };
      assert.equal(zinfo.compression, 4);

      // What it cannot serve: ENOENT (podman pulls), and the store goes on serving.
      const plain = fixtureLayers('gzip')[0] as { digest: string };
      assert.equal(codeOf(() => statSync(join(store, nameOfRef(fx.ref('gzip')), plain.digest, 'diff'))), 'ENOENT');
      assert.equal(codeOf(() => statSync(join(store, 'not-base64!'))), 'ENOENT');
      assert.equal(codeOf(() => statSync(join(store, nameOfRef('UPPER/bad ref')))), 'ENOENT');
      assert.equal(codeOf(() => statSync(join(store, nameOfRef(`${fx.reg.host}/no/such:image`)))), 'ENOENT');
      assert.equal(codeOf(() => statSync(join(refDir, `sha256:${'0'.repeat(64)}`))), 'ENOENT');
      assert.equal(codeOf(() => statSync(join(refDir, 'not-a-digest'))), 'ENOENT');
      assert.ok(statSync(join(refDir, (layers[0] as { digest: string }).digest, 'diff')).isDirectory(), 'still serving');
      const status = await storeLayers(svc);
      assert.match(status.find((l) => l.digest === plain.digest)?.notLazy ?? '', /plain gzip layer without an eStargz/);
      // Writes other than podman's two are refused.
      assert.equal(codeOf(() => mkdirSync(join(refDir, 'x'))), 'EROFS');
    } finally {
      if (overlayMounted) execFileSync('umount', ['-l', ov]);
      await svc?.stop();
      detachStargzfsMounts(root);
      spawnSync('umount', ['-l', store], { stdio: 'ignore' });
    }
  });

  it('a store directory that would hide the service\'s own state is refused, naming both', async () => {
    const root = fx.fresh('root');
    const r = spawnSync(launcherPath, ['--root', root, 'serve', '--store', root, '--no-snapshotter'], { encoding: 'utf8', timeout: 30_000, env: { ...process.env, STARGZFS_NODE: process.execPath } });
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /would hide the service's own .*layer-store/);
  });

  it('counts use and release (ENOENT both), lets a released layer go after the grace, mounts it again when followed, and again after a restart', async () => {
    const root = fx.fresh('root');
    const store = fx.fresh('store');
    const args = ['--store', store, '--store-grace-ms', '300', '--no-snapshotter', '--no-background-fetch'];
    let svc: TestService | undefined;
    try {
      svc = await startService(root, args);
      const refDir = join(store, nameOfRef(fx.ref('esgz')));
      const [l0, l1] = fixtureLayers('esgz') as unknown as [{ digest: string }, { digest: string }];
      const dir0 = join(refDir, l0.digest);
      assert.ok(statSync(join(dir0, 'diff')).isDirectory());
      // podman's use: os.Create(<layer>/use) must fail with ENOENT, twice = two uses.
      assert.equal(codeOf(() => closeSync(openSync(join(dir0, 'use'), 'w'))), 'ENOENT');
      assert.equal(codeOf(() => closeSync(openSync(join(dir0, 'use'), 'w'))), 'ENOENT');
      await until(svc, (ls) => ls.find((l) => l.digest === l0.digest)?.uses === 2, 'two uses');
      // Unused layers (l1 was mounted ahead) are let go after the grace; used ones stay.
      await until(svc, (ls) => ls.find((l) => l.digest === l1.digest)?.mounted === false, 'the unused layer let go');
      assert.equal((await storeLayers(svc)).find((l) => l.digest === l0.digest)?.mounted, true);
      assert.equal(codeOf(() => rmdirSync(dir0)), 'ENOENT');
      await new Promise((r) => setTimeout(r, 600));
      assert.equal((await storeLayers(svc)).find((l) => l.digest === l0.digest)?.mounted, true, 'one use left: still mounted');

      // kill -9 and a restart: the dead mounts it left are cleared, and the layer in use is
      // mounted again before anyone looks it up.
      await svc.kill();
      svc = undefined;
      assert.equal(codeOf(() => statSync(store)), 'ENOTCONN');
      svc = await startService(root, args);
      await until(svc, (ls) => ls.find((l) => l.digest === l0.digest)?.mounted === true && ls.find((l) => l.digest === l0.digest)?.uses === 1, 'the layer in use mounted again after the restart');

      // The last release: let go after the grace, its directory gone (a stale `diff` finds nothing, never an empty layer).
      const target = readlinkSync(join(dir0, 'diff'));
      assert.equal(codeOf(() => rmdirSync(dir0)), 'ENOENT');
      await until(svc, (ls) => ls.find((l) => l.digest === l0.digest)?.mounted === false && !existsSync(target), 'the released layer let go, its directory removed');
      // Followed again: mounted again.
      assert.ok(readdirSync(join(dir0, 'diff')).length > 0);
      assert.equal((await storeLayers(svc)).find((l) => l.digest === l0.digest)?.mounted, true);
    } finally {
      await svc?.stop();
      detachStargzfsMounts(root);
      // Live or dead (a killed service's), the store's mount goes; none there is no error.
      spawnSync('umount', ['-l', store], { stdio: 'ignore' });
    }
  });
});
