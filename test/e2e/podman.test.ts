// podman for real: Debian's podman 4.3 with `stargzfs serve --store DIR` as its additional
// layer store (`overlay.additionallayerstore=DIR:ref`), a real registry (behind a counting
// proxy), and a three-layer image (eStargz, plain gzip, eStargz with a whiteout) whose
// binary runs under runc. `podman run` pulls the eStargz layers from the store (mounted
// lazily) and only the plain one from the registry, reads the right bytes while a small
// fraction of the image is fetched; the store counts podman's uses of its layers (up on
// pull, down on rmi, then the layer is let go); a restart of the service keeps the layers
// podman recorded from the store readable; an image of plain gzip layers only is pulled by
// podman itself (the store answers ENOENT) and runs as well.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { withClient } from '../helpers/client.js';
import { tempDir } from '../helpers/tmp.js';
import { buildRunnableImage, fnv1a64, type RunnableImage } from '../helpers/runnable-image.js';
import { startPodman, type TestPodman } from '../helpers/podman.js';
import { detachStargzfsMounts, startService, type TestService } from '../helpers/service.js';
import { entry } from '../helpers/entries.js';
import { sha256 } from '../helpers/blobs.js';
import { pushLayoutImage } from '../../src/http/push.js';
import { writeOciImage } from '../../src/http/oci-layout-writer.js';
import { OCI_LAYER_GZIP } from '../../src/http/media-types.js';
import { encodeTar } from '../../src/toc/tar.js';
import { callService } from '../../src/service/client.js';

interface StoreLayer {
  digest: string;
  refs: string[];
  uses: number;
  mounted: boolean;
  mountpoint: string;
}

/** The store's layers as GET /v1/status shows them. */
async function storeLayers(svc: TestService): Promise<StoreLayer[]> {
  const answer = await callService(svc.socket, 'GET', '/v1/status');
  assert.ok(answer !== undefined && answer.status === 200, `status: ${JSON.stringify(answer)}`);
  const store = (answer.body as { store?: { dir: string; layers: StoreLayer[] } }).store;
  assert.ok(store !== undefined && Array.isArray(store.layers), `no store in the status: ${JSON.stringify(answer.body)}`);
  return store.layers;
}

