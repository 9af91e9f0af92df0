// The chunk cache on a real state root: content addressing, torn and corrupt files never
// served, the quota held, strays adopted, and a process killed mid-write harmless.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ChunkStore } from '../../src/chunkcache/chunk-store.js';
import { openMetaDb } from '../../src/toc/inode-db.js';
import { createLogger } from '../../src/log.js';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import { entries } from '../helpers/entries.js';
import { testConfig } from '../helpers/config.js';
import { cliPath } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const log = createLogger('silent');

function store(root: string, quotaBytes = 1 << 30): ChunkStore {
  return new ChunkStore(openMetaDb(join(root, 'meta.db')), { root, quotaBytes, memoryBytes: 1 << 20 }, log);
}
const chunkFile = (root: string, d: Buffer): string => join(root, 'chunks', d.toString('hex').slice(0, 2), d.toString('hex'));

describe('chunk store', () => {
  it('stores by digest, once, and reads back across processes (new instances)', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const data = randomBytes(10_000);
      const d = sha(data);
      const a = store(dir);
      await a.put(d, data);
      await a.put(d, data);
      a.close();
      const b = store(dir);
      assert.ok((await b.get(d, data.length))?.equals(data));
      assert.deepEqual([b.usage().chunks, b.usage().bytes], [1, 10_000]);
      assert.equal(await b.get(sha(Buffer.from('other')), 5), undefined);
      b.close();
    } finally {
      cleanup();
    }
  });

  it('many chunks are indexed in one batch: known to this process at once, to another within moments, and after close', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const datas = Array.from({ length: 50 }, () => randomBytes(2000));
      // A memory LRU too small to hold any: has() must know them from the pending index rows.
      const a = new ChunkStore(openMetaDb(join(dir, 'meta.db')), { root: dir, quotaBytes: 1 << 30, memoryBytes: 1 }, log);
      for (const d of datas) await a.put(sha(d), d);
      assert.ok(datas.every((d) => a.has(sha(d))), 'known here before the rows are written');
      const other = store(dir);
      await new Promise((res) => setTimeout(res, 200));
      assert.ok(datas.every((d) => other.has(sha(d))), 'in the index for another process shortly after');
      assert.equal(other.usage().chunks, 50);
      other.close();
      // Dropped before its row was written: no row appears afterwards.
      const late = randomBytes(3000);
      await a.put(sha(late), late);
      await a.evict(0);
      a.close();
      const b = store(dir);
      assert.deepEqual([b.usage().chunks, b.usage().bytes], [0, 0]);
      b.close();
      // A fetch that finishes after the state closed still stores its chunk: the row is
      // left for gc(), and the batch timer must not throw on the closed database.
      const db = openMetaDb(join(dir, 'meta.db'));
      const c = new ChunkStore(db, { root: dir, quotaBytes: 1 << 30, memoryBytes: 1 << 20 }, log);
      c.close();
      db.close();
      const after = randomBytes(1000);
      await c.put(sha(after), after);
      await new Promise((res) => setTimeout(res, 150));
      const d = store(dir);
      assert.equal((await d.gc()).adopted, 1);
      assert.ok((await d.get(sha(after), after.length))?.equals(after));
      d.close();
    } finally {
      cleanup();
    }
  });

  it('a torn or corrupt chunk file is dropped and counts as a miss, never served', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const data = randomBytes(5000);
      const d = sha(data);
      const a = store(dir);
      await a.put(d, data);
      a.close();
      truncateSync(chunkFile(dir, d), 4000);
      const b = store(dir);
      assert.equal(await b.get(d, data.length), undefined);
      assert.ok(!existsSync(chunkFile(dir, d)), 'the torn file is gone');
      assert.equal(b.usage().chunks, 0);
      await b.put(d, data);
      b.close();
      const flipped = Buffer.from(data);
      flipped[10] = (flipped[10] as number) ^ 1;
      writeFileSync(chunkFile(dir, d), flipped);
      const c = store(dir);
      assert.equal(await c.get(d, data.length), undefined, 'same size, wrong bytes: caught by the digest on first use');
      c.close();
    } finally {
      cleanup();
    }
  });

  it('evicts least recently used chunks to hold the quota', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const s = store(dir, 25_000);
      const chunks = Array.from({ length: 5 }, () => randomBytes(10_000));
      await s.put(sha(chunks[0] as Buffer), chunks[0] as Buffer);
      await s.put(sha(chunks[1] as Buffer), chunks[1] as Buffer);
      await new Promise((r) => setTimeout(r, 5));
      assert.ok(await s.get(sha(chunks[0] as Buffer), 10_000)); // 0 is now more recent than 1
      await new Promise((r) => setTimeout(r, 5));
      await s.put(sha(chunks[2] as Buffer), chunks[2] as Buffer);
      assert.ok(s.usage().bytes <= 25_000);
      assert.ok(existsSync(chunkFile(dir, sha(chunks[0] as Buffer))), 'recently used survives');
      assert.ok(!existsSync(chunkFile(dir, sha(chunks[1] as Buffer))), 'least recently used is evicted');
      s.close();
    } finally {
      cleanup();
    }
  });

  it('gc adopts chunk files nobody indexed and removes stale temporary files', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const data = randomBytes(3000);
      const d = sha(data);
      mkdirSync(join(dir, 'chunks', d.toString('hex').slice(0, 2)), { recursive: true });
      writeFileSync(chunkFile(dir, d), data);
      const s = store(dir);
      const r = await s.gc();
      assert.equal(r.adopted, 1);
      assert.equal(s.usage().bytes, 3000);
      assert.ok((await s.get(d, 3000))?.equals(data));
      s.close();
    } finally {
      cleanup();
    }
  });
});

