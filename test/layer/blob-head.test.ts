// A prioritized layer's landmark region, fetched with its TOC (layer/blob-head.ts), from
// a real registry behind the fault proxy: one request, started before the layer is
// indexed, serving the first files while the rest is on the wire; a hint the TOC does
// not confirm, or a failed head request, leaves prefetch to fetch for itself.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import { PREFETCH_SIZE_ANNOTATION } from '../../src/toc/blob.js';
import { testConfig } from '../helpers/config.js';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { bytes, rng } from '../helpers/random.js';
import type { BuildOptions } from '../../src/layer/build-image.js';
import { MAX_HEAD_BYTES } from '../../src/layer/blob-head.js';

const big = bytes(rng(11), 6 << 20);
const files = [{ name: 'first.txt', body: 'needed first\n' }, { name: 'big.bin', body: big }, { name: 'later.txt', body: 'not prioritized\n' }];
const PRIORITIZED = ['first.txt', 'big.bin'];

async function serve(name: string, opts: BuildOptions): Promise<ServedImage> {
  return serveImage(`head/${name}`, [entries(files)], { chunkSize: 1 << 20, compressionLevel: 1, ...opts });
}

type Image = Parameters<Parameters<typeof withImage>[2]>[0]['image'];

/** Serves an image, lets `arm` set the proxy's faults, opens it as a mount would, and stops the registry after. */
async function opened(name: string, opts: BuildOptions, fn: (image: Image, served: ServedImage) => Promise<void>, arm?: (served: ServedImage) => void): Promise<void> {
  const served = await serve(name, opts);
  try {
    arm?.(served);
    await withImage(testConfig(join(served.dir, 'root')), served.ref, ({ image }) => fn(image, served), { prefetching: true });
  } finally {
    await served.stop();
  }
}

/** Reads every file through the image and checks its bytes. */
async function readAll(image: Image): Promise<void> {
  const view = image.merged();
  for (const f of files) {
    const node = resolvePath(view, f.name);
    const got = await image.reader.read(node, f.name, 0, node.size);
    assert.ok(got.equals(Buffer.from(f.body)), `${f.name}: wrong bytes`);
  }
}

