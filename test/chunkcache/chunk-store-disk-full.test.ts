// The chunk cache on a real tmpfs that fills up: a failed write leaves no temporary file,
// a full disk is warned about once (not per chunk), reads get the right bytes or a miss,
// the quota drops to what the disk holds so that eviction makes room, and writing resumes
// once the disk has room again.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { ChunkStore } from '../../src/chunkcache/chunk-store.js';
import { openMetaDb } from '../../src/toc/inode-db.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';
import { freeBytes, mountTmpfs } from '../helpers/tmpfs.js';

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const chunkFile = (root: string, d: Buffer): string => join(root, 'chunks', d.toString('hex').slice(0, 2), d.toString('hex'));
const CHUNK = 64 << 10;

interface Line { level: number; msg: string; mod?: string }

/** A logger whose lines land, parsed, in `lines`. */
function capture(): { log: ReturnType<typeof createLogger>; lines: Line[] } {
  const lines: Line[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as Line);
      cb();
    },
  });
  return { log: createLogger('info', sink as never), lines };
}

/** Takes every free byte of the filesystem at `root` (a file nobody else would write). */
function fill(root: string, name: string): void {
  try {
    writeFileSync(join(root, name), Buffer.alloc(freeBytes(root)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  }
}

const warnings = (lines: Line[]): Line[] => lines.filter((l) => l.level >= 40);

describe('chunk store on a full disk', () => {
  it('a disk filled by others: the quota drops to what it holds and eviction makes room; one warning, no temporary files', async () => {
    const disk = mountTmpfs(2 << 20);
    const meta = tempDir();
    const { log, lines } = capture();
    const db = openMetaDb(join(meta.dir, 'meta.db'));
    try {
      const s = new ChunkStore(db, { root: disk.dir, quotaBytes: 1 << 30, memoryBytes: 4 * CHUNK }, log);
      const first = s.health().quotaBytes;
      assert.ok(first <= 2 << 20, `a quota larger than the disk is capped to it (${first})`);
      const chunks = Array.from({ length: 24 }, () => randomBytes(CHUNK));
      for (const c of chunks.slice(0, 8)) await s.put(sha(c), c);
      fill(disk.dir, 'filler');
      for (const c of chunks.slice(8)) await s.put(sha(c), c);

      assert.deepEqual(readdirSync(join(disk.dir, 'tmp')), [], 'no temporary file is left behind');
      const h = s.health();
      assert.equal(h.lastWriteError, 'ENOSPC');
      assert.ok(h.writeErrors >= 1);
      assert.ok(h.quotaBytes < 8 * CHUNK, `the quota dropped to what the disk holds (${h.quotaBytes})`);
      assert.ok(s.usage().bytes <= h.quotaBytes, 'eviction holds the lowered quota');
      const last = chunks.at(-1) as Buffer;
      assert.ok(existsSync(chunkFile(disk.dir, sha(last))), 'eviction made room: the newest chunk is on disk');
      assert.equal(h.memoryOnlyChunks, 0);
      const warned = warnings(lines);
      assert.equal(warned.length, 1, JSON.stringify(warned));
      assert.match(warned[0]?.msg ?? '', /disk full/);
      for (const c of chunks) {
        const got = await s.get(sha(c), c.length);
        assert.ok(got === undefined || got.equals(c), 'the right bytes or a miss');
      }
      s.close();
    } finally {
      db.close();
      meta.cleanup();
      disk.cleanup();
    }
  });

  it('a disk with no room at all: chunks kept in memory only, one warning, and written again once there is room', async () => {
    const disk = mountTmpfs(2 << 20);
    const meta = tempDir();
    const { log, lines } = capture();
    const db = openMetaDb(join(meta.dir, 'meta.db'));
    try {
      for (const writeBehind of [false, true]) {
        lines.length = 0;
        const s = new ChunkStore(db, { root: disk.dir, quotaBytes: 1 << 30, memoryBytes: 6 * CHUNK, writeBehind }, log);
        fill(disk.dir, 'filler');
        const chunks = Array.from({ length: 20 }, () => randomBytes(CHUNK));
        for (const c of chunks) await s.put(sha(c), c); // a full disk is no error for the caller
        await s.drain();

        const tmp = join(disk.dir, 'tmp');
        assert.deepEqual(existsSync(tmp) ? readdirSync(tmp) : [], [], `no temporary file is left behind (writeBehind ${writeBehind})`);
        for (const c of chunks) assert.ok(!existsSync(chunkFile(disk.dir, sha(c))));
        let hits = 0;
        for (const c of chunks) {
          const got = await s.get(sha(c), c.length);
          assert.ok(got === undefined || got.equals(c), 'the right bytes (from memory) or a miss');
          if (got !== undefined) hits++;
        }
        assert.ok(hits >= 5, `the newest chunks are served from memory (${hits})`);
        const h = s.health();
        assert.equal(h.diskFull, true);
        assert.equal(h.memoryOnlyChunks, 20);
        assert.equal(h.quotaBytes, 0, 'the quota in effect follows the disk down');
        // The free space is looked at before writing: no file is tried on a disk without room.
        assert.equal(h.writeErrors, 0);
        assert.equal(warnings(lines).length, 1, JSON.stringify(warnings(lines)));
        assert.match(warnings(lines)[0]?.msg ?? '', /cache disk full, chunks kept in memory only/);

        // Space returns: the quota rises again (free space is looked at once a second at most).
        rmSync(join(disk.dir, 'filler'));
        await new Promise((r) => setTimeout(r, 1100));
        const more = randomBytes(CHUNK);
        await s.put(sha(more), more);
        await s.drain();
        assert.ok(existsSync(chunkFile(disk.dir, sha(more))), 'written once the disk has room');
        assert.equal(s.health().diskFull, false);
        assert.ok(lines.some((l) => l.msg === 'cache writable again'));
        assert.equal(warnings(lines).length, 1);
        await s.clear();
        s.close();
      }
    } finally {
      db.close();
      meta.cleanup();
      disk.cleanup();
    }
  });
});
