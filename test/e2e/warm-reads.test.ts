// Warm reads through a real mount: once a file's chunks are cached, reads at random
// offsets and lengths across chunk boundaries return exactly the file's bytes, whether
// the FUSE addon answers them from the verified chunk files itself (the same process that
// cached them) or JavaScript reads the asked slice (a new process on the same root, which
// checks each chunk file once first); and a chunk file torn or corrupted on disk is found
// on that check, fetched again, and never served.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile, readdir, truncate, writeFile } from 'node:fs/promises';
import { readFileSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';

const CHUNK = 64 << 10;
const r = rng(23);
const FILES = [
  { name: 'data/big.bin', body: bytes(r, 40 * CHUNK + 1234) },
  { name: 'data/exact.bin', body: bytes(r, 8 * CHUNK) },
  { name: 'data/small.bin', body: bytes(r, 777) },
  { name: 'data/sparse.bin', body: Buffer.concat([bytes(r, 3 * CHUNK + 5), Buffer.alloc(6 * CHUNK), bytes(r, CHUNK - 5)]) },
];

interface Status {
  servedByAddon: { reads: number; bytes: number; mappedParts: number };
  layers: Array<{ cacheHits: number; errors: number }>;
}
const status = (m: TestMount): Status => JSON.parse(readFileSync(join(m.mountpoint, '.stargzfs', 'status.json'), 'utf8')) as Status;

/** The page cache's copy of the mount dropped, so the next reads reach the filesystem. */
function dropPageCache(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '1');
}

/** `n` preads at random offsets and lengths (up to 3 chunks, so most cross a boundary), every byte compared. */
async function randomReads(mountpoint: string, seed: number, n: number): Promise<void> {
  const g = rng(seed);
  const handles = await Promise.all(FILES.map((f) => open(join(mountpoint, f.name), 'r')));
  try {
    for (let i = 0; i < n; i++) {
      const k = Math.floor(g() * FILES.length);
      const f = FILES[k] as { name: string; body: Buffer };
      const off = Math.floor(g() * (f.body.length + 100));
      const len = 1 + Math.floor(g() * 3 * CHUNK);
      const buf = Buffer.alloc(len);
      const { bytesRead } = await (handles[k] as Awaited<ReturnType<typeof open>>).read(buf, 0, len, off);
      const want = f.body.subarray(off, off + len);
      assert.equal(bytesRead, want.length, `${f.name}: ${len} bytes at ${off}`);
      assert.ok(buf.subarray(0, bytesRead).equals(want), `${f.name}: wrong bytes in ${len} at ${off}`);
    }
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

describe('warm reads through a mount', () => {
  let served: ServedImage | undefined;
  let n = 0;
  const fresh = (name: string): string => join(served?.dir ?? '', `${name}-${++n}`);

  before(async () => {
    served = await serveImage('warm/img', [entries([{ name: 'data/', type: 'dir' }, ...FILES])], { chunkSize: CHUNK, compressionLevel: 1 });
  });
  after(async () => {
    await served?.stop();
  });

  it('random reads across chunk boundaries: every byte right, from the addon in the process that cached them and from the slices read in a new one', async () => {
    const root = fresh('root');
    // The addon's own reads, not the kernel's (passthrough: test/e2e/passthrough.test.ts).
    const args = ['--root', root, '--no-background-fetch', '--no-prefetch', '--no-passthrough', served?.ref ?? ''];
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(args, fresh('mnt'));
      for (const f of FILES) assert.ok((await readFile(join(m.mountpoint, f.name))).equals(f.body), f.name);
      // Chunk files are written behind reads, within 2 s (chunk-store.ts); only files in place are handed to the addon.
      await new Promise((res) => setTimeout(res, 2500));
      dropPageCache();
      const before = status(m).servedByAddon;
      await randomReads(m.mountpoint, 1, 1500);
      const after = status(m).servedByAddon;
      assert.ok(after.mappedParts > 0, 'the cached chunks were handed to the addon');
      assert.ok(after.reads - before.reads > 0, `the addon answered reads (${after.reads - before.reads})`);
      await m.stop();
      m = undefined;

      // A new process on the same root: nothing verified yet in it.
      dropPageCache();
      m = await mountDaemon(args, fresh('mnt'));
      served?.proxy.reset();
      await randomReads(m.mountpoint, 2, 1500);
      assert.equal(served?.proxy.stats.ranges.length, 0, 'every read came from the cache');
      assert.ok((status(m).layers[0]?.cacheHits ?? 0) > 0);
    } finally {
      await m?.stop();
    }
  });

  it('a torn or corrupt chunk file is found, fetched again and never served', async () => {
    const root = fresh('root');
    // The chunk path (with passthrough a file read whole is also assembled, and read from that).
    const args = ['--root', root, '--no-background-fetch', '--no-prefetch', '--no-passthrough', served?.ref ?? ''];
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(args, fresh('mnt'));
      const big = FILES[0] as { name: string; body: Buffer };
      assert.ok((await readFile(join(m.mountpoint, big.name))).equals(big.body));
      await m.stop();
      m = undefined;

      // Every chunk file of big.bin: its chunks are the file's 64 KiB pieces.
      const wanted = new Map<string, number>();
      for (let off = 0; off < big.body.length; off += CHUNK) {
        wanted.set(createHash('sha256').update(big.body.subarray(off, off + CHUNK)).digest('hex'), off);
      }
      const files: string[] = [];
      for (const sub of await readdir(join(root, 'chunks'))) {
        for (const name of await readdir(join(root, 'chunks', sub))) if (wanted.has(name)) files.push(join(root, 'chunks', sub, name));
      }
      assert.ok(files.length >= 10, `chunk files of big.bin on disk: ${files.length}`);
      files.sort();
      const [flipped, torn] = files as [string, string];
      const b = await readFile(flipped);
      b[b.length >> 1] = (b[b.length >> 1] as number) ^ 0x40;
      await writeFile(flipped, b);
      await truncate(torn, 1000);

      dropPageCache();
      m = await mountDaemon(args, fresh('mnt'));
      served?.proxy.reset();
      // Reads that touch the damaged chunks: each right, from a second fetch.
      for (const file of [flipped, torn]) {
        const off = wanted.get(file.slice(-64)) as number;
        const fh = await open(join(m.mountpoint, big.name), 'r');
        try {
          const buf = Buffer.alloc(4096);
          const { bytesRead } = await fh.read(buf, 0, 4096, off + 100);
          assert.ok(buf.subarray(0, bytesRead).equals(big.body.subarray(off + 100, off + 100 + 4096)), `bytes of the damaged chunk at ${off}`);
        } finally {
          await fh.close();
        }
      }
      assert.ok((served?.proxy.stats.ranges.length ?? 0) >= 2, `the damaged chunks were fetched again (${served?.proxy.stats.ranges.length} ranges)`);
      dropPageCache();
      assert.ok((await readFile(join(m.mountpoint, big.name))).equals(big.body), 'the whole file reads right');
      await m.stop();
      m = undefined;
      // The files in the cache are whole and right again (written by the time the mount stopped).
      for (const file of [flipped, torn]) {
        const data = await readFile(file);
        assert.equal(createHash('sha256').update(data).digest('hex'), file.slice(-64), `${file} replaced by the right bytes`);
      }
    } finally {
      await m?.stop();
    }
  });
});
