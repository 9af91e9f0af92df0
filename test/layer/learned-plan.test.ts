// How a learned profile's chunks are cut into requests (layer/learned-plan.ts): the one
// rule both the early request and the mount's learned prefetch follow.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openMetaDb, type ChunkRow } from '../../src/toc/inode-db.js';
import { firstLearnedRequest, lastImageOf, orderedRequests, requestRange } from '../../src/layer/learned-plan.js';
import { tempDir } from '../helpers/tmp.js';
import { ProfileStore } from '../../src/layer/profile.js';
import { CACHE_INDEX_SCHEMA } from '../../src/chunkcache/cache-index.js';

const digest = (n: number): Buffer => Buffer.alloc(32, n);
/** A chunk of `size` compressed bytes at `at` in the blob (its own member unless `inner` says where in a shared one). */
const chunk = (at: number, size: number, n: number, inner = 0, chunkOffset = 0): ChunkRow => ({
  chunk_offset: chunkOffset, chunk_size: 1000, blob_offset: at, blob_end: at + size, inner_offset: inner, digest: digest(n), zeros: 0,
});
const none = (): boolean => false;

describe('learned requests', () => {
  it('keep the order given, a member once, in the request of its first chunk', () => {
    const a = chunk(5000, 100, 1);
    const b = chunk(100, 50, 2);
    const shared1 = chunk(9000, 70, 3, 0);
    const shared2 = chunk(9000, 70, 4, 1000);
    const [request, ...rest] = orderedRequests([a, shared1, b, shared2], none);
    assert.deepEqual(rest, []);
    assert.deepEqual(request, [a, shared1, b, shared2]);
    assert.equal(requestRange(request as ChunkRow[]), 'bytes=5000-5099,9000-9069,100-149');
  });

  it('skip what is held, zeros and chunks without a place or a digest', () => {
    const kept = chunk(0, 10, 1);
    const rows: ChunkRow[] = [kept, chunk(10, 10, 2), { ...chunk(20, 10, 3), zeros: 1 }, { ...chunk(30, 10, 4), digest: null }, { ...chunk(0, 0, 5), blob_end: 0 }];
    assert.deepEqual(orderedRequests(rows, (c) => c.digest?.[0] === 2), [[kept]]);
    assert.equal(requestRange([kept]), 'bytes=0-9', 'one member: a plain range');
  });

  it('are cut at the byte and range limits', () => {
    const rows = Array.from({ length: 10 }, (_, i) => chunk(i * 1000, 600, i + 1));
    assert.deepEqual(orderedRequests(rows, none, 1500, 100).map((r) => r.length), [2, 2, 2, 2, 2]);
    assert.deepEqual(orderedRequests(rows, none, 1 << 20, 3).map((r) => r.length), [3, 3, 3, 1]);
  });

  it('the first one is read from meta.db as the mount will plan it: the profile\'s first layer, cached chunks left out', () => {
    const { dir, cleanup } = tempDir();
    const db = openMetaDb(join(dir, 'meta.db'));
    try {
      db.exec(CACHE_INDEX_SCHEMA);
      const profiles = new ProfileStore(db);
      const image = 'sha256:image';
      profiles.append(image, [
        { layer: 'sha256:top', path: 'bin/app', chunk: chunk(500, 100, 1, 0, 4096) },
        { layer: 'sha256:other', path: 'x', chunk: chunk(70, 10, 9) },
        { layer: 'sha256:top', path: 'lib/a.so', chunk: chunk(10, 20, 2) },
        { layer: 'sha256:top', path: 'bin/app', chunk: chunk(300, 100, 3) },
      ]);
      assert.equal(firstLearnedRequest(db, image), undefined, 'the layer is not indexed yet');
      db.prepare(`INSERT INTO layers (digest, toc_digest, verified, format, compression, blob_size, footer_size, toc_offset, toc_compressed_size,
        toc_size, data_end, root_id, entry_count, chunk_count, node_count, prefetch_size, warning_count, indexed_at)
        VALUES (?, 'sha256:toc', 1, 'estargz', 'gzip', 1000, 51, 900, 49, 100, 900, 1, 3, 3, 3, 0, 0, 0)`).run('sha256:top');
      db.prepare('INSERT INTO cache_chunks (digest, size, last_use) VALUES (?, 1000, 0)').run(digest(2));
      assert.deepEqual(firstLearnedRequest(db, image), { layer: 'sha256:top', range: 'bytes=500-599,300-399' });
      assert.equal(firstLearnedRequest(db, 'sha256:unknown'), undefined);
      // The reference's last image, for the request sent with the manifest's.
      assert.equal(lastImageOf(db, 'reg.example/app:1'), undefined);
      profiles.rememberRef('reg.example/app:1', image);
      assert.equal(lastImageOf(db, 'reg.example/app:1'), image);
      profiles.rememberRef('reg.example/app:1', 'sha256:newer');
      assert.equal(lastImageOf(db, 'reg.example/app:1'), 'sha256:newer');
      // A whole-file row (an older profile) needs the TOC index: left to the mount.
      profiles.append(image, [{ layer: 'sha256:top', path: 'etc/conf' }]);
      assert.equal(firstLearnedRequest(db, image), undefined);
    } finally {
      db.close();
      cleanup();
    }
  });
});
