// Reading through chunks: single-flight for concurrent reads of one chunk, counters, and
// a read racing the end of its chunk's fetch.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath, type ViewNode } from '../../src/toc/view.js';
import type { OpenImage } from '../../src/layer/image.js';
import { entries } from '../helpers/entries.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

/** An image of one file `f` of `body`, in 1 MiB chunks, opened: `fn` gets the image and the file's node. */
async function withFile(body: Buffer, fn: (image: OpenImage, node: ViewNode) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir();
  try {
    await buildEstargzImage(join(dir, 'img'), [entries([{ name: 'f', body }])], { chunkSize: 1 << 20, compressionLevel: 1 });
    await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, ({ image }) => fn(image, resolvePath(image.merged(), 'f')));
  } finally {
    cleanup();
  }
}

describe('file reader', () => {
  it('ten concurrent reads of one chunk fetch and decode it once; later reads hit the cache', async () => {
    const body = randomBytes(3 << 20);
    await withFile(body, async (image, node) => {
      const reads = await Promise.all(Array.from({ length: 10 }, (_, i) => image.reader.read(node, 'f', 1000 + i, 100)));
      reads.forEach((r, i) => assert.ok(r.equals(body.subarray(1000 + i, 1100 + i))));
      const s = image.reader.stats(node.layerId);
      assert.equal(s.requests, 1, 'one fetch for ten readers');
      assert.ok((await image.reader.read(node, 'f', 0, 3 << 20)).equals(body));
      assert.equal(s.requests, 2, 'the other two chunks, in one read: they are next to each other');
      assert.equal(s.bytesServed, 10 * 100 + (3 << 20));
      await image.reader.read(node, 'f', 0, 3 << 20);
      assert.equal(s.requests, 2, 'nothing fetched twice');
      assert.equal(s.cacheHits, 4, 'chunk 0 once in the second read, all three in the third');
    });
  });

  it('a read whose cache lookup outlasts the fetch of its chunk takes the chunk from the cache, not from the registry again', async () => {
    // One chunk: nothing past it for read-ahead to fetch, so every request counted is this chunk's.
    const body = randomBytes(512 << 10);
    await withFile(body, async (image, node) => {
      // In front of the real chunk store: the second read's lookup misses, and its answer
      // is held until the first read's fetch has ended (decoded, cached, no longer in flight).
      const cache = (image.reader as unknown as { cache: { get(d: Buffer, n: number): Promise<Buffer | undefined> } }).cache;
      const get = cache.get.bind(cache);
      let lookups = 0;
      cache.get = async (d, n) => {
        // Counted as asked, not as answered: under load the first read's own later lookup
        // (after its fetch) could be answered before the second read's, and then waited for itself.
        const nth = ++lookups;
        const r = await get(d, n);
        if (nth === 2) await first.then(() => new Promise((resolve) => setImmediate(resolve)));
        return r;
      };
      const first = image.reader.read(node, 'f', 0, 100);
      const second = image.reader.read(node, 'f', 100, 100);
      assert.ok((await first).equals(body.subarray(0, 100)));
      assert.ok((await second).equals(body.subarray(100, 200)));
      assert.equal(image.reader.stats(node.layerId).requests, 1, 'the chunk was fetched once');
    });
  });
});
