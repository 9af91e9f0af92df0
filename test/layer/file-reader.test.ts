// Reading through chunks: single-flight for concurrent reads of one chunk, counters.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import { entries } from '../helpers/entries.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

describe('file reader', () => {
  it('ten concurrent reads of one chunk fetch and decode it once; later reads hit the cache', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const body = randomBytes(3 << 20);
      await buildEstargzImage(join(dir, 'img'), [entries([{ name: 'f', body }])], { chunkSize: 1 << 20, compressionLevel: 1 });
      await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, async ({ image }) => {
        const node = resolvePath(image.merged(), 'f');
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
    } finally {
      cleanup();
    }
  });
});
