// The reference's cache cases (stargz-snapshotter cache/cache_test.go testCache: empty_data,
// data, manydata, dup_data, each a hit read whole and in its middle third, and a miss),
// against our chunk store with a memory LRU that holds them all ("dir-with-enough-mem")
// and one that holds none ("dir-with-small-mem"), in this process and in the next one.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { ChunkStore } from '../../src/chunkcache/chunk-store.js';
import { openMetaDb } from '../../src/toc/inode-db.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';

const SAMPLE = '0123456789';
const sha = (s: string): Buffer => createHash('sha256').update(s).digest();
const log = createLogger('silent');

const CASES: Array<{ name: string; blobs: string[]; hits: string[]; misses: string[] }> = [
  { name: 'empty_data', blobs: [''], hits: [''], misses: [SAMPLE] },
  { name: 'data', blobs: [SAMPLE], hits: [SAMPLE], misses: ['dummy'] },
  { name: 'manydata', blobs: [SAMPLE, 'test'], hits: [SAMPLE, 'test'], misses: ['dummy'] },
  { name: 'dup_data', blobs: [SAMPLE, SAMPLE], hits: [SAMPLE], misses: [] },
];

async function check(s: ChunkStore, hits: string[], misses: string[], what: string): Promise<void> {
  for (const h of hits) {
    // hit(): the whole chunk, then its middle third at an offset.
    assert.equal((await s.get(sha(h), h.length))?.toString(), h, `${what}: ${JSON.stringify(h)} whole`);
    const third = Math.floor(h.length / 3);
    if (third > 0) assert.equal((await s.readRange(sha(h), h.length, third, 2 * third))?.toString(), h.slice(third, 2 * third), `${what}: middle third`);
  }
  for (const m of misses) {
    assert.equal(s.has(sha(m)), false, `${what}: ${JSON.stringify(m)} is not held`);
    assert.equal(await s.get(sha(m), m.length), undefined, `${what}: ${JSON.stringify(m)} is a miss`);
  }
}

describe('reference: cache testCache', () => {
  for (const [mem, memoryBytes] of [['dir-with-enough-mem', 64 << 20], ['dir-with-small-mem', 1]] as const) {
    for (const c of CASES) {
      it(`${mem}-${c.name}`, async () => {
        const { dir, cleanup } = tempDir();
        try {
          const open = (): ChunkStore => new ChunkStore(openMetaDb(join(dir, 'meta.db')), { root: dir, quotaBytes: 1 << 30, memoryBytes }, log);
          const a = open();
          for (const b of c.blobs) await a.put(sha(b), Buffer.from(b));
          await check(a, c.hits, c.misses, 'same process');
          assert.equal(a.usage().chunks, new Set(c.blobs).size, 'a chunk put twice is stored once');
          a.close();
          const b = open();
          await check(b, c.hits, c.misses, 'next process');
          b.close();
        } finally {
          cleanup();
        }
      });
    }
  }
});
