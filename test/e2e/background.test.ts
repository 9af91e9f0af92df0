// Background fetch with default flags, counted at a proxy in front of the real registry:
// it runs while the mount is idle, one request at a time, and an on-demand read made
// meanwhile goes out at once, with no background request started while it is served or
// in the quiet period after it (the link is the read's).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';

const r = rng(5);
const FILES = Array.from({ length: 24 }, (_, i) => ({ name: `data/f${String(i).padStart(2, '0')}.bin`, body: bytes(r, 512 << 10) }));
const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** [start, end) of the blob ranges holding a file's chunks, from meta.db. */
function blobExtent(metaDb: string, name: string): [number, number] {
  const db = new Database(metaDb, { readonly: true });
  try {
    const row = db.prepare(
      'SELECT min(c.blob_offset) AS s, max(c.blob_end) AS e FROM chunks c JOIN dirents d ON d.node_id = c.node_id WHERE d.name = ?',
    ).get(name) as { s: number; e: number };
    return [row.s, row.e];
  } finally {
    db.close();
  }
}

const rangeOf = (h: string): [number, number] => {
  const m = /bytes=(\d+)-(\d+)/.exec(h);
  return m === null ? [0, 0] : [Number(m[1]), Number(m[2]) + 1];
};

describe('background fetch beside on-demand reads', () => {
  let served: ServedImage | undefined;

  before(async () => {
    served = await serveImage('background/img', [entries([{ name: 'data/', type: 'dir' }, ...FILES])], { chunkSize: 256 << 10, compressionLevel: 1 });
  });
  after(async () => {
    await served?.stop();
  });

  it('default flags: one background request at a time, none while a read is served or just after, and the read goes out at once', async () => {
    const proxy = served?.proxy;
    assert.ok(proxy !== undefined);
    const root = join(served?.dir ?? '', 'root');
    let m: TestMount | undefined;
    try {
      // A slow link (about 6 MB/s), so that requests last long enough to overlap.
      proxy.inject({ kind: 'trickle', bytesPerTick: 64 << 10, tickMs: 10 }, 100_000, /\/blobs\//, { rangedOnly: true });
      m = await mountDaemon(['--root', root, served?.ref ?? ''], join(served?.dir ?? '', 'mnt'));
      const mounted = performance.now();
      await sleep(1500); // the mount idle: background fetch runs
      const victim = FILES[FILES.length - 1] as { name: string; body: Buffer };
      const [vs, ve] = blobExtent(join(root, 'meta.db'), victim.name.split('/')[1] as string);
      const t0 = performance.now();
      assert.ok((await readFile(join(m.mountpoint, victim.name))).equals(victim.body));
      const t1 = performance.now();
      await sleep(600);
      const log = proxy.stats.blobLog.filter((e) => e.start >= mounted);
      // The read's requests: over its file's bytes, and started before it returned. A
      // background batch planned before the read may cover those bytes too, and run after
      // it (under load, the background fetch had not passed them when the read came).
      const forRead = log.filter((e) => {
        const [s, end] = rangeOf(e.range);
        return s < ve && end > vs && e.start < t1;
      });
      const background = log.filter((e) => !forRead.includes(e));
      assert.ok(background.some((e) => e.start < t0), 'background fetch ran while the mount was idle');
      assert.ok(forRead.length >= 1, 'the read fetched its file');
      const readStart = Math.min(...forRead.map((e) => e.start));
      const readEnd = Math.max(...forRead.map((e) => e.end));
      assert.ok(readStart - t0 < 1000, `the read's request went out ${Math.round(readStart - t0)} ms after the read`);
      const during = background.filter((e) => e.start >= readStart && e.start < readEnd + 200);
      assert.deepEqual(during.map((e) => e.range), [], 'no background request started while the read was served or just after');
      for (const a of background) {
        const overlapping = background.filter((b) => b !== a && b.start < a.end && a.start < b.end);
        assert.deepEqual(overlapping.map((b) => b.range), [], `background requests one at a time (${a.range})`);
      }
    } finally {
      proxy.reset();
      await m?.stop();
    }
  });
});