describe('the landmark region fetched with the TOC', () => {
  it('one request from offset 0, sent once the TOC is in; the first file is served before the region is all in; prefetch adds no request', { timeout: 30_000 }, async () => {
    const served = await serve('ahead', { prioritized: PRIORITIZED, hints: true });
    let release = (): void => undefined;
    const until = new Promise<void>((res) => void (release = res));
    try {
      // The head stalls after 2 MiB (first.txt and big.bin's first chunk) until released.
      served.proxy.inject({ kind: 'hold', afterBytes: 2 << 20, until }, 1, /\/blobs\//, { rangedOnly: true, range: /^bytes=0-/ });
      await withImage(testConfig(join(served.dir, 'root')), served.ref, async ({ image }) => {
        const layer = image.layers[0];
        assert.ok(layer?.row && layer.row.landmark === 'prefetch');
        assert.equal(layer.desc.annotations?.[PREFETCH_SIZE_ANNOTATION], String(layer.row.prefetch_size), 'the converter wrote the region size');
        const head = `bytes=0-${layer.row.prefetch_size - 1}`;
        // Sent once the TOC is in, before indexing; the proxy may take a moment to log it.
        for (let i = 0; i < 100 && !served.proxy.stats.ranges.includes(head); i++) await new Promise((r) => setTimeout(r, 10));
        assert.ok(served.proxy.stats.ranges.includes(head), `the region was asked for: ${served.proxy.stats.ranges.join(' ')}`);
        const before = served.proxy.stats.ranges.length;
        const prefetching = image.prefetch();
        let prefetched = false;
        void prefetching.then(() => void (prefetched = true), () => undefined);
        const view = image.merged();
        const first = await image.reader.read(resolvePath(view, 'first.txt'), 'first.txt', 0, 100);
        assert.equal(first.toString(), 'needed first\n');
        assert.equal(prefetched, false, 'served while the region is still arriving');
        release();
        const [r] = await prefetching;
        assert.equal(r?.corrupt, 0);
        assert.ok((r?.cached ?? 0) >= 7, JSON.stringify(r));
        await readAll(image);
        // later.txt lies past the region: the only request after opening.
        assert.equal(served.proxy.stats.ranges.length, before + 1, served.proxy.stats.ranges.slice(before).join(' '));
      }, { prefetching: true });
      // Indexed now: a second open fetches no region ahead.
      served.proxy.reset();
      await withImage(testConfig(join(served.dir, 'root')), served.ref, async () => undefined, { prefetching: true });
      assert.deepEqual(served.proxy.stats.ranges, []);
    } finally {
      release();
      await served.stop();
    }
  });

  it('a region longer than the head: prefetch reads across the head\'s end fetch only what the head does not hold', { timeout: 60_000 }, async () => {
    const huge = bytes(rng(12), 20 << 20);
    const served = await serveImage('head/long', [entries([{ name: 'first.txt', body: 'needed first\n' }, { name: 'huge.bin', body: huge }])], {
      chunkSize: 1 << 20, compressionLevel: 1, prioritized: ['first.txt', 'huge.bin'], hints: true,
    });
    try {
      await withImage(testConfig(join(served.dir, 'root')), served.ref, async ({ image }) => {
        const row = image.layers[0]?.row;
        assert.ok(row && row.prefetch_size > MAX_HEAD_BYTES, 'the region is longer than the head');
        const [r] = await image.prefetch();
        assert.equal(r?.corrupt, 0);
        // The head (16 MiB) and the rest of the region once each, with the TOC: no byte twice.
        assert.ok(served.proxy.stats.blobBytes < row.prefetch_size + (1 << 20), `${served.proxy.stats.blobBytes} bytes moved for a region of ${row.prefetch_size}`);
        const node = resolvePath(image.merged(), 'huge.bin');
        assert.ok((await image.reader.read(node, 'huge.bin', 0, node.size)).equals(huge));
      }, { prefetching: true });
    } finally {
      await served.stop();
    }
  });

  it('without the size annotation (the reference converter writes none), the region is fetched from the TOC\'s landmark, beside the import', { timeout: 30_000 }, async () => {
    await opened('from-toc', { prioritized: PRIORITIZED }, async (image, served) => {
      const layer = image.layers[0];
      assert.ok(layer?.row && layer.row.landmark === 'prefetch');
      assert.equal(layer.desc.annotations?.[PREFETCH_SIZE_ANNOTATION], undefined);
      const head = `bytes=0-${layer.row.prefetch_size - 1}`;
      for (let i = 0; i < 100 && !served.proxy.stats.ranges.includes(head); i++) await new Promise((r) => setTimeout(r, 10));
      assert.ok(served.proxy.stats.ranges.includes(head), `the region was asked for once the landmark was parsed: ${served.proxy.stats.ranges.join(' ')}`);
      const before = served.proxy.stats.ranges.length;
      const [r] = await image.prefetch();
      assert.equal(r?.corrupt, 0);
      assert.equal(served.proxy.stats.ranges.length, before, `prefetch was served by the head: ${served.proxy.stats.ranges.slice(before).join(' ')}`);
      await readAll(image);
    });
  });

  it('a size the TOC does not confirm is dropped: prefetch fetches the region itself, and every byte is right', { timeout: 30_000 }, async () => {
    await opened('lying', { prioritized: PRIORITIZED, hints: true, extraAnnotations: { [PREFETCH_SIZE_ANNOTATION]: '4096' } }, async (image, served) => {
      const before = served.proxy.stats.ranges.length;
      const [r] = await image.prefetch();
      assert.equal(r?.corrupt, 0);
      assert.ok(served.proxy.stats.ranges.length > before, 'prefetch made its own request');
      await readAll(image);
    });
  });

  it('on a layer without a landmark, a size annotation is dropped too', { timeout: 30_000 }, async () => {
    await opened('none', { hints: true, extraAnnotations: { [PREFETCH_SIZE_ANNOTATION]: String(1 << 20) } }, async (image) => {
      assert.notEqual(image.layers[0]?.row?.landmark, 'prefetch');
      await readAll(image);
    });
  });

  it('a failed head request leaves the region to prefetch', { timeout: 30_000 }, async () => {
    await opened('failed', { prioritized: PRIORITIZED, hints: true }, async (image, served) => {
      const [r] = await image.prefetch();
      assert.equal(r?.corrupt, 0);
      assert.equal(served.proxy.stats.faults, 1);
      await readAll(image);
    }, (served) => served.proxy.inject({ kind: 'status', status: 403 }, 1, /\/blobs\//, { rangedOnly: true, range: /^bytes=0-/ }));
  });

  it('commands that do not prefetch fetch no region ahead', { timeout: 30_000 }, async () => {
    const served = await serve('ls', { prioritized: PRIORITIZED, hints: true });
    try {
      await withImage(testConfig(join(served.dir, 'root')), served.ref, async () => undefined);
      assert.ok(!served.proxy.stats.ranges.some((r) => r.startsWith('bytes=0-')), served.proxy.stats.ranges.join(' '));
    } finally {
      await served.stop();
    }
  });
});
