// Whole files assembled from cached chunk files (for FUSE passthrough), on a real state root
// and meta.db: the right bytes with holes as zeros, assembled once and shared, nothing left
// behind when they cannot be, the quota and LRU shared with chunks, found again by a new
// process once synced, removed by gc when never indexed, and removed by clear.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { join } from 'node:path';
import { ChunkStore, type FilePiece } from '../../src/chunkcache/chunk-store.js';
import { openMetaDb } from '../../src/toc/inode-db.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';

const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();
const chunkFile = (root: string, d: Buffer): string => join(root, 'chunks', d.toString('hex').slice(0, 2), d.toString('hex'));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const piece = (data: Buffer): FilePiece => ({ digest: sha(data), size: data.length });
const hole = (size: number): FilePiece => ({ digest: null, size });

/** A store whose debug lines land, parsed, in `lines`. */
function store(root: string, quotaBytes = 1 << 30, opts: { writeBehind?: boolean; memoryBytes?: number } = {}): { s: ChunkStore; lines: Array<{ msg: string }>; close: () => void } {
  const lines: Array<{ msg: string }> = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l !== '') lines.push(JSON.parse(l) as { msg: string });
      cb();
    },
  });
  const db = openMetaDb(join(root, 'meta.db'));
  const s = new ChunkStore(db, { root, quotaBytes, memoryBytes: 1 << 20, ...opts }, createLogger('debug', sink as never));
  return {
    s,
    lines,
    close: () => {
      s.close();
      db.close();
    },
  };
}

/** Files under <root>/<dir>, fan-out directories walked. */
function filesUnder(root: string, dir: string): string[] {
  const top = join(root, dir);
  if (!existsSync(top)) return [];
  return readdirSync(top, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name);
}

const assembled = (lines: Array<{ msg: string }>): number => lines.filter((l) => l.msg === 'whole file assembled').length;

