// FUSE passthrough through a real mount (Linux 6.9+; this machine's kernel has it): a file
// the cache holds whole is opened with its cache file as the backing file, so the kernel
// reads it without us; a file that became whole while open keeps working, and the next
// open (its earlier files closed) gets passthrough; a file of many chunks is written whole
// beside the reads, so its next open after it was read through is passthrough; hard links share one inode's mode; `--no-passthrough`
// turns it off. Bytes are checked against the fixture's EXPECTED.tsv every time.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { fixturesDir } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

interface Passthrough {
  enabled: boolean;
  off?: string;
  opens: number;
  cachedOpens: number;
  cachedWhy?: { notWhole: number; openThroughPageCache: number; backingRefused: number; openTableFull: number; statusFile: number };
}

const SRC = `oci:${join(fixturesDir(), 'esgz', 'oci')}`;
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');
const expected = new Map(
  readFileSync(join(fixturesDir(), 'esgz', 'EXPECTED.tsv'), 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('#')).map((l) => {
    const f = l.split('\t');
    return [f[0] as string, f[8] as string] as const;
  }),
);
// Read off the event loop's thread, like a reader would.
const status = async (m: TestMount): Promise<Passthrough> => (JSON.parse(await readFile(join(m.mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { passthrough: Passthrough }).passthrough;

async function readRight(m: TestMount, path: string): Promise<void> {
  assert.equal(sha(await readFile(join(m.mountpoint, path))), expected.get(path), path);
}

describe('FUSE passthrough', () => {
  let dir: { dir: string; cleanup: () => void };
  let n = 0;
  const fresh = (name: string): string => join(dir.dir, `${name}-${++n}`);
  before(() => {
    dir = tempDir();
  });
  after(() => dir.cleanup());

  it('a file cached whole while open keeps reading; with its files closed, the next open is passthrough', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), '--no-background-fetch', '--no-prefetch', SRC], fresh('mnt'));
      assert.equal((await status(m)).enabled, true, 'negotiated at init');
      const path = 'files/size-4097';
      const first = await open(join(m.mountpoint, path), 'r');
      try {
        // Read through stargzfs: now its chunk is cached and verified, the file whole in it.
        assert.equal(sha(await first.readFile()), expected.get(path));
        const before = await status(m);
        // A second open while the first (a page-cache open) is still open: the kernel would
        // refuse passthrough for it, so it must come through stargzfs, and read right.
        await readRight(m, path);
        const during = await status(m);
        assert.equal(during.opens, before.opens, 'no passthrough while a cached open of the inode is open');
        // Each open not passthrough is counted by why: the first cold (not whole yet), the
        // second as not whole or (its chunk written by then) for the first file still open
        // through the page cache; status.json apart.
        const why = (p: Passthrough, k: keyof NonNullable<Passthrough['cachedWhy']>): number => p.cachedWhy?.[k] ?? 0;
        assert.ok(why(before, 'notWhole') >= 1, `the cold open counted as not whole: ${JSON.stringify(before.cachedWhy)}`);
        assert.equal(why(during, 'notWhole') + why(during, 'openThroughPageCache') - why(before, 'notWhole') - why(before, 'openThroughPageCache'), 1, 'the second open counted once, by why');
        assert.equal(why(during, 'statusFile') - why(before, 'statusFile'), 1, 'status.json opens counted apart');
        assert.equal(why(during, 'backingRefused'), 0);
        // Once the chunk is on disk the file is whole: only the open first file keeps it from passthrough.
        let last = during;
        for (let i = 0; i < 40 && why(last, 'openThroughPageCache') === why(before, 'openThroughPageCache'); i++) {
          await new Promise((r) => setTimeout(r, 50));
          await readRight(m, path);
          last = await status(m);
        }
        assert.ok(why(last, 'openThroughPageCache') > why(before, 'openThroughPageCache'), `an open refused for the file open through the page cache: ${JSON.stringify(last.cachedWhy)}`);
        assert.equal(last.opens, before.opens, 'and none passthrough meanwhile');
        const again = Buffer.alloc(4097);
        assert.equal((await first.read(again, 0, 4097, 0)).bytesRead, 4097);
        assert.equal(sha(again), expected.get(path), 'the first file still reads right');
      } finally {
        await first.close();
      }
      // The release reaches the server after close returns.
      await new Promise((r) => setTimeout(r, 100));
      const s0 = await status(m);
      await readRight(m, path);
      await readRight(m, path);
      const s1 = await status(m);
      assert.equal(s1.opens - s0.opens, 2, 'both later opens went passthrough');
    } finally {
      await m?.stop();
    }
  });

  it('a file of many chunks read through once is read by the kernel itself from its very next open; hard links share the mode', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), '--no-background-fetch', '--no-prefetch', SRC], fresh('mnt'));
      const big = 'files/size-9MiB+12345'; // three 4 MiB chunks
      // Written whole beside the reads: `cat f; cat f` needs no wait in between.
      await readRight(m, big);
      const start = (await status(m)).opens;
      await readRight(m, big);
      assert.equal((await status(m)).opens, start + 1, 'the next open is passthrough');
      // Read in part, out of order, and closed between: whole once its last chunk came.
      const part = 'files/size-8MiB';
      const fh = await open(join(m.mountpoint, part), 'r');
      try {
        await fh.read(Buffer.alloc(4096), 0, 4096, (8 << 20) - 4096);
      } finally {
        await fh.close();
      }
      await readRight(m, part);
      const before = (await status(m)).opens;
      await readRight(m, part);
      assert.equal((await status(m)).opens, before + 1, 'read whole over two opens: the next is passthrough');
      // Five names of one inode, each read right whichever mode the inode is in.
      for (const name of ['hl/a', 'hl/b', 'hl/chain', 'hl/target', 'hl/a']) await readRight(m, name);
    } finally {
      await m?.stop();
    }
  });

  it('--no-passthrough: every open comes to stargzfs, and says why in status', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), '--no-passthrough', SRC], fresh('mnt'));
      for (let i = 0; i < 3; i++) await readRight(m, 'files/size-4097');
      const s = await status(m);
      assert.equal(s.enabled, false);
      assert.match(s.off ?? '', /no-passthrough/);
      assert.equal(s.opens, 0);
      assert.equal(s.cachedWhy, undefined, 'no reasons per open: passthrough is off for the whole mount');
    } finally {
      await m?.stop();
    }
  });
});