describe('write-behind', () => {
  it('files are written once puts pause; meanwhile chunks are served from memory, even past the memory LRU; drain writes at once', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const s = new ChunkStore(openMetaDb(join(dir, 'meta.db')), { root: dir, quotaBytes: 1 << 30, memoryBytes: 64 << 10, writeBehind: true }, log);
      const datas = Array.from({ length: 8 }, () => randomBytes(48 << 10));
      for (const d of datas) await s.put(sha(d), d);
      assert.ok(datas.every((d) => !existsSync(chunkFile(dir, sha(d)))), 'nothing written during the burst');
      for (const d of datas) {
        assert.equal(s.has(sha(d)), true);
        assert.ok((await s.get(sha(d), d.length))?.equals(d), 'served while queued, though the memory LRU holds one');
      }
      const deadline = Date.now() + 5000;
      while (!datas.every((d) => existsSync(chunkFile(dir, sha(d)))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      assert.ok(datas.every((d) => existsSync(chunkFile(dir, sha(d)))), 'written once the puts paused');
      const late = randomBytes(1000);
      await s.put(sha(late), late);
      await s.drain();
      assert.ok(existsSync(chunkFile(dir, sha(late))), 'drain() wrote the queued chunk');
      s.close();
    } finally {
      cleanup();
    }
  });
});

describe('the cache under reads', () => {
  it('two layers sharing content store it once; a second read hits the cache; the quota holds for a layer bigger than it', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const shared = randomBytes(3 << 20);
      const big = randomBytes(12 << 20);
      await buildEstargzImage(join(dir, 'img'), [
        entries([{ name: 'a/shared.bin', body: shared }]),
        entries([{ name: 'b/shared-copy.bin', body: shared }, { name: 'b/big.bin', body: big }]),
      ], { chunkSize: 1 << 20, compressionLevel: 1 });
      const root = join(dir, 'root');
      const cfg = testConfig(root, { cacheSize: '6M' });
      await withImage(cfg, `oci:${join(dir, 'img')}`, async ({ image }) => {
        const view = image.merged();
        const read = async (p: string) => image.reader.read(resolvePath(view, p), p, 0, 64 << 20);
        assert.ok((await read('a/shared.bin')).equals(shared));
        assert.ok((await read('b/shared-copy.bin')).equals(shared));
        const [l0, l1] = image.layers.map((l) => image.reader.stats(l.row?.id ?? -1));
        assert.equal(l0?.requests, 1, 'three chunks next to each other in the blob: one read');
        assert.equal(l0?.cacheMisses, 3);
        assert.equal(l1?.requests, 0, 'the second layer found every chunk in the cache');
        assert.equal(l1?.cacheHits, 3);
        assert.ok((await read('b/big.bin')).equals(big), 'a file twice the quota reads end to end');
        assert.ok((await read('a/shared.bin')).equals(shared));
      });
      // Written behind the reads, by the time the image is closed.
      assert.ok(readdirSync(join(root, 'chunks')).length > 0);
      const du = JSON.parse((await runCli(['--root', root, '--cache-size', '6M', 'cache', 'du', '--json'])).stdout.toString()) as { bytes: number };
      assert.ok(du.bytes <= 6 << 20, `cache holds ${du.bytes} bytes with a 6 MiB quota`);
    } finally {
      cleanup();
    }
  });

  it('a process killed with SIGKILL while it writes chunks leaves a cache the next one reads correctly', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const big = randomBytes(48 << 20);
      await buildEstargzImage(join(dir, 'img'), [entries([{ name: 'big.bin', body: big }])], { chunkSize: 256 << 10, compressionLevel: 1 });
      const root = join(dir, 'root');
      const ref = `oci:${join(dir, 'img')}`;
      const child = spawn(process.execPath, [cliPath, '--root', root, 'cat', ref, '/big.bin'], { stdio: ['ignore', 'ignore', 'ignore'] });
      const chunksDir = join(root, 'chunks');
      const count = () => (existsSync(chunksDir) ? readdirSync(chunksDir).flatMap((d) => readdirSync(join(chunksDir, d))).length : 0);
      const deadline = Date.now() + 30_000;
      while (count() < 20 && Date.now() < deadline && child.exitCode === null) await new Promise((r) => setTimeout(r, 10));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
      assert.ok(count() >= 1, 'the killed process had written chunks');
      const again = await runCli(['--root', root, 'cat', ref, '/big.bin']);
      assert.equal(again.code, 0, again.stderr);
      assert.ok(again.stdout.equals(big), 'the next process reads the exact bytes');
      const gc = JSON.parse((await runCli(['--root', root, 'cache', 'gc', '--json'])).stdout.toString()) as { chunks: number };
      assert.equal(gc.chunks, 192, 'every chunk indexed once');
    } finally {
      cleanup();
    }
  });
});