/** Polls the store's layers until `ok` holds (at most `ms`); fails with the last status. */
async function waitForLayers(svc: TestService, ok: (layers: StoreLayer[]) => boolean, what: string, ms = 5_000): Promise<StoreLayer[]> {
  const deadline = Date.now() + ms;
  for (;;) {
    const layers = await storeLayers(svc);
    if (ok(layers)) return layers;
    if (Date.now() > deadline) assert.fail(`${what} within ${ms} ms: ${JSON.stringify(layers)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const layerOf = (layers: StoreLayer[], digest: string): StoreLayer | undefined => layers.find((l) => l.digest === digest);
const inUse = (layers: StoreLayer[], digests: readonly string[]): boolean =>
  digests.every((d) => (layerOf(layers, d)?.uses ?? 0) >= 1 && layerOf(layers, d)?.mounted === true);
const released = (layers: StoreLayer[], digests: readonly string[]): boolean => digests.every((d) => (layerOf(layers, d)?.uses ?? 0) === 0);
const mountedDigests = (layers: StoreLayer[]): string[] => layers.filter((l) => l.mounted).map((l) => l.digest);

interface PlainImage {
  readonly layout: string;
  readonly manifestDigest: string;
  readonly layerDigests: readonly string[];
  readonly expected: ReadonlyArray<{ path: string; line: string }>;
}

/** Two plain gzip layers (no TOC), the second with a whiteout, around the same `check` binary. */
async function buildPlainImage(dir: string, check: Buffer): Promise<PlainImage> {
  const base = Buffer.from('plain image base\n');
  const top = Buffer.from('plain image top\n');
  const l0 = gzipSync(encodeTar([
    entry({ name: 'bin/' }), entry({ name: 'etc/' }), entry({ name: 'data/' }), entry({ name: 'tmp/', mode: 0o1777 }),
    entry({ name: 'proc/' }), entry({ name: 'sys/' }), entry({ name: 'dev/' }),
    entry({ name: 'bin/check', body: check, mode: 0o755 }),
    entry({ name: 'etc/base.txt', body: base }),
    entry({ name: 'data/gone.txt', body: 'deleted by the top layer\n' }),
  ]));
  const l1 = gzipSync(encodeTar([
    entry({ name: 'etc/' }), entry({ name: 'data/' }),
    entry({ name: 'etc/top.txt', body: top }),
    entry({ name: 'data/.wh.gone.txt' }),
  ]));
  const layers = [l0, l1].map((blob) => ({ blob, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(blob)) }));
  const layout = join(dir, 'oci-plain');
  const manifest = await writeOciImage(layout, { layers, refName: 'latest' });
  return {
    layout,
    manifestDigest: manifest.digest,
    layerDigests: layers.map((l) => sha256(l.blob)),
    expected: [
      { path: '/etc/base.txt', line: `/etc/base.txt ${base.length} ${fnv1a64(base)}` },
      { path: '/etc/top.txt', line: `/etc/top.txt ${top.length} ${fnv1a64(top)}` },
      { path: '/data/gone.txt', line: '/data/gone.txt missing' },
    ],
  };
}


describe('podman with stargzfs as its additional layer store (real podman, runc, registry)', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let img: RunnableImage;
  let plain: PlainImage;
  let work: { dir: string; cleanup: () => void };
  let ref: string;
  let plainRef: string;

  before(async () => {
    work = tempDir('stargzfs-podman-');
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    img = await buildRunnableImage(work.dir);
    // buildRunnableImage compiled `check` to <dir>/check: the plain image runs the same binary.
    plain = await buildPlainImage(work.dir, readFileSync(join(work.dir, 'check')));
    await withClient(async (client) => {
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'test/run' }, img.layout, img.manifestDigest, 'latest');
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'test/plain' }, plain.layout, plain.manifestDigest, 'latest');
    });
    // Fully qualified: podman hands the store this very reference (base64 in the path).
    ref = `${proxy.host}/test/run:latest`;
    plainRef = `${proxy.host}/test/plain:latest`;
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    work?.cleanup();
  });

  it('podman run reads the eStargz layers from the store lazily, the store counts uses, a restart keeps them readable, plain gzip images pull normally', async (t) => {
    const root = join(work.dir, 'sgz-root');
    const store = join(work.dir, 'store');
    mkdirSync(root, { recursive: true });
    // podman refuses to start if the store's directory does not exist.
    mkdirSync(store, { recursive: true });
    const serveArgs = ['--store', store, '--store-grace-ms', '200', '--no-background-fetch', '--log-level', 'info'];
    const [esgz0, plainLayer, esgz2] = img.layerDigests as [string, string, string];
    const lazy = [esgz0, esgz2];
    const paths = img.expected.map((e) => e.path);
    const want = img.expected.map((e) => e.line);
    let svc: TestService | undefined;
    let pd: TestPodman | undefined;
    try {
      svc = await startService(root, serveArgs);
      pd = startPodman(join(work.dir, 'podman'), store);
      proxy.reset();

      // Pulled through the store: the right bytes, a small fraction of the image fetched.
      const out = await pd.run(ref, ['/bin/check', ...paths]);
      assert.deepEqual(out.trim().split('\n'), want);
      const fetched = proxy.stats.blobBytes;
      assert.ok(fetched < img.totalBytes * 0.2, `fetched ${fetched} of ${img.totalBytes} bytes`);
      t.diagnostic(`podman run through the store fetched ${fetched} of the image's ${img.totalBytes} layer bytes (${(100 * fetched / img.totalBytes).toFixed(1)} %)`);

      // While podman has the image, it uses the eStargz layers; the plain one it pulled itself.
      let layers = await storeLayers(svc);
      assert.ok(inUse(layers, lazy), `eStargz layers in use and mounted: ${JSON.stringify(layers)}`);
      assert.ok(lazy.every((d) => layerOf(layers, d)?.refs.includes(ref) === true), `looked up under ${ref}: ${JSON.stringify(layers)}`);
      assert.ok(!mountedDigests(layers).includes(plainLayer), `plain gzip layer not mounted: ${JSON.stringify(layers)}`);

      // rmi releases them; after the grace the store lets them go.
      await pd.podman(['rmi', ref]);
      await waitForLayers(svc, (l) => released(l, lazy), 'uses back to 0 after rmi');
      await waitForLayers(svc, (l) => lazy.every((d) => layerOf(l, d)?.mounted !== true), 'released layers unmounted after the grace');

      // Pulled again through the store, then the service restarts with the image in podman's storage.
      assert.deepEqual((await pd.run(ref, ['/bin/check', ...paths])).trim().split('\n'), want);
      layers = await storeLayers(svc);
      assert.ok(inUse(layers, lazy), `eStargz layers in use again: ${JSON.stringify(layers)}`);
      // kill -9: the store and layer mounts it leaves are dead until the new service clears them.
      await svc.kill();
      svc = undefined;
      svc = await startService(root, serveArgs);

      // No pull: podman mounts the layers it recorded from the store before the restart.
      const again = await pd.run(ref, ['/bin/check', ...paths], { runArgs: ['--pull=never'] });
      assert.deepEqual(again.trim().split('\n'), want);
      layers = await storeLayers(svc);
      assert.ok(inUse(layers, lazy), `uses kept across the restart: ${JSON.stringify(layers)}`);

      // Plain gzip only: the store answers ENOENT, podman pulls and runs it itself.
      const plainOut = await pd.run(plainRef, ['/bin/check', ...plain.expected.map((e) => e.path)]);
      assert.deepEqual(plainOut.trim().split('\n'), plain.expected.map((e) => e.line));
      layers = await storeLayers(svc);
      assert.deepEqual(mountedDigests(layers).filter((d) => plain.layerDigests.includes(d)), [], JSON.stringify(layers));

      await pd.podman(['rmi', ref, plainRef]);
      await waitForLayers(svc, (l) => released(l, lazy), 'uses back to 0 after rmi (restarted service)');
    } finally {
      await pd?.cleanup();
      await svc?.stop();
      detachStargzfsMounts(work.dir);
    }
  });
});
