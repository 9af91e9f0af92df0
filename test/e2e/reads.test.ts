// Reads through a real mount from a real registry behind the fault proxy: a chunk
// corrupted in transit is EIO for that read (never wrong bytes), reported in the status
// file, and the rest of the image keeps serving; 64 reads at once all complete.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { open, readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';

const r = rng(11);
const FILES = Array.from({ length: 64 }, (_, i) => ({ name: `data/f${String(i).padStart(2, '0')}.bin`, body: bytes(r, 200_000 + i * 1000) }));

describe('reads through a mount', () => {
  let served: ServedImage | undefined;
  let proxy: FaultProxy;
  let ref: string;
  let n = 0;
  const fresh = (name: string): string => join(served?.dir ?? '', `${name}-${++n}`);

  before(async () => {
    served = await serveImage('reads/img', [entries([{ name: 'data/', type: 'dir' }, ...FILES])], { chunkSize: 64 << 10, compressionLevel: 1 });
    ({ proxy, ref } = served);
  });
  after(async () => {
    await served?.stop();
  });

  it('64 files read at once, each right', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), '--no-background-fetch', '--no-prefetch', ref], fresh('mnt'));
      const got = await Promise.all(FILES.map((f) => readFile(join(m?.mountpoint ?? '', f.name))));
      got.forEach((b, i) => assert.ok(b.equals((FILES[i] as { body: Buffer }).body), (FILES[i] as { name: string }).name));
    } finally {
      await m?.stop();
    }
  });

  it('a corrupted chunk is EIO for that read, in the status file, and the other files still read', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', fresh('root'), '--no-background-fetch', '--no-prefetch', '--retries', '0', ref], fresh('mnt'));
      proxy.reset();
      // Every blob range while the victim is read: its own and the neighbours fetched beside it.
      proxy.inject({ kind: 'corrupt' }, 1000, /\/blobs\//, { rangedOnly: true });
      const victim = FILES[40] as { name: string; body: Buffer };
      // pread in 64 KiB steps: every read is either the right bytes or EIO, and the bad chunk is EIO.
      // Asynchronous reads: the proxy serving the mount runs in this process.
      const fh = await open(join(m.mountpoint, victim.name), 'r');
      let eio = 0;
      try {
        for (let off = 0; off < victim.body.length; off += 65536) {
          const buf = Buffer.alloc(65536);
          try {
            const { bytesRead: got } = await fh.read(buf, 0, 65536, off);
            assert.ok(got > 0, `a read at ${off} of a ${victim.body.length}-byte file returned nothing`);
            assert.ok(buf.subarray(0, got).equals(victim.body.subarray(off, off + got)), `wrong bytes at ${off}`);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'EIO') throw err;
            eio++;
          }
        }
      } finally {
        await fh.close();
      }
      assert.ok(eio >= 1, 'the corrupted chunk is EIO');
      assert.ok(proxy.stats.faults >= 1);
      await new Promise((res) => setTimeout(res, 200)); // requests still in flight finish, corrupted too
      proxy.reset();
      const status = JSON.parse(readFileSync(join(m.mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { layers: Array<{ errors: number; lastError: { code: string; message: string } | null }> };
      assert.ok((status.layers[0]?.errors ?? 0) >= 1);
      assert.match(status.layers[0]?.lastError?.code ?? '', /SGZ_DIGEST_MISMATCH|SGZ_DECODE/);
      const other = FILES[3] as { name: string; body: Buffer };
      assert.ok((await readFile(join(m.mountpoint, other.name))).equals(other.body), 'the rest of the image still reads');
      assert.ok((await readFile(join(m.mountpoint, victim.name))).equals(victim.body), 'read again, the file comes right: bad bytes were never cached');
    } finally {
      await m?.stop();
    }
  });
});
