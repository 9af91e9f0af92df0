// Chunks too large to hold in memory (issue 22, defect 1): a layer of 4 MB declaring one
// file of over 4 GiB of zeros in a single chunk. Reads stream its member once into the
// cache (bounded memory, verified before any byte is served), then cost a pread; a member
// that inflates short of the TOC's size or to other bytes is refused, nothing cached.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import { layoutWith, tocAnnotation } from '../helpers/blobs.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { launcherPath } from '../helpers/paths.js';
import { zerosLayer } from '../helpers/zeros-layer.js';
import { LargeChunks } from '../../src/layer/large-chunk.js';
import { FetchScheduler } from '../../src/layer/scheduler.js';
import type { BlobReader } from '../../src/toc/blob.js';

const MiB = 1 << 20;
const HUGE = 4 * 1024 * MiB + 8 * MiB; // past 4 GiB: no Buffer, hash update or 32-bit size could hold it

/** Bytes of the files under dir, as the disk holds them (holes not counted). */
function diskBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).blocks * 512;
  }
  return n;
}

/** Size of the largest file under dir. */
function largestFile(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n = Math.max(n, statSync(join(e.parentPath, e.name)).size);
  }
  return n;
}

describe('large chunks', () => {
  it('a file of over 4 GiB in one chunk: reads anywhere in it are right, memory stays bounded, the chunk is fetched once', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const layer = zerosLayer(HUGE);
      assert.ok(layer.blob.length < 8 * MiB);
      const ref = await layoutWith(dir, [{ blob: layer.blob, annotations: tocAnnotation(layer.tocDigest) }]);
      const root = join(dir, 'root');
      // The quota must hold the chunk for it to be cached (the default's floor, 512 MiB, would not).
      await withImage(testConfig(root, { cacheSize: '8G' }), ref, async ({ image }) => {
        const node = resolvePath(image.merged(), 'big');
        assert.equal(node.size, HUGE);
        const t0 = performance.now();
        const at = [0, 3 * 1024 * MiB + 12345, HUGE - 4096];
        const reads = await Promise.all(at.map((off) => image.reader.read(node, 'big', off, 4096)));
        const firstMs = performance.now() - t0;
        for (const r of reads) assert.ok(r.length === 4096 && r.every((b) => b === 0));
        const s = image.reader.stats(node.layerId);
        const requests = s.requests;
        assert.ok(s.bytesFetched < 8 * MiB, `the member was fetched once (${s.bytesFetched} bytes)`);
        const t1 = performance.now();
        for (let i = 0; i < 100; i++) {
          const r = await image.reader.read(node, 'big', (i * 40_000_003) % (HUGE - 4096), 4096);
          assert.ok(r.every((b) => b === 0));
        }
        const warmMs = (performance.now() - t1) / 100;
        assert.equal(s.requests, requests, 'later reads come from the cache');
        assert.ok(warmMs < 20, `a cached 4 KiB read took ${warmMs.toFixed(2)} ms`);
        // The process's peak RSS, in KiB: the chunk was never one buffer.
        const peakMiB = process.resourceUsage().maxRSS / 1024;
        assert.ok(peakMiB < 512, `peak RSS ${peakMiB.toFixed(0)} MiB`);
        assert.ok((await image.reader.read(resolvePath(image.merged(), 'small'), 'small', 0, 100)).equals(layer.small));
        console.log(`# first 3 reads ${firstMs.toFixed(0)} ms, cached 4 KiB read ${warmMs.toFixed(3)} ms, peak RSS ${peakMiB.toFixed(0)} MiB`);
      });
      // Zeros are holes in the cached file; nothing is left in tmp/.
      assert.ok(diskBytes(join(root, 'chunks')) < 16 * MiB, `chunk files take ${diskBytes(join(root, 'chunks'))} bytes on disk`);
      assert.deepEqual(readdirSync(join(root, 'tmp')), []);
    } finally {
      cleanup();
    }
  });

  it('stargzfs cat streams the whole file with bounded memory and exits 0', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const layer = zerosLayer(3 * 1024 * MiB);
      const ref = await layoutWith(dir, [{ blob: layer.blob, annotations: tocAnnotation(layer.tocDigest) }]);
      const child = spawn(launcherPath, ['cat', '--root', join(dir, 'root'), ref, '/big'], {
        stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STARGZFS_NODE: process.execPath },
      });
      let bytes = 0;
      let nonZero = 0;
      let peakKiB = 0;
      const poll = setInterval(() => {
        try {
          const m = /VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
          if (m !== null) peakKiB = Math.max(peakKiB, Number(m[1]));
        } catch {
          // gone
        }
      }, 50);
      child.stdout.on('data', (b: Buffer) => {
        bytes += b.length;
        if (!b.every((x) => x === 0)) nonZero++;
      });
      let stderr = '';
      child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      clearInterval(poll);
      assert.equal(code, 0, stderr);
      assert.equal(bytes, 3 * 1024 * MiB);
      assert.equal(nonZero, 0);
      assert.ok(peakKiB / 1024 < 400, `peak RSS of cat ${(peakKiB / 1024).toFixed(0)} MiB`);
      console.log(`# cat of 3 GiB: peak RSS ${(peakKiB / 1024).toFixed(0)} MiB`);
    } finally {
      cleanup();
    }
  });

  it('a large member that inflates short of its size, or to other bytes, is refused and nothing is cached', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const short = zerosLayer(64 * MiB, { short: true });
      const wrong = zerosLayer(64 * MiB, { digestOf: `sha256:${'ab'.repeat(32)}` });
      for (const [name, layer, code] of [['short', short, 'SGZ_DECODE'], ['wrong', wrong, 'SGZ_DIGEST_MISMATCH']] as const) {
        const sub = join(dir, name);
        const ref = await layoutWith(sub, [{ blob: layer.blob, annotations: tocAnnotation(layer.tocDigest) }]);
        const root = join(sub, 'root');
        await withImage(testConfig(root, { cacheSize: '1G' }), ref, async ({ image }) => {
          const node = resolvePath(image.merged(), 'big');
          await assert.rejects(image.reader.read(node, 'big', 40 * MiB, 4096), (err: { code?: string; message: string }) => {
            assert.equal(err.code, code);
            assert.match(err.message, /file "big"/);
            return true;
          });
          assert.ok((await image.reader.read(resolvePath(image.merged(), 'small'), 'small', 0, 100)).equals(layer.small));
        });
        assert.deepEqual(readdirSync(join(root, 'tmp')), [], `${name}: no temporary file left`);
        assert.ok(largestFile(join(root, 'chunks')) < MiB, `${name}: nothing cached but \`small\``);
      }
    } finally {
      cleanup();
    }
  });

  it('a member that comes with a flipped byte is fetched once more before the read fails; never wrong bytes, nothing cached', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const layer = zerosLayer(64 * MiB);
      const ref = await layoutWith(dir, [{ blob: layer.blob, annotations: tocAnnotation(layer.tocDigest) }]);
      await withImage(testConfig(join(dir, 'root'), { cacheSize: '1G' }), ref, async ({ image, table, cache }) => {
        const node = resolvePath(image.merged(), 'big');
        const row = table.layer(node.layerId);
        assert.ok(row !== undefined);
        const [c] = table.chunks(node.dataId, 0, 1);
        assert.ok(c !== undefined);
        for (const [name, flips] of [['once', 1], ['every time', Infinity]] as const) {
          // The real blob's bytes, with a byte flipped in the member's first window the first `flips` times.
          let reads = 0;
          const blob: BlobReader = {
            size: layer.blob.length,
            readAt: (off, len) => {
              const out = Buffer.from(layer.blob.subarray(off, off + len));
              if (off === c.blob_offset && reads++ < flips) out[100] = (out[100] as number) ^ 0xff;
              return Promise.resolve(out);
            },
          };
          const large = new LargeChunks(() => blob, new FetchScheduler({ concurrency: 2, backgroundBytesPerSec: 0 }), cache, () => undefined);
          const read = large.read(row, c, 40 * MiB, 40 * MiB + 4096, { layer: row.digest, path: 'big' });
          if (flips === 1) {
            assert.ok((await read).every((b) => b === 0), name);
            assert.equal(reads, 2, `${name}: fetched twice`);
            await cache.clear();
          } else {
            await assert.rejects(read, (err: { code?: string }) => ['SGZ_DIGEST_MISMATCH', 'SGZ_DECODE'].includes(err.code ?? ''));
            assert.equal(reads, 2, `${name}: one refetch, then the error`);
            assert.equal(largestFile(join(dir, 'root', 'chunks')), 0, `${name}: nothing cached`);
          }
        }
      });
    } finally {
      cleanup();
    }
  });
});