describe('whole files assembled from chunks', () => {
  it('a 3-chunk file with a hole in the middle assembles to its bytes, once, and is found after', async () => {
    const { dir, cleanup } = tempDir();
    const { s, lines, close } = store(dir);
    try {
      const [a, b, c] = [randomBytes(10_000), randomBytes(7_000), randomBytes(3_000)] as [Buffer, Buffer, Buffer];
      for (const d of [a, b, c]) await s.put(sha(d), d);
      const pieces = [piece(a), hole(5_000), piece(b), piece(c)];
      assert.equal(s.wholeFile(pieces), undefined, 'not assembled yet');

      const path = await s.assembleFile(pieces);
      await s.drain(); // indexed once synced
      assert.ok(path !== undefined, 'assembled');
      assert.ok(path.startsWith(join(dir, 'files')), path);
      assert.ok(readFileSync(path).equals(Buffer.concat([a, Buffer.alloc(5_000), b, c])), 'the bytes back to back, the hole as zeros');
      assert.equal(s.wholeFile(pieces), path);
      const before = statSync(path);

      await sleep(10);
      assert.equal(await s.assembleFile(pieces), path, 'asked again: the same file');
      const after = statSync(path);
      assert.deepEqual([after.ino, after.mtimeMs], [before.ino, before.mtimeMs], 'not written again');
      assert.equal(assembled(lines), 1);
      assert.deepEqual(filesUnder(dir, 'tmp'), [], 'no temporary file left');

      // Another file with the same chunk list (another layer) shares it; a different list does not.
      assert.equal(s.wholeFile(pieces.map((p) => ({ ...p }))), path);
      assert.equal(s.wholeFile([piece(a), hole(5_001), piece(b), piece(c)]), undefined);
    } finally {
      close();
      cleanup();
    }
  });

  it('a chunk not cached: undefined at once, and nothing left in files/ or tmp/', async () => {
    const { dir, cleanup } = tempDir();
    const { s, close } = store(dir);
    try {
      const a = randomBytes(4_000);
      await s.put(sha(a), a);
      assert.equal(await s.assembleFile([piece(a), piece(randomBytes(4_000))]), undefined, 'a chunk not cached');
      assert.deepEqual(filesUnder(dir, 'files'), []);
      assert.deepEqual(filesUnder(dir, 'tmp'), []);
    } finally {
      close();
      cleanup();
    }
  });

  it('grows as its chunks arrive: whole when the last is stored, from memory, from this process\'s files, and from an earlier one\'s once hashed', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const [a, b, c] = [randomBytes(30_000), randomBytes(20_000), randomBytes(10_000)] as [Buffer, Buffer, Buffer];
      {
        const { s, close } = store(dir);
        try {
          await s.put(sha(a), a);
          await s.drain();
        } finally {
          close();
        }
      }
      // a on disk from that process; this one has not read it; b stored (and its file written) now, c comes later.
      writeFileSync(chunkFile(dir, sha(a)), Buffer.concat([a.subarray(0, 100), Buffer.alloc(1), a.subarray(101)]));
      const { s, lines, close } = store(dir, 1 << 30, { memoryBytes: 1 });
      try {
        await s.put(sha(b), b);
        const pieces = [piece(a), piece(b), hole(1_000), piece(c), piece(b)];
        let made: string | undefined | null = null;
        const growing = s.growFile(pieces).then((p) => (made = p));
        assert.equal(s.growFile(pieces.map((p) => ({ ...p }))), s.growFile(pieces), 'asked again: one file');
        await sleep(50);
        assert.equal(made, null, 'waiting for a (its file on disk is damaged: hashed, dropped) and c');
        assert.ok(!existsSync(chunkFile(dir, sha(a))), 'the damaged chunk file dropped');
        await s.put(sha(c), c);
        await sleep(50);
        assert.equal(made, null, 'still waiting for a');
        assert.equal(s.finishingFile(pieces), undefined, 'a chunk still missing: not finishing');
        const last = s.put(sha(a), a);
        assert.equal(s.finishingFile(pieces), s.growFile(pieces), 'every chunk in: finishing, its writes left');
        await last;
        const path = await growing;
        assert.ok(path !== undefined, 'whole once the last chunk came');
        assert.ok(readFileSync(path).equals(Buffer.concat([a, b, Buffer.alloc(1_000), c, b])), 'every chunk at each of its offsets');
        assert.equal(s.wholeFile(pieces), path);
        assert.equal(assembled(lines), 1);
        await s.drain();
        assert.deepEqual(filesUnder(dir, 'tmp'), [], 'no temporary file left');
      } finally {
        close();
      }
    } finally {
      cleanup();
    }
  });

  it('clear() gives up a file still growing, its temporary file removed', async () => {
    const { dir, cleanup } = tempDir();
    const { s, close } = store(dir);
    try {
      const a = randomBytes(4_000);
      await s.put(sha(a), a);
      const growing = s.growFile([piece(a), piece(randomBytes(4_000))]);
      await sleep(20);
      assert.equal(filesUnder(dir, 'tmp').length, 1, 'the growing file');
      await s.clear();
      assert.equal(await growing, undefined);
      assert.deepEqual(filesUnder(dir, 'tmp'), []);
    } finally {
      close();
      cleanup();
    }
  });

  it('shares the quota and the LRU with chunks: counted in usage, evicted in turn, too large refused', async () => {
    const { dir, cleanup } = tempDir();
    const { s, close } = store(dir, 120_000);
    try {
      const chunk = (): Buffer => randomBytes(10_000);
      const as = [chunk(), chunk(), chunk()];
      for (const d of as) await s.put(sha(d), d);
      await sleep(5);
      const pieces = as.map(piece);
      const path = await s.assembleFile(pieces);
      await s.drain(); // indexed once synced
      assert.ok(path !== undefined);
      assert.deepEqual([s.usage().bytes, s.usage().files, s.usage().fileBytes, s.usage().chunks], [60_000, 1, 30_000, 3]);
      assert.equal(s.health().usedBytes, 60_000);
      await sleep(5);
      const bs = [chunk(), chunk(), chunk()];
      for (const d of bs) await s.put(sha(d), d);
      await sleep(5);
      assert.equal(s.wholeFile(pieces), path, 'used: now more recent than the b chunks');
      await sleep(5);
      const cs = Array.from({ length: 9 }, chunk);
      for (const d of cs) {
        await s.put(sha(d), d);
        await sleep(2);
      }
      // 3 + 3 + 9 chunks and the file (3 chunks' worth) in a 12-chunk quota: the a and b chunks went, oldest first.
      assert.ok(s.usage().bytes <= 120_000, String(s.usage().bytes));
      assert.ok([...as, ...bs].every((d) => !existsSync(chunkFile(dir, sha(d)))), 'older chunks evicted');
      assert.ok(existsSync(path), 'the file, used later, survives them');
      assert.equal(s.usage().fileBytes, 30_000);
      // The c chunks are newer than the file: the next chunk evicts the file (30 000 bytes at once).
      const next = chunk();
      await s.put(sha(next), next);
      assert.ok(!existsSync(path), 'the file evicted in its turn');
      assert.equal(s.wholeFile(pieces), undefined);
      assert.deepEqual([s.usage().files, s.usage().fileBytes], [0, 0]);
      assert.ok(cs.every((d) => existsSync(chunkFile(dir, sha(d)))), 'newer chunks kept');

      // More than a quarter of the quota (30 000 bytes).
      const big = [...cs.slice(0, 3).map(piece), hole(1)];
      assert.equal(await s.assembleFile(big), undefined);
      assert.deepEqual(filesUnder(dir, 'files'), []);
      assert.deepEqual(filesUnder(dir, 'tmp'), []);
    } finally {
      close();
      cleanup();
    }
  });

  it('making room never evicts the chunk files being copied from', async () => {
    const { dir, cleanup } = tempDir();
    // Nothing kept in memory: the file is copied from its chunk files.
    const { s, close } = store(dir, 120_000, { memoryBytes: 1 });
    try {
      // The file's own chunks are the oldest in a full cache: room for it must come from others.
      const own = Array.from({ length: 3 }, () => randomBytes(10_000));
      for (const d of own) await s.put(sha(d), d);
      await sleep(5);
      const others = Array.from({ length: 9 }, () => randomBytes(10_000));
      for (const d of others) await s.put(sha(d), d);
      assert.equal(s.usage().bytes, 120_000);
      const path = await s.assembleFile(own.map(piece));
      await s.drain(); // indexed once synced
      assert.ok(path !== undefined, 'assembled');
      assert.ok(readFileSync(path).equals(Buffer.concat(own)));
      assert.ok(own.every((d) => existsSync(chunkFile(dir, sha(d)))), 'its chunks kept');
      assert.equal(others.filter((d) => !existsSync(chunkFile(dir, sha(d)))).length, 3, 'three others evicted for it');
      assert.equal(s.usage().bytes, 120_000);
    } finally {
      close();
      cleanup();
    }
  });

  it('the same pieces asked twice at once: one assembly, both get the path; another beside it', async () => {
    const { dir, cleanup } = tempDir();
    const { s, lines, close } = store(dir);
    try {
      const chunks = Array.from({ length: 4 }, () => randomBytes(50_000));
      for (const d of chunks) await s.put(sha(d), d);
      const one = chunks.map(piece);
      const two = [hole(100), ...chunks.slice(0, 2).map(piece)];
      const first = s.assembleFile(one);
      const again = s.assembleFile(one);
      assert.equal(again, first, 'one promise shared');
      const [p1, p2, p3] = await Promise.all([first, again, s.assembleFile(two)]);
      assert.ok(p1 !== undefined && p3 !== undefined);
      assert.equal(p2, p1);
      assert.notEqual(p3, p1);
      assert.equal(assembled(lines), 2, 'one assembly per file');
      assert.ok(readFileSync(p1).equals(Buffer.concat(chunks)));
      assert.ok(readFileSync(p3).equals(Buffer.concat([Buffer.alloc(100), ...chunks.slice(0, 2)])));
      assert.equal(filesUnder(dir, 'files').length, 2);
    } finally {
      close();
      cleanup();
    }
  });

  it('a new store over the same root finds the file once it is on disk; one of the wrong size is dropped; gc removes an unindexed one', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const chunks = Array.from({ length: 3 }, () => randomBytes(8_000));
      const pieces = [piece(chunks[0] as Buffer), hole(3_000), piece(chunks[1] as Buffer), piece(chunks[2] as Buffer)];
      const want = Buffer.concat([chunks[0] as Buffer, Buffer.alloc(3_000), chunks[1] as Buffer, chunks[2] as Buffer]);
      let path: string | undefined;
      {
        const { s, close } = store(dir);
        for (const d of chunks) await s.put(sha(d), d);
        path = await s.assembleFile(pieces);
        await s.drain(); // indexed once synced
        assert.equal(s.wholeFile(pieces), path, 'served by its own process at once');
        // Indexed (so trusted by others) once synced: drain waits for that.
        await s.drain();
        close();
      }
      assert.ok(path !== undefined);
      {
        const { s, lines, close } = store(dir);
        assert.equal(s.wholeFile(pieces), undefined, 'a new process checks it first (its chunks are read meanwhile)');
        assert.equal(await s.assembleFile(pieces), path, 'checked, and not assembled again');
        assert.equal(s.wholeFile(pieces), path, 'then found');
        assert.equal(assembled(lines), 0);
        assert.ok(readFileSync(path).equals(want));
        assert.equal(s.usage().fileBytes, want.length);
        close();
      }
      // No row (a process that died before its sync): not served, and gc removes it.
      {
        const db = openMetaDb(join(dir, 'meta.db'));
        db.prepare('DELETE FROM cache_files').run();
        db.close();
        const { s, close } = store(dir);
        assert.equal(s.wholeFile(pieces), undefined, 'no row: not served');
        await s.gc();
        assert.ok(!existsSync(path), 'gc removed the file never known to be on disk');
        for (const d of chunks) await s.put(sha(d), d);
        assert.equal(await s.assembleFile(pieces), path, 'assembled again');
        await s.drain();
        assert.equal(s.usage().fileBytes, want.length);
        close();
      }
      truncateSync(path, want.length - 1);
      {
        const { s, close } = store(dir);
        assert.equal(s.wholeFile(pieces), undefined, 'the wrong size: not served');
        await sleep(20);
        assert.ok(!existsSync(path), 'and dropped');
        assert.equal(s.usage().files, 0);
        close();
      }
      {
        const { s, close } = store(dir);
        for (const d of chunks) assert.ok(await s.get(sha(d), d.length));
        assert.equal(await s.assembleFile(pieces), path, 'assembled anew');
        unlinkSync(path);
        close();
      }
      {
        const { s, close } = store(dir);
        assert.equal(s.wholeFile(pieces), undefined, 'removed by hand: not served');
        assert.equal(s.usage().files, 0, 'and its row goes');
        close();
      }
    } finally {
      cleanup();
    }
  });

  it('an assembled file damaged on disk is found by the next process and dropped, never served', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const chunks = Array.from({ length: 3 }, () => randomBytes(8_000));
      const pieces = chunks.map((c) => piece(c));
      let path: string | undefined;
      {
        const { s, close } = store(dir);
        for (const d of chunks) await s.put(sha(d), d);
        path = await s.assembleFile(pieces);
        await s.drain();
        close();
      }
      assert.ok(path !== undefined);
      const b = readFileSync(path);
      b[12_345] = (b[12_345] as number) ^ 1;
      writeFileSync(path, b);
      {
        const { s, close } = store(dir);
        assert.equal(s.wholeFile(pieces), undefined, 'not served unchecked');
        await sleep(200);
        assert.equal(s.wholeFile(pieces), undefined, 'not served after its check either');
        assert.ok(!existsSync(path), 'dropped');
        close();
      }
    } finally {
      cleanup();
    }
  });

  it('clear() removes assembled files with the chunks', async () => {
    const { dir, cleanup } = tempDir();
    const { s, close } = store(dir);
    try {
      const chunks = Array.from({ length: 2 }, () => randomBytes(6_000));
      for (const d of chunks) await s.put(sha(d), d);
      const pieces = chunks.map(piece);
      const path = await s.assembleFile(pieces);
      await s.drain(); // indexed once synced
      assert.ok(path !== undefined && existsSync(path));
      const before = await s.clear();
      assert.deepEqual([before.files, before.fileBytes, before.bytes], [1, 12_000, 24_000]);
      assert.ok(!existsSync(path));
      assert.ok(!existsSync(join(dir, 'files')));
      assert.deepEqual([s.usage().files, s.usage().bytes], [0, 0]);
      assert.equal(s.wholeFile(pieces), undefined);
      assert.equal(await s.assembleFile(pieces), undefined, 'its chunks went too');
    } finally {
      close();
      cleanup();
    }
  });
});
