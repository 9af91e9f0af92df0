// Building the tree from TOC entries (ESTARGZ.md §4.5, §4.6, §11) against the inode table.
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { importTocStream, type ImportInput } from '../../src/toc/importer.js';
import { TocJsonParser } from '../../src/toc/json-entries.js';
import { openMetaDb } from '../../src/toc/inode-db.js';
import { tempDir } from '../helpers/tmp.js';
import { LayerView } from '../../src/toc/layer-view.js';
import { resolvePath } from '../../src/toc/view.js';
import { S_IFDIR, S_IFREG } from '../../src/toc/inode-db.js';
import { tocDb } from '../helpers/toc-db.js';

const D = 'sha256:' + 'a'.repeat(64);

function view(entries: unknown[] | null) {
  const { table, layers } = tocDb([{ entries }]);
  const layer = layers[0];
  assert.ok(layer);
  return { v: new LayerView(table, layer), table, layer };
}

describe('TOC → inode table', () => {
  it('an implicit parent is replaced by its later explicit entry, keeping its children', () => {
    const { v } = view([
      { name: 'a/b/c', type: 'reg' },
      { name: 'a/b/', type: 'dir', mode: 0o700, uid: 7, modtime: '2020-01-01T00:00:00Z' },
    ]);
    const b = resolvePath(v, 'a/b');
    assert.equal(b.mode, S_IFDIR | 0o700);
    assert.equal(b.uid, 7);
    assert.equal(b.mtime, 1577836800);
    assert.deepEqual(v.readdir(b), ['c']);
    assert.equal(resolvePath(v, 'a').mtime, null, 'implicit dirs have no mtime');
    assert.equal(resolvePath(v, 'a').mode, S_IFDIR | 0o755);
  });

  it('duplicates: the later entry wins; a file replacing a directory drops its subtree', () => {
    const { v } = view([
      { name: 'x/', type: 'dir' },
      { name: 'x/inner', type: 'reg' },
      { name: 'x', type: 'symlink', linkName: 'elsewhere' },
      { name: 'dup', type: 'reg', mode: 0o600 },
      { name: 'dup', type: 'reg', mode: 0o644 },
    ]);
    assert.equal(resolvePath(v, 'x').link, 'elsewhere');
    assert.equal(resolvePath(v, 'dup').mode, S_IFREG | 0o644);
    assert.deepEqual(v.readdir(v.root()), ['dup', 'x']);
    assert.equal(v.root().nlink, 2, 'x is no longer a directory');
  });

  it('hard links share one inode, chains resolve, nlink counts names; dirs count subdirs', () => {
    const { v } = view([
      { name: 'd/', type: 'dir' },
      { name: 'd/e/', type: 'dir' },
      { name: 'd/f/', type: 'dir' },
      { name: 't', type: 'reg', size: 3, offset: 100, chunkDigest: D },
      { name: 'd/l1', type: 'hardlink', linkName: 't' },
      { name: 'l2', type: 'hardlink', linkName: './d/l1' },
    ]);
    const t = resolvePath(v, 't');
    assert.equal(resolvePath(v, 'd/l1').ino, t.ino);
    assert.equal(resolvePath(v, 'l2').ino, t.ino);
    assert.equal(t.nlink, 3);
    assert.equal(resolvePath(v, 'd').nlink, 4);
    assert.equal(v.root().nlink, 3);
  });

  it('mode type bits are masked, absent fields are zero, absent modtime is epoch 0', () => {
    const { v } = view([{ name: './f', type: 'reg', mode: 0o104755 }, { name: 'n', type: 'fifo' }]);
    const f = resolvePath(v, 'f');
    assert.equal(f.mode, S_IFREG | 0o4755);
    const n = resolvePath(v, 'n');
    assert.deepEqual([n.uid, n.gid, n.size, n.mtime, n.mode & 0o7777], [0, 0, 0, 0, 0]);
  });

  it('empty, null and missing entries make an empty root', () => {
    for (const toc of ['{"version":1,"entries":[]}', '{"version":1,"entries":null}', '{"version":1}']) {
      const { table, layers } = tocDb([toc]);
      const v = new LayerView(table, layers[0] as never);
      assert.deepEqual(v.readdir(v.root()), []);
      assert.equal(v.root().mode, S_IFDIR | 0o755);
    }
  });

  it('chunk extents: next member start, shared members (innerOffset), chunkSize 0 = rest of file', () => {
    const { table, v } = view([
      { name: 'a', type: 'reg', size: 10, offset: 100, chunkSize: 4, chunkDigest: D },
      { name: 'a', type: 'chunk', offset: 200, chunkOffset: 4, chunkSize: 4, chunkDigest: D },
      { name: 'a', type: 'chunk', offset: 300, chunkOffset: 8, chunkDigest: D },
      { name: 'b', type: 'reg', size: 5, offset: 300, innerOffset: 700, chunkDigest: D },
      { name: 'c', type: 'reg', size: 6, offset: 450, chunkDigest: D },
    ], );
    const rows = (p: string) => table.allChunks(resolvePath(v, p).dataId).map((c) => [c.chunk_offset, c.chunk_size, c.blob_offset, c.blob_end, c.inner_offset]);
    assert.deepEqual(rows('a'), [[0, 4, 100, 200, 0], [4, 4, 200, 300, 0], [8, 2, 300, 450, 0]]);
    assert.deepEqual(rows('b'), [[0, 5, 300, 450, 700]]);
    assert.deepEqual(rows('c'), [[0, 6, 450, 1 << 30, 0]], 'the last member ends where the data region ends');
    assert.deepEqual(table.chunks(resolvePath(v, 'a').dataId, 5, 9).map((c) => c.chunk_offset), [4, 8]);
  });

  it('xattrs are decoded from base64, empty values kept', () => {
    const { v } = view([{ name: 'x', type: 'reg', xattrs: { 'user.a': 'aGk=', 'user.empty': '' } }]);
    const xs = v.xattrs(resolvePath(v, 'x')).map((x) => [x.name, x.value.toString()]);
    assert.deepEqual(xs, [['user.a', 'hi'], ['user.empty', '']]);
  });

  it('inode numbers follow TOC order and are stable for the same TOC', () => {
    const entries = [{ name: 'b', type: 'reg' }, { name: 'a', type: 'reg' }];
    const one = view(entries).v;
    assert.ok(resolvePath(one, 'b').ino < resolvePath(one, 'a').ino);
  });

  // Issue 22: missing parents were created recursively; 8,000 components overflowed.
  it('a 100,000-component path is imported without recursion, and the rest of the layer with it', { timeout: 60_000 }, () => {
    const deep = `${Array.from({ length: 99_999 }, () => 'd').join('/')}/f`;
    const { v, layer } = view([
      { name: 'a', type: 'fifo' },
      { name: deep, type: 'reg', size: 3, offset: 100, chunkDigest: D },
      { name: `${deep.slice(0, 1999)}/x`, type: 'fifo' },
      { name: 'z', type: 'symlink', linkName: 'a' },
    ]);
    assert.equal(layer.warning_count, 0);
    assert.equal(resolvePath(v, deep).size, 3);
    assert.deepEqual(v.readdir(resolvePath(v, deep.slice(0, 1999))), ['d', 'x']);
    assert.deepEqual(v.readdir(v.root()), ['a', 'd', 'z']);
    assert.equal(resolvePath(v, 'z').link, 'a');
  });

  // V8 hashes strings of over 16,383 characters by length alone: 4,000 files in a
  // directory 20,000 characters deep collided in one Map bucket (23 s to insert).
  it('thousands of deep paths of one length import in linear time (no hash flooding)', { timeout: 60_000 }, () => {
    const dir = Array.from({ length: 10_000 }, () => 'd').join('/');
    const files = Array.from({ length: 4000 }, (_, i) => ({ name: `${dir}/f${String(i).padStart(6, '0')}`, type: 'fifo' }));
    const t0 = performance.now();
    const { v, layer } = view(files);
    const ms = performance.now() - t0;
    assert.equal(layer.warning_count, 0);
    assert.equal(v.readdir(resolvePath(v, dir)).length, 4000);
    assert.ok(ms < 10_000, `import took ${ms.toFixed(0)} ms`);
  });

  // Each directory replaced by a file dropped its subtree by scanning every path of the layer.
  it('many directories replaced by files: each drop costs its own subtree, not the layer', { timeout: 60_000 }, () => {
    const entries: Array<{ name: string; type: string }> = [];
    for (let i = 0; i < 20_000; i++) entries.push({ name: `keep/k${i}`, type: 'fifo' });
    for (let i = 0; i < 20_000; i++) entries.push({ name: `r${i}/child`, type: 'fifo' }, { name: `r${i}`, type: 'fifo' });
    const t0 = performance.now();
    const { v } = view(entries);
    const ms = performance.now() - t0;
    assert.equal(v.readdir(resolvePath(v, 'keep')).length, 20_000);
    assert.equal(resolvePath(v, 'r7').mode & 0o170000, 0o010000, 'r7 is the fifo that replaced the directory');
    assert.ok(ms < 15_000, `import took ${ms.toFixed(0)} ms`);
  });

  it('a name longer than Linux allows (255 bytes) is refused per entry, the rest kept', () => {
    const { v, layer } = view([
      { name: `ok/${'n'.repeat(255)}`, type: 'fifo' },
      { name: `bad/${'n'.repeat(256)}`, type: 'fifo' },
      { name: `bad/${'é'.repeat(128)}`, type: 'fifo' },
      { name: 'z', type: 'fifo' },
    ]);
    assert.equal(layer.warning_count, 2);
    assert.deepEqual(v.readdir(resolvePath(v, 'ok')), ['n'.repeat(255)]);
    assert.deepEqual(v.readdir(v.root()), ['ok', 'z']);
  });

  // Issue 22: the digest was compared only after the whole TOC had been parsed and
  // imported, so a TOC that was going to be refused still cost its full parse.
  it('a TOC whose digest does not match is refused before the parser sees a byte', async () => {
    const { dir, cleanup } = tempDir();
    const push = mock.method(TocJsonParser.prototype, 'push');
    try {
      const file = join(dir, 'meta.db');
      openMetaDb(file).close();
      const input: ImportInput = {
        digest: `sha256:${'b'.repeat(64)}`, tocCompressedDigest: undefined, verified: true, format: 'estargz', compression: 'gzip',
        blobSize: 1000, footerSize: 51, tocOffset: 900, tocCompressedSize: 49, dataEnd: 900,
      };
      // Malformed as well: had it been parsed first, the error would be SGZ_TOC_FORMAT.
      const json = Buffer.from('{"version": 1, "entries": [{"name": "a", "type": "reg"}, !!!');
      const chunks = async function* () { for (let i = 0; i < json.length; i += 8) yield json.subarray(i, i + 8); };
      await assert.rejects(
        importTocStream(file, input, chunks(), `sha256:${'c'.repeat(64)}`),
        (err: { code?: string; message?: string }) => err.code === 'SGZ_DIGEST_MISMATCH' && /TOC digest mismatch/.test(err.message ?? ''),
      );
      assert.equal(push.mock.callCount(), 0, 'the parser ran');
      const db = openMetaDb(file);
      assert.equal(db.prepare('SELECT count(*) FROM layers').pluck().get(), 0);
      assert.equal(db.prepare('SELECT count(*) FROM nodes').pluck().get(), 0);
      db.close();
      // The same bytes under their own digest are parsed (and refused for what they are).
      const own = `sha256:${createHash('sha256').update(json).digest('hex')}`;
      await assert.rejects(importTocStream(file, input, chunks(), own), (err: { code?: string }) => err.code === 'SGZ_TOC_FORMAT');
      assert.ok(push.mock.callCount() > 0);
    } finally {
      push.mock.restore();
      cleanup();
    }
  });
});
