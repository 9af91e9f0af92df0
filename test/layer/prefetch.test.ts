// Landmark prefetch on the reference converter's esgz-prefetch image: the prioritized
// files arrive before they are asked for; the rest of the layer does not.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withImage } from '../../src/cli/context.js';
import { resolvePath, isDir } from '../../src/toc/view.js';
import { S_IFMT, S_IFREG } from '../../src/toc/inode-db.js';
import { fixturesDir } from '../helpers/paths.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { entries } from '../helpers/entries.js';
import { serveImage } from '../helpers/served-image.js';
import { bytes, rng } from '../helpers/random.js';

describe('landmark prefetch', () => {
  it('esgz-prefetch: after prefetch, every prioritized file reads with no request; other files still need theirs', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const recorded = readFileSync(join(fixturesDir(), 'source', 'record.jsonl'), 'utf8')
        .split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { path: string }).path);
      await withImage(testConfig(dir), `oci:${join(fixturesDir(), 'esgz-prefetch', 'oci')}`, async ({ image }) => {
        const results = await image.prefetch();
        assert.equal(results.length, 3);
        assert.ok(results.every((r) => r.corrupt === 0));
        assert.ok((results[0]?.cached ?? 0) > 0, JSON.stringify(results));
        const layer0 = image.layers[0]?.row;
        assert.ok(layer0);
        assert.ok((results[0]?.regionBytes ?? 0) <= layer0.prefetch_size, 'only the landmark region was fetched');
        const view = image.layer('0');
        const counters = image.reader.stats(layer0.id);
        const before = counters.requests;
        let read = 0;
        for (const p of recorded) {
          let node;
          try {
            node = resolvePath(view, p);
          } catch {
            continue; // not in layer 0, or left in place by the converter (implicit parents)
          }
          if (isDir(node) || (node.mode & S_IFMT) !== S_IFREG || p.startsWith('implicit/')) continue;
          await image.reader.read(node, p, 0, node.size);
          read++;
        }
        assert.ok(read >= 3, `read ${read} prioritized files`);
        assert.equal(counters.requests, before, 'no request for a prioritized file');
        const other = resolvePath(view, 'files/size-65537');
        await image.reader.read(other, 'files/size-65537', 0, other.size);
        assert.ok(counters.requests > before, 'a file outside the region is fetched on demand');
      });
    } finally {
      cleanup();
    }
  });

  it('members shared through innerOffset: one decode caches every chunk in them', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const specs = Array.from({ length: 20 }, (_, i) => ({ name: `small/f${i}`, body: `small file ${i}\n`.repeat(i + 1) }));
      await buildEstargzImage(join(dir, 'img'), [entries([{ name: 'small/', type: 'dir' }, ...specs])], {
        minChunkSize: 4000,
        prioritized: specs.map((s) => s.name),
      });
      await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, async ({ image }) => {
        const [r] = await image.prefetch();
        assert.equal(r?.cached, 20);
        assert.ok((r?.chunks ?? 0) === 20);
        const view = image.merged();
        const layer = image.layers[0]?.row;
        assert.ok(layer);
        const before = image.reader.stats(layer.id).requests;
        for (const s of specs) assert.equal((await image.reader.read(resolvePath(view, s.name), s.name, 0, 1000)).toString(), s.body);
        assert.equal(image.reader.stats(layer.id).requests, before);
      });
    } finally {
      cleanup();
    }
  });

  it('a file at the front of the region is served as soon as its bytes are in, while the rest of the one large read is still on the wire', { timeout: 30_000 }, async () => {
    const big = bytes(rng(9), 6 << 20);
    const served = await serveImage('prefetch/stream', [entries([
      { name: 'first.txt', body: 'needed first\n' }, { name: 'big.bin', body: big }, { name: 'later.txt', body: 'not prioritized\n' },
    ])], { chunkSize: 1 << 20, compressionLevel: 1, prioritized: ['first.txt', 'big.bin'] });
    let release = (): void => undefined;
    const until = new Promise<void>((res) => void (release = res));
    try {
      await withImage(testConfig(join(served.dir, 'root')), served.ref, async ({ image }) => {
        const layer = image.layers[0]?.row;
        assert.ok(layer && layer.prefetch_size > 6 << 20, 'the region holds both files');
        served.proxy.reset();
        // The region's one read stalls after its first 2 MiB: first.txt and big.bin's first chunk.
        served.proxy.inject({ kind: 'hold', afterBytes: 2 << 20, until }, 1, /\/blobs\//, { rangedOnly: true });
        const prefetching = image.prefetch();
        let prefetched = false;
        void prefetching.then(() => void (prefetched = true), () => undefined);
        const view = image.merged();
        const first = await image.reader.read(resolvePath(view, 'first.txt'), 'first.txt', 0, 100);
        assert.equal(first.toString(), 'needed first\n');
        const head = await image.reader.read(resolvePath(view, 'big.bin'), 'big.bin', 0, 1 << 20);
        assert.ok(head.equals(big.subarray(0, 1 << 20)));
        assert.equal(prefetched, false, 'served while the region is still arriving');
        assert.equal(served.proxy.stats.ranges.length, 1, `joined the region's read: ${served.proxy.stats.ranges.join(' ')}`);
        release();
        const [r] = await prefetching;
        assert.equal(r?.corrupt, 0);
        const all = await image.reader.read(resolvePath(view, 'big.bin'), 'big.bin', 0, big.length);
        assert.ok(all.equals(big));
        assert.equal(served.proxy.stats.ranges.length, 1, 'the rest came with the same read');
      });
    } finally {
      release();
      await served.stop();
    }
  });
});
