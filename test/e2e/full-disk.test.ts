// A --daemon mount whose state root is a tmpfs far smaller than the image, which another
// program then fills to the last byte for a while: the server keeps serving every file
// right (its log and its chunk cache are on that disk), no temporary chunk files pile up,
// the full disk is warned about once (not per chunk) and its end told, and `stargzfs
// status` shows it. Prints what was fetched against the image's size (a default quota
// larger than the disk never evicted, and a probe fetched the blob 2.4 times).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { cliJson, runCli } from '../helpers/cli.js';
import { freeBytes, mountTmpfs } from '../helpers/tmpfs.js';
import type { CacheHealth } from '../../src/chunkcache/chunk-store.js';

const DISK_BYTES = 20 << 20;
/** 2,560 files of 32 KiB, incompressible: an 80 MiB blob, four times the disk and more than the 64 MiB memory LRU. */
const FILES = Array.from({ length: 2560 }, (_, i) => ({ name: `data/d${String(i >> 6).padStart(2, '0')}/f${String(i).padStart(4, '0')}.bin`, body: randomBytes(32 << 10) }));
const DIRS = [...new Set(FILES.map((f) => f.name.slice(0, f.name.lastIndexOf('/') + 1)))];

interface Status {
  layers: Array<{ fetchedBytes: number; transferredBytes: number; totalBytes: number; errors: number }>;
  cache: CacheHealth;
}

interface LogLine { level: number; msg: string; mod?: string }

/** The blob's size, from the image layout the writer made. */
function blobSize(dir: string): number {
  const layout = join(dir, 'img');
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  const blob = (d: string): string => join(layout, 'blobs', ...d.split(':'));
  const manifest = JSON.parse(readFileSync(blob(index.manifests[0]?.digest ?? ''), 'utf8')) as { layers: Array<{ size: number }> };
  return manifest.layers.reduce((n, l) => n + l.size, 0);
}

/** Takes every free byte of the filesystem at `dir`. */
function fill(dir: string, name: string): void {
  try {
    writeFileSync(join(dir, name), Buffer.alloc(freeBytes(dir)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

describe('a mount whose state root is on a full disk', () => {
  let served: ServedImage | undefined;

  before(async () => {
    served = await serveImage('full-disk/img', [entries([{ name: 'data/', type: 'dir' }, ...DIRS.map((name) => ({ name, type: 'dir' as const })), ...FILES])], { compressionLevel: 1 });
  });
  after(async () => {
    await served?.stop();
  });

  it('serves every file right, stays up, leaves no temporary files, warns once, and says so in its status', async () => {
    const s = served as ServedImage;
    const disk = mountTmpfs(DISK_BYTES);
    let m: TestMount | undefined;
    try {
      const root = join(disk.dir, 'state');
      m = await mountDaemon(['--root', root, '--log-level', 'info', s.ref], join(s.dir, 'mnt'));
      const mnt = m.mountpoint;
      s.proxy.reset();
      let wrong = 0;
      const failed: string[] = [];
      const readAll = async (files: typeof FILES): Promise<void> => {
        let next = 0;
        await Promise.all(Array.from({ length: 8 }, async () => {
          for (let i = next++; i < files.length; i = next++) {
            const f = files[i] as { name: string; body: Buffer };
            try {
              if (!(await readFile(join(mnt, f.name))).equals(f.body)) wrong++;
            } catch (err) {
              failed.push(`${f.name}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
            }
          }
        }));
      };
      const status = (): Promise<Status> => cliJson<Status>(['status', mnt, '--json']);
      const third = Math.floor(FILES.length / 3);
      // Chunks are written behind reads (within WRITE_MAX_DELAY_MS), and the free space is
      // looked at once a second: a pause lets both happen.
      const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 2500));

      await readAll(FILES.slice(0, third));
      await settle();
      const before = await status();
      // Another program takes every free byte of the disk, the log's included.
      fill(disk.dir, 'filler');
      await readAll(FILES.slice(third, 2 * third));
      await settle();
      const whileFull = await status();
      const shown = await runCli(['status', mnt]);
      rmSync(join(disk.dir, 'filler'));
      await readAll(FILES.slice(2 * third));
      await settle();
      const after = await status();
      const alive = (() => {
        try {
          process.kill(m.pid, 0);
          return true;
        } catch {
          return false;
        }
      })();
      const fetched = s.proxy.stats.blobBytes;
      await m.stop();

      const tmpLeft = existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')).length : 0;
      const logs = readdirSync(join(root, 'logs')).map((f) => readFileSync(join(root, 'logs', f), 'utf8')).join('');
      // A line the full disk cut short is kept as such: the log must still say what happened.
      const lines = logs.split('\n').filter((l) => l !== '').map((l): LogLine => {
        try {
          return JSON.parse(l) as LogLine;
        } catch {
          return { level: 0, msg: `(cut short) ${l.slice(0, 80)}` };
        }
      });
      const diskFull = lines.filter((l) => l.level >= 40 && /disk full/.test(l.msg));
      const size = blobSize(s.dir);
      const report = {
        files: FILES.length, readRight: FILES.length - wrong - failed.length, wrong, unreadable: failed.length, serverAlive: alive, tmpFilesLeft: tmpLeft,
        logLines: lines.length, diskFullWarnings: diskFull.length, warnings: lines.filter((l) => l.level >= 40).map((l) => l.msg),
        blobBytes: size, fetchedFromRegistry: fetched, fetchedRatio: Number((fetched / size).toFixed(2)),
        cache: { before: before.cache, whileFull: whileFull.cache, after: after.cache }, layer: after.layers[0],
      };
      console.log(`full-disk report: ${JSON.stringify(report)}`);

      assert.deepEqual(failed.slice(0, 5), [], 'every file reads');
      assert.equal(wrong, 0, 'every file reads right');
      assert.ok(alive, 'the server is still up');
      assert.ok(tmpLeft <= 2, `no temporary chunk files left (${tmpLeft})`);
      assert.equal(diskFull.length, 1, `the full disk warned about once: ${JSON.stringify(diskFull)}`);
      assert.ok(lines.some((l) => l.msg === 'cache writable again'), 'and its end told');
      assert.ok(lines.length < 50, `a handful of log lines, not one per chunk (${lines.length})`);
      assert.ok(before.cache.configuredQuotaBytes >= 512 << 20, 'the default quota is larger than the disk');
      assert.ok(before.cache.quotaBytes < DISK_BYTES, `the quota in effect fits the disk (${before.cache.quotaBytes})`);
      // Once eviction has made room under the lowered quota the disk is no longer full for the
      // cache (on a busy machine that can come before the status is read): either is shown.
      assert.ok(whileFull.cache.quotaBytes < before.cache.quotaBytes, 'the quota followed the free space down');
      assert.match(shown.stdout.toString(), /cache: .*(DISK FULL|lowered from [\d.]+(?: MiB)?: what the disk holds)/, 'status shows the condition');
      assert.equal(after.cache.diskFull, false, 'and its end');
      const layer = after.layers[0];
      assert.ok(layer !== undefined && layer.fetchedBytes <= layer.totalBytes, 'fetchedBytes counts each range once');
    } finally {
      await m?.stop();
      disk.cleanup();
    }
  });
});
