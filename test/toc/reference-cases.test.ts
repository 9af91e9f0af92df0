// The reference implementation's own test cases (containerd/stargz-snapshotter 0.12.0 as
// Debian packages it: estargz/testutil.go, estargz/*_test.go, metadata/testutil.go,
// fs/layer/testutil.go), for what its reader accepts: ours must read the same layers the
// same way. Each test names the reference case it answers; README.md ("The reference's
// test cases") maps every case.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { linkSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { withImage, type CommandContext } from '../../src/cli/context.js';
import { inspectReport } from '../../src/layer/report.js';
import { isDir, resolvePath, type ImageView, type ViewNode } from '../../src/toc/view.js';
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../../src/toc/inode-db.js';
import { cleanName } from '../../src/toc/names.js';
import { footer as estargzFooter, writeEstargz, writeEstargzStream, type WriterOptions } from '../../src/toc/writer.js';
import { parseTar } from '../../src/toc/tar.js';
import { dataEnd, parseFooter } from '../../src/toc/footer.js';
import { OCI_LAYER_GZIP, OCI_LAYER_ZSTD } from '../../src/http/media-types.js';
import { entries, type Spec } from '../helpers/entries.js';
import { layoutWith, sha256, tocAnnotation, tocOf, withToc, writerBlob } from '../helpers/blobs.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

// estargz/testutil.go allowedPrefix: every tree is written with each of these in front of its names.
const PREFIXES = ['', './', '/', '../'] as const;

/** Layers (one tree each) written by our writer, opened from an OCI layout. */
async function withLayers<T>(trees: readonly (readonly Spec[])[], opts: WriterOptions, fn: (ctx: CommandContext) => Promise<T>): Promise<T> {
  const { dir, cleanup } = tempDir();
  try {
    const layers = trees.map((t) => {
      const { blob, tocDigest } = writerBlob(entries(t), opts);
      return { blob, mediaType: opts.format === 'zstdchunked' ? OCI_LAYER_ZSTD : OCI_LAYER_GZIP, annotations: tocAnnotation(tocDigest) };
    });
    const ref = await layoutWith(dir, layers);
    return await withImage(testConfig(join(dir, 'root')), ref, fn);
  } finally {
    cleanup();
  }
}

const prefixed = (prefix: string, specs: readonly Spec[]): Spec[] => specs.map((s) => ({ ...s, name: prefix + s.name }));
const typeOf = (n: ViewNode): number => n.mode & S_IFMT;

async function read(ctx: CommandContext, view: ImageView, path: string, off = 0, len?: number): Promise<Buffer> {
  const node = resolvePath(view, path);
  return ctx.image.reader.read(node, path, off, len ?? node.size);
}

function children(view: ImageView, path: string): string[] {
  return view.readdir(resolvePath(view, path));
}

/** Every regular file reads whole, and from every offset to its end (hasFileContentsRange, hasFileContentsOffset). */
async function checkContents(ctx: CommandContext, view: ImageView, files: Record<string, string>): Promise<void> {
  for (const [path, body] of Object.entries(files)) {
    const node = resolvePath(view, path);
    assert.equal(typeOf(node), S_IFREG, `${path} is a regular file`);
    assert.equal(node.size, Buffer.byteLength(body), `size of ${path}`);
    for (let off = 0; off <= body.length; off++) {
      assert.equal((await read(ctx, view, path, off, body.length + 10)).toString(), body.slice(off), `${path} from ${off}`);
    }
  }
}

// testBuild's four trees (chunk size 4), as the reference writes them (dir(), file(), link()...).
const TREES: Record<string, Spec[]> = {
  'regfiles and directories': [
    { name: 'foo', body: 'test1' },
    { name: 'foo2/', type: 'dir' },
    { name: 'foo2/bar', body: 'test2', xattrs: { test: 'sample' } },
  ],
  'empty files': [
    { name: 'foo', body: 'tttttt' }, { name: 'foo_empty', body: '' }, { name: 'foo2', body: 'tttttt' }, { name: 'foo_empty2', body: '' },
    { name: 'foo3', body: 'tttttt' }, { name: 'foo_empty3', body: '' }, { name: 'foo4', body: 'tttttt' }, { name: 'foo_empty4', body: '' },
    { name: 'foo5', body: 'tttttt' }, { name: 'foo_empty5', body: '' }, { name: 'foo6', body: 'tttttt' },
  ],
  'various files': [
    { name: 'baz.txt', body: 'bazbazbazbazbazbazbaz' },
    { name: 'foo.txt', body: 'a' },
    { name: 'barlink', link: 'test/bar.txt', mode: 0o644 },
    { name: 'test/', type: 'dir' },
    { name: 'dev/', type: 'dir' },
    { name: 'dev/testblock', type: 'block', dev: [3, 4] },
    { name: 'dev/testfifo', type: 'fifo' },
    { name: 'dev/testchar1', type: 'char', dev: [5, 6] },
    { name: 'test/bar.txt', body: 'testbartestbar', xattrs: { test2: 'sample2' } },
    { name: 'test2/', type: 'dir' },
    { name: 'test2/bazlink', type: 'hardlink', link: 'baz.txt' },
    { name: 'dev/testchar2', type: 'char', dev: [1, 2] },
  ],
  'no contents': [
    { name: 'baz.txt', body: '' },
    { name: 'barlink', link: 'test/bar.txt', mode: 0o644 },
    { name: 'test/', type: 'dir' },
    { name: 'dev/', type: 'dir' },
    { name: 'dev/testblock', type: 'block', dev: [3, 4] },
    { name: 'dev/testfifo', type: 'fifo' },
    { name: 'dev/testchar1', type: 'char', dev: [5, 6] },
    { name: 'test/bar.txt', body: '', xattrs: { test2: 'sample2' } },
    { name: 'test2/', type: 'dir' },
    { name: 'test2/bazlink', type: 'hardlink', link: 'baz.txt' },
    { name: 'dev/testchar2', type: 'char', dev: [1, 2] },
  ],
};

/** What each of the trees above must look like, whatever the prefix and compression. */
async function checkTree(ctx: CommandContext, view: ImageView, name: string): Promise<void> {
  const specs = TREES[name] as Spec[];
  // Every entry is there once, under its cleaned name, with its type and attributes.
  for (const s of specs) {
    const path = cleanName(s.name);
    const node = resolvePath(view, path);
    const type = s.type ?? (s.link !== undefined ? 'symlink' : s.name.endsWith('/') ? 'dir' : 'reg');
    const want = { dir: S_IFDIR, reg: S_IFREG, symlink: S_IFLNK, hardlink: S_IFREG, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO }[type as 'dir'];
    assert.equal(typeOf(node), want, `${name}: type of ${path}`);
    if (type === 'symlink') {
      assert.equal(node.link, s.link);
      assert.equal(node.size, Buffer.byteLength(s.link as string), 'a symlink\'s size is its target\'s length (symlink_size)');
    }
    if (type === 'char' || type === 'block') assert.deepEqual([node.rdevMajor, node.rdevMinor], s.dev);
    if (type === 'hardlink') assert.equal(node.ino, resolvePath(view, cleanName(s.link as string)).ino, `${path} is the same inode as its target`);
    const xattrs = Object.fromEntries(view.xattrs(node).map((x) => [x.name, x.value.toString()]));
    const target = type === 'hardlink' ? specs.find((t) => cleanName(t.name) === cleanName(s.link as string)) : s;
    assert.deepEqual(xattrs, target?.xattrs ?? {}, `${name}: xattrs of ${path}`);
  }
  const want = new Set(specs.map((s) => cleanName(s.name).split('/')[0] as string));
  assert.deepEqual(view.readdir(view.root()), [...want].sort(), `${name}: the root holds the top-level names and nothing for the prefix`);
  const files: Record<string, string> = {};
  for (const s of specs) if ((s.type ?? 'reg') === 'reg' && s.link === undefined && !s.name.endsWith('/')) files[cleanName(s.name)] = String(s.body ?? '');
  await checkContents(ctx, view, files);
}

describe('reference: estargz testBuild trees, every name prefix, gzip and zstd:chunked', () => {
  const names = Object.keys(TREES);
  const variants: Array<[string, WriterOptions]> = [
    ['gzip', { chunkSize: 4 }],
    ['gzip level 0 (stored)', { chunkSize: 4, compressionLevel: 0 }],
    ['gzip level 1', { chunkSize: 4, compressionLevel: 1 }],
    ['gzip level 9', { chunkSize: 4, compressionLevel: 9 }],
    ['zstd:chunked', { chunkSize: 4, format: 'zstdchunked' }],
    ['zstd:chunked level 1', { chunkSize: 4, format: 'zstdchunked', compressionLevel: 1 }],
    ['zstd:chunked level 19', { chunkSize: 4, format: 'zstdchunked', compressionLevel: 19 }],
  ];
  for (const [label, opts] of variants) {
    for (const prefix of label === 'gzip' || label === 'zstd:chunked' ? PREFIXES : ['' as const]) {
      // testBuild (regfiles and directories, empty files, various files, no contents) ×
      // allowedPrefix × compression; TestGzipEStargz's levels; TestZstdChunked.
      it(`${label}, prefix ${JSON.stringify(prefix)}: ${names.join(', ')}`, () =>
        withLayers(names.map((n) => prefixed(prefix, TREES[n] as Spec[])), opts, async (ctx) => {
          const [l] = inspectReport(ctx.image, ctx.table).layers;
          assert.equal(l?.error, null);
          assert.equal(l?.verified, true);
          for (const [i, n] of names.entries()) await checkTree(ctx, ctx.image.layer(String(i)), n);
        }));
    }
  }
});

describe('reference: estargz testWriteAndOpen', () => {
  const content = 'Some contents';
  const invalidUtf8 = Buffer.from([0xff, 0xfe, 0xfd]);

  it('empty: no entries but the landmark, an empty root (numTOCEntries(0))', () =>
    withLayers([[]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      assert.deepEqual(v.readdir(v.root()), []);
      assert.equal(v.root().mode, S_IFDIR | 0o755);
    }));

  it('1dir_1empty_file: the empty file reads empty and carries the digest of nothing; 1dir_1file: contents from 0 and 1, xattrs with invalid UTF-8', () =>
    withLayers([[{ name: 'foo/', type: 'dir' }, { name: 'foo/bar.txt', body: '' }], [
      { name: 'foo/', type: 'dir' },
      { name: 'foo/bar.txt', body: content, xattrs: { foo: 'bar', 'invalid-utf8': invalidUtf8 } },
    ]], {}, async (ctx) => {
      const empty = ctx.image.layer('0');
      assert.deepEqual(children(empty, 'foo'), ['bar.txt']);
      assert.equal((await read(ctx, empty, 'foo/bar.txt', 0, 100)).length, 0);
      const one = ctx.image.layer('1');
      assert.deepEqual(children(one, ''), ['foo']);
      assert.equal((await read(ctx, one, 'foo/bar.txt', 0, content.length)).toString(), content);
      assert.equal((await read(ctx, one, 'foo/bar.txt', 1, content.length)).toString(), content.slice(1));
      const xs = new Map(one.xattrs(resolvePath(one, 'foo/bar.txt')).map((x) => [x.name, x.value]));
      assert.equal(xs.get('foo')?.toString(), 'bar');
      assert.ok(xs.get('invalid-utf8')?.equals(invalidUtf8), 'bytes that are not UTF-8 come back as they were');
    }));

  it('the empty file\'s TOC entry carries sha256 of nothing, as the reference\'s (hasFileDigest)', () => {
    const toc = tocOf(writerBlob(entries([{ name: 'foo/', type: 'dir' }, { name: 'foo/bar.txt', body: '' }])).blob);
    assert.equal(toc.entries.find((e) => e.name === 'foo/bar.txt')?.['digest'], sha256(Buffer.alloc(0)));
  });

  it('2meta_2file and recursive: owners of dirs and files; a "/" root entry adds no level (maxDepth 2)', () =>
    withLayers([[
      { name: '/', type: 'dir', uid: 50, gid: 100 },
      { name: 'bar/', type: 'dir', uid: 50, gid: 100 },
      { name: 'foo/', type: 'dir', uid: 50, gid: 100 },
      { name: 'foo/bar.txt', body: content, uid: 50, gid: 100 },
    ]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      for (const p of ['', 'bar', 'foo', 'foo/bar.txt']) assert.deepEqual([resolvePath(v, p).uid, resolvePath(v, p).gid], [50, 100], `owner of ${JSON.stringify(p)}`);
      assert.deepEqual(children(v, ''), ['bar', 'foo']);
      const depth = (n: ViewNode): number => Math.max(0, ...v.readdir(n).map((c) => { const k = v.lookup(n, c) as ViewNode; return 1 + (isDir(k) ? depth(k) : 0); }));
      assert.equal(depth(v.root()), 2);
    }));

  it('3dir: directory link counts 2, 3, 2 (hasDirLinkCount)', () =>
    withLayers([[{ name: 'bar/', type: 'dir' }, { name: 'foo/', type: 'dir' }, { name: 'foo/bar/', type: 'dir' }]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      assert.deepEqual(['bar', 'foo', 'foo/bar'].map((p) => resolvePath(v, p).nlink), [2, 3, 2]);
    }));

  it('chunked_file: chunk size 4, 23 bytes in 6 chunks, each chunk\'s member ends where the next begins, reads from every offset', () =>
    withLayers([[{ name: 'foo/', type: 'dir' }, { name: 'foo/big.txt', body: 'This is such a big file' }]], { chunkSize: 4 }, async (ctx) => {
      const v = ctx.image.layer('0');
      const node = resolvePath(v, 'foo/big.txt');
      const rows = ctx.table.allChunks(node.dataId);
      assert.deepEqual(rows.map((c) => [c.chunk_offset, c.chunk_size]), [[0, 4], [4, 4], [8, 4], [12, 4], [16, 4], [20, 3]]);
      for (let i = 0; i + 1 < rows.length; i++) assert.equal(rows[i]?.blob_end, rows[i + 1]?.blob_offset, `chunk ${i} ends where chunk ${i + 1} starts (NextOffset)`);
      await checkContents(ctx, v, { 'foo/big.txt': 'This is such a big file' });
    }));

  it('block_char_fifo: device numbers, one link each (lookupMatch)', () =>
    withLayers([[{ name: 'b', type: 'block', dev: [123, 456] }, { name: 'c', type: 'char', dev: [111, 222] }, { name: 'f', type: 'fifo' }]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      const got = ['b', 'c', 'f'].map((p) => { const n = resolvePath(v, p); return [typeOf(n), n.rdevMajor, n.rdevMinor, n.nlink]; });
      assert.deepEqual(got, [[S_IFBLK, 123, 456, 1], [S_IFCHR, 111, 222, 1], [S_IFIFO, 0, 0, 1]]);
    }));

  it('modes: setuid, setgid and sticky on files and directories (also fs/layer file_suid, dir_sgid, file_sticky)', () =>
    withLayers([[
      { name: 'foo1/', type: 'dir', mode: 0o2755 },
      { name: 'foo1/bar1', body: content, mode: 0o4700 },
      { name: 'foo1/bar2', body: content, mode: 0o2755 },
      { name: 'foo2/', type: 'dir', mode: 0o1755 },
      { name: 'foo2/bar3', body: content, mode: 0o1755 },
      { name: 'foo3/', type: 'dir', mode: 0o755 },
      { name: 'foo3/bar4', body: content, mode: 0o700 },
      { name: 'foo3/bar5', body: content, mode: 0o755 },
    ]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      const want: Array<[string, number]> = [['foo1', S_IFDIR | 0o2755], ['foo1/bar1', S_IFREG | 0o4700], ['foo1/bar2', S_IFREG | 0o2755], ['foo2', S_IFDIR | 0o1755],
        ['foo2/bar3', S_IFREG | 0o1755], ['foo3', S_IFDIR | 0o755], ['foo3/bar4', S_IFREG | 0o700], ['foo3/bar5', S_IFREG | 0o755]];
      for (const [p, mode] of want) assert.equal(resolvePath(v, p).mode, mode, `mode of ${p}`);
    }));

  it('lossy: a stargz.index.json (or landmark) in the input is dropped by the writer, the rest kept', () => {
    const toc = tocOf(writerBlob(entries([
      { name: 'bar/', type: 'dir' }, { name: 'foo/', type: 'dir' }, { name: 'foo/bar.txt', body: content },
      { name: 'stargz.index.json', body: 'dummy' }, { name: '.prefetch.landmark', body: 'x' },
    ])).blob);
    assert.deepEqual(toc.entries.map((e) => e.name), ['.no.prefetch.landmark', 'bar/', 'foo/', 'foo/bar.txt']);
  });

  it('hardlink should be replaced to the destination entry: one inode under both names', () =>
    withLayers([[{ name: 'foo/', type: 'dir' }, { name: 'foo/foo1', body: 'test' }, { name: 'foolink', type: 'hardlink', link: 'foo/foo1' }]], {}, async (ctx) => {
      const v = ctx.image.layer('0');
      assert.equal(resolvePath(v, 'foolink').ino, resolvePath(v, 'foo/foo1').ino);
      assert.equal(v.lookup(resolvePath(v, 'foo'), 'foo1')?.ino, resolvePath(v, 'foolink').ino);
      assert.equal((await read(ctx, v, 'foolink')).toString(), 'test');
    }));
});

describe('reference: TestChunkEntryForOffset (chunk size 4)', () => {
  // A file of one and of two whole chunks: the last chunk carries chunkSize (the size is
  // an exact multiple), and an offset at the end of the file has no chunk.
  it('1st chunk of a 1-chunk file, none past it; 1st and 2nd of a 2-chunk file, none past them', () =>
    withLayers([[{ name: 'one', body: 'abcd' }, { name: 'two', body: 'abcdefgh' }]], { chunkSize: 4 }, async (ctx) => {
      const v = ctx.image.layer('0');
      const at = (p: string, off: number) => ctx.table.chunks(resolvePath(v, p).dataId, off, off + 1).map((c) => [c.chunk_offset, c.chunk_size]);
      assert.deepEqual(at('one', 0), [[0, 4]]);
      assert.deepEqual(at('two', 0), [[0, 4]]);
      assert.deepEqual(at('two', 4), [[4, 4]]);
      // Past the end there is no chunk to read: the reader stops at the size (the table's
      // lookup is only asked for offsets inside the file).
      assert.equal((await read(ctx, v, 'one', 4, 4)).length, 0);
      assert.equal((await read(ctx, v, 'two', 8, 4)).length, 0);
      assert.equal((await read(ctx, v, 'two', 3, 2)).toString(), 'de');
    }));
});

describe('reference: estargz testDigestAndVerify, TOC entries broken after the fact', () => {
  // The TOC is rewritten and the annotation made to match it, so only the entries are wrong.
  const specs: Spec[] = [
    { name: 'baz.txt', body: 'bazbazbazbazbazbazbaz' },
    { name: 'foo.txt', body: 'a' },
    { name: 'barlink', link: 'test/bar.txt' },
    { name: 'test/', type: 'dir' },
    { name: 'test/bar.txt', body: 'testbartestbar' },
    { name: 'test2/', type: 'dir' },
    { name: 'test2/bazlink', type: 'hardlink', link: 'baz.txt' },
  ];

  async function withRewritten(rewrite: (toc: ReturnType<typeof tocOf>) => void, fn: (ctx: CommandContext) => Promise<void>): Promise<void> {
    const { dir, cleanup } = tempDir();
    try {
      const { blob } = writerBlob(entries(specs), { chunkSize: 3 });
      const toc = tocOf(blob);
      rewrite(toc);
      const t = withToc(blob, toc);
      const ref = await layoutWith(dir, [{ blob: t.blob, annotations: tocAnnotation(t.tocDigest) }]);
      await withImage(testConfig(join(dir, 'root')), ref, fn);
    } finally {
      cleanup();
    }
  }

  // checkVerifyInvalidTOCEntryFail "lost digest in a entry": the reference refuses the
  // layer at VerifyTOC; we refuse each read of a chunk that has nothing to verify against.
  it('lost digest in a entry: reads of that file fail (SGZ_TOC_FORMAT), never unverified bytes; other files read', () =>
    withRewritten((toc) => {
      for (const e of toc.entries) if (cleanName(e.name) === 'test/bar.txt') delete e['chunkDigest'];
    }, async (ctx) => {
      const v = ctx.image.merged();
      await assert.rejects(read(ctx, v, 'test/bar.txt'), (err: Error & { code?: string }) => {
        assert.equal(err.code, 'SGZ_TOC_FORMAT');
        assert.match(err.message, /no chunkDigest/);
        return true;
      });
      assert.equal((await read(ctx, v, 'baz.txt')).toString(), 'bazbazbazbazbazbazbaz');
      assert.equal((await read(ctx, v, 'test2/bazlink')).toString(), 'bazbazbazbazbazbazbaz');
    }));

  // "duplicated entry offset": the reference refuses an offset found twice; we allow
  // shared members (innerOffset), so the chunk is read from the other member and its
  // digest does not match.
  it('duplicated entry offset: the moved chunk is a digest mismatch naming the file; the file whose member it is reads right', () =>
    withRewritten((toc) => {
      const sample = toc.entries.find((e) => cleanName(e.name) === 'foo.txt') as { offset: number };
      const target = toc.entries.filter((e) => cleanName(e.name) === 'test/bar.txt').at(-1) as { offset: number };
      target.offset = sample.offset;
    }, async (ctx) => {
      const v = ctx.image.merged();
      await assert.rejects(read(ctx, v, 'test/bar.txt'), (err: Error & { code?: string }) => {
        assert.ok(['SGZ_DIGEST_MISMATCH', 'SGZ_DECODE'].includes(err.code ?? ''), String(err));
        assert.match(err.message, /test\/bar\.txt/);
        return true;
      });
      assert.equal((await read(ctx, v, 'test/bar.txt', 0, 12)).toString(), 'testbartestb', 'the chunks before it still read');
      assert.equal((await read(ctx, v, 'foo.txt')).toString(), 'a');
    }));
});

describe('reference: metadata TestReader', () => {
  const sampleTime = 1700001234;
  const sampleText = 'qwertyuiopasdfghjk';
  const variants: Array<[string, WriterOptions]> = [['gzip', { chunkSize: 4 }], ['zstd:chunked', { chunkSize: 4, format: 'zstdchunked' }]];
  for (const [label, opts] of variants) {
    for (const prefix of PREFIXES) {
      it(`${label}, prefix ${JSON.stringify(prefix)}: empty, files, dirs, hardlinks, various files, chunks`, () =>
        withLayers([
          [],
          prefixed(prefix, [
            { name: 'foo', body: 'foofoo', mode: 0o4644 },
            { name: 'bar/', type: 'dir' },
            { name: 'bar/baz.txt', body: 'bazbazbaz', uid: 1000, gid: 1000 },
            { name: 'xxx.txt', body: 'xxxxx', mtime: sampleTime },
            { name: 'y.txt', body: '', xattrs: { testkey: 'testval' } },
          ]),
          prefixed(prefix, [
            { name: 'foo/', type: 'dir', mode: 0o1600 },
            { name: 'foo/bar/', type: 'dir', uid: 1000, gid: 1000 },
            { name: 'foo/bar/baz.txt', body: 'testtest' },
            { name: 'foo/bar/xxxx', body: 'x' },
            { name: 'foo/bar/yyy', body: 'yyy' },
            { name: 'foo/a/', type: 'dir', mtime: sampleTime },
            { name: 'foo/a/1/', type: 'dir', xattrs: { testkey: 'testval' } },
            { name: 'foo/a/1/2', body: '1111111111' },
          ]),
          prefixed(prefix, [
            { name: 'foo', body: 'foofoo', uid: 1000, gid: 1000 },
            { name: 'bar/', type: 'dir' },
            { name: 'bar/foolink', type: 'hardlink', link: 'foo' },
            { name: 'bar/foolink2', type: 'hardlink', link: 'bar/foolink' },
            { name: 'bar/1/', type: 'dir' },
            { name: 'bar/1/baz.txt', body: 'testtest' },
            { name: 'barlink', type: 'hardlink', link: 'bar/1/baz.txt' },
            { name: 'foosym', link: 'bar/foolink2' },
          ]),
          prefixed(prefix, [
            { name: 'bar/', type: 'dir' },
            { name: 'bar/../bar///////////////////foo', body: '' },
            { name: 'bar/cdev', type: 'char', dev: [10, 11] },
            { name: 'bar/bdev', type: 'block', dev: [100, 101] },
            { name: 'bar/fifo', type: 'fifo' },
          ]),
          prefixed(prefix, [
            { name: 'foo/', type: 'dir' },
            { name: 'foo/small', body: sampleText.slice(0, 2) },
            { name: 'foo/large', body: sampleText },
          ]),
        ], opts, async (ctx) => {
          // empty: just the root (the reference counts its landmark too; ours is hidden).
          const empty = ctx.image.layer('0');
          assert.deepEqual(empty.readdir(empty.root()), []);

          // files
          const f = ctx.image.layer('1');
          assert.equal(resolvePath(f, 'foo').mode, S_IFREG | 0o4644);
          assert.deepEqual([resolvePath(f, 'bar/baz.txt').uid, resolvePath(f, 'bar/baz.txt').gid], [1000, 1000]);
          assert.equal(resolvePath(f, 'xxx.txt').mtime, sampleTime);
          assert.deepEqual(f.xattrs(resolvePath(f, 'y.txt')).map((x) => [x.name, x.value.toString()]), [['testkey', 'testval']]);
          await checkContents(ctx, f, { foo: 'foofoo', 'bar/baz.txt': 'bazbazbaz', 'xxx.txt': 'xxxxx', 'y.txt': '' });

          // dirs
          const d = ctx.image.layer('2');
          assert.deepEqual(children(d, 'foo'), ['a', 'bar']);
          assert.deepEqual(children(d, 'foo/bar'), ['baz.txt', 'xxxx', 'yyy']);
          assert.deepEqual(children(d, 'foo/a'), ['1']);
          assert.deepEqual(children(d, 'foo/a/1'), ['2']);
          assert.equal(resolvePath(d, 'foo').mode, S_IFDIR | 0o1600);
          assert.deepEqual([resolvePath(d, 'foo/bar').uid, resolvePath(d, 'foo/bar').gid], [1000, 1000]);
          assert.equal(resolvePath(d, 'foo/a').mtime, sampleTime);
          assert.deepEqual(d.xattrs(resolvePath(d, 'foo/a/1')).map((x) => [x.name, x.value.toString()]), [['testkey', 'testval']]);
          await checkContents(ctx, d, { 'foo/bar/baz.txt': 'testtest', 'foo/bar/xxxx': 'x', 'foo/bar/yyy': 'yyy', 'foo/a/1/2': '1111111111' });

          // hardlinks: a chain resolves to one inode; a symlink to a hard link is kept verbatim
          const h = ctx.image.layer('3');
          const foo = resolvePath(h, 'foo');
          for (const p of ['bar/foolink', 'bar/foolink2']) {
            assert.equal(resolvePath(h, p).ino, foo.ino, `${p} is foo`);
            assert.deepEqual([resolvePath(h, p).uid, resolvePath(h, p).gid], [1000, 1000]);
          }
          assert.equal(resolvePath(h, 'barlink').ino, resolvePath(h, 'bar/1/baz.txt').ino);
          assert.equal(resolvePath(h, 'foosym').link, 'bar/foolink2');
          assert.deepEqual(children(h, 'bar'), ['1', 'foolink', 'foolink2']);
          assert.deepEqual(children(h, 'bar/1'), ['baz.txt']);
          assert.equal(foo.nlink, 3, 'foo: three names');
          assert.equal(resolvePath(h, 'barlink').nlink, 2);
          assert.equal(resolvePath(h, 'bar').nlink, 3, 'bar: itself, its name, 1/..');
          await checkContents(ctx, h, { foo: 'foofoo', 'bar/foolink': 'foofoo', 'bar/foolink2': 'foofoo', 'bar/1/baz.txt': 'testtest', barlink: 'testtest' });

          // various files: a name with ../ and repeated slashes is cleaned; devices; fifo
          const w = ctx.image.layer('4');
          assert.deepEqual(children(w, 'bar'), ['bdev', 'cdev', 'fifo', 'foo']);
          assert.equal(typeOf(resolvePath(w, 'bar/foo')), S_IFREG);
          assert.deepEqual([typeOf(resolvePath(w, 'bar/cdev')), resolvePath(w, 'bar/cdev').rdevMajor, resolvePath(w, 'bar/cdev').rdevMinor], [S_IFCHR, 10, 11]);
          assert.deepEqual([typeOf(resolvePath(w, 'bar/bdev')), resolvePath(w, 'bar/bdev').rdevMajor, resolvePath(w, 'bar/bdev').rdevMinor], [S_IFBLK, 100, 101]);
          assert.equal(typeOf(resolvePath(w, 'bar/fifo')), S_IFIFO);

          // chunks: 18 bytes in chunks of 4 is 1 + 18/4 chunks; reads from every offset
          const c = ctx.image.layer('5');
          assert.equal(ctx.table.allChunks(resolvePath(c, 'foo/large').dataId).length, 1 + Math.floor(sampleText.length / 4));
          await checkContents(ctx, c, { 'foo/small': sampleText.slice(0, 2), 'foo/large': sampleText });
        }));
    }
  }

  it('clone-id-stability: the same image in another state root gets the same inode numbers', async () => {
    const tree: Spec[] = [
      { name: 'foo', body: 'foofoo' }, { name: 'bar/', type: 'dir' }, { name: 'bar/zzz.txt', body: 'bazbazbaz' },
      { name: 'bar/aaa.txt', body: 'bazbazbaz' }, { name: 'bar/fff.txt', body: 'bazbazbaz' }, { name: 'xxx.txt', body: 'xxxxx' }, { name: 'y.txt', body: '' },
    ];
    const inos = async (): Promise<string> => withLayers([tree], {}, async (ctx) => {
      const v = ctx.image.merged();
      return ['foo', 'bar', 'bar/zzz.txt', 'bar/aaa.txt', 'bar/fff.txt', 'xxx.txt', 'y.txt'].map((p) => `${p}=${resolvePath(v, p).ino}`).join(' ');
    });
    assert.equal(await inos(), await inos());
  });
});

describe('reference: fs/layer testExistence (the layer view, overlayfs encoding)', () => {
  const layer: Spec[] = [
    { name: 'foo/', type: 'dir', xattrs: { foo: 'bar' } },
    { name: 'foo/.wh..wh..opq', body: '' },
    { name: '.prefetch.landmark', body: 'test' },
    { name: 'sub/', type: 'dir' },
    { name: 'sub/.prefetch.landmark', body: 'test' },
    { name: 'sub/.no.prefetch.landmark', body: 'test' },
    { name: 'link', link: 'target' },
  ];
  for (const mode of ['trusted', 'user', 'both'] as const) {
    it(`${mode}: 1_opaque_with_xattr keeps the directory's own xattr beside the opaque one; landmarks hidden at the root only, read elsewhere`, () =>
      withLayers([layer], { prioritized: ['sub/'] }, async (ctx) => {
        const v = ctx.image.layer('0', mode);
        const names = v.xattrs(resolvePath(v, 'foo')).map((x) => `${x.name}=${x.value.toString()}`).sort();
        const opaque = { trusted: ['trusted.overlay.opaque=y'], user: ['user.overlay.opaque=y'], both: ['trusted.overlay.opaque=y', 'user.overlay.opaque=y'] }[mode];
        assert.deepEqual(names, ['foo=bar', ...opaque].sort());
        assert.deepEqual(children(v, 'foo'), [], 'the opaque marker is not listed');
        // prefetch_landmark / no_prefetch_landmark
        assert.equal(v.lookup(v.root(), '.prefetch.landmark'), undefined);
        assert.equal(v.lookup(v.root(), '.no.prefetch.landmark'), undefined);
        assert.deepEqual(children(v, 'sub'), ['.no.prefetch.landmark', '.prefetch.landmark']);
        for (const p of ['sub/.prefetch.landmark', 'sub/.no.prefetch.landmark']) assert.equal((await read(ctx, v, p)).toString(), 'test');
        // symlink_size
        assert.equal(resolvePath(v, 'link').size, 'target'.length);
      }));
  }
});

describe('reference: footers (TestGzipFooter, TestZstdChunkedFooter)', () => {
  /** The 47-byte legacy stargz footer as CRFS wrote it: 22 raw bytes of Extra, an empty stored block. */
  const legacyFooter = (off: number): Buffer => Buffer.concat([
    Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0]),
    Buffer.from(`${off.toString(16).padStart(16, '0')}STARGZ`, 'latin1'),
    Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]),
    Buffer.alloc(8),
  ]);
  /** zstd:chunked's 48-byte trailer (stargz-snapshotter flavor): offset, compressed and uncompressed TOC sizes. */
  const zstdFooter = (off: number, size: number, cSize: number): Buffer => {
    const b = Buffer.alloc(48);
    b.writeUInt32LE(0x184d2a50, 0);
    b.writeUInt32LE(40, 4);
    b.writeBigUInt64LE(BigInt(off), 8);
    b.writeBigUInt64LE(BigInt(cSize), 16);
    b.writeBigUInt64LE(BigInt(size), 24);
    b.writeBigUInt64LE(1n, 32);
    b.write('GnUlInUx', 40, 'latin1');
    return b;
  };

  it('eStargz (51 bytes) and legacy stargz (47 bytes) footers for every offset 0..200000 in steps of 1023', () => {
    for (let off = 0; off <= 200_000; off += 1023) {
      const blobSize = off + 200;
      const e = parseFooter(estargzFooter(off), blobSize);
      assert.deepEqual([e?.kind, e?.size, e?.tocOffset], ['estargz', 51, off]);
      const l = legacyFooter(off);
      assert.equal(l.length, 47);
      const s = parseFooter(l, blobSize);
      assert.deepEqual([s?.kind, s?.size, s?.tocOffset], ['stargz', 47, off]);
    }
  });

  it('zstd:chunked trailers: offset, compressed size and uncompressed size for offsets 1023..200000 (0 cannot hold a frame)', () => {
    const max = 200_000;
    for (let off = 1023; off <= max; off += 1023) {
      const size = max - off;
      const cSize = Math.floor(size / 2);
      const f = parseFooter(zstdFooter(off, size, cSize), off + cSize + 48);
      assert.deepEqual([f?.kind, f?.size, f?.tocOffset, f?.tocCompressedSize, f?.tocUncompressedSize], ['zstd-chunked-a', 48, off, cSize, size]);
      assert.equal(dataEnd(f as NonNullable<typeof f>), off - 8, 'the data ends where the TOC\'s skippable frame starts (blobPayloadSize)');
    }
  });
});

describe('reference: TestSort (our writer\'s order for prioritized files)', () => {
  const long1 = 'long'.repeat(40).slice(0, 120);
  const long2 = 'long'.repeat(40).slice(0, 150);
  const f = (name: string, body = name.slice(0, 3)): Spec => ({ name, body });
  const d = (name: string): Spec => ({ name, type: 'dir' });
  const l = (name: string, link: string): Spec => ({ name, type: 'hardlink', link });
  const LM = '.prefetch.landmark';
  const NO = '.no.prefetch.landmark';
  // [name, input, log, the entry names written (the landmark's without the tar prefix), missed]
  const cases: Array<[string, Spec[], string[], string[], string[]?]> = [
    ['nolog', [f('foo.txt'), d('bar/'), f('bar/baz.txt'), f('bar/bar.txt')], [], [NO, 'foo.txt', 'bar/', 'bar/baz.txt', 'bar/bar.txt']],
    ['identical', [f('foo.txt'), d('bar/'), f('bar/baz.txt'), f('bar/bar.txt'), f('bar/baa.txt')], ['foo.txt', 'bar/baz.txt'],
      ['foo.txt', 'bar/', 'bar/baz.txt', LM, 'bar/bar.txt', 'bar/baa.txt']],
    ['shuffle_reg', [f('foo.txt'), f('baz.txt'), f('bar.txt'), f('baa.txt')], ['baa.txt', 'bar.txt', 'baz.txt'], ['baa.txt', 'bar.txt', 'baz.txt', LM, 'foo.txt']],
    ['shuffle_directory', [f('foo.txt'), d('bar/'), f('bar/bar.txt'), f('bar/baa.txt'), d('baz/'), f('baz/baz1.txt'), f('baz/baz2.txt'), d('baz/bazbaz/'),
      f('baz/bazbaz/bazbaz_b.txt'), f('baz/bazbaz/bazbaz_a.txt')], ['baz/bazbaz/bazbaz_a.txt', 'baz/baz2.txt', 'foo.txt'],
    ['baz/', 'baz/bazbaz/', 'baz/bazbaz/bazbaz_a.txt', 'baz/baz2.txt', 'foo.txt', LM, 'bar/', 'bar/bar.txt', 'bar/baa.txt', 'baz/baz1.txt', 'baz/bazbaz/bazbaz_b.txt']],
    ['shuffle_link', [f('foo.txt'), f('baz.txt'), l('bar.txt', 'baz.txt'), f('baa.txt')], ['baz.txt'], ['baz.txt', LM, 'foo.txt', 'bar.txt', 'baa.txt']],
    ['longname', [f('foo.txt'), f(long1), d('bar/'), f('bar/bar.txt'), f('bar/baa.txt'), f(`bar/${long2}`)], [`bar/${long2}`, long1],
      ['bar/', `bar/${long2}`, long1, LM, 'foo.txt', 'bar/bar.txt', 'bar/baa.txt']],
    ['various_types', [f('foo.txt'), { name: 'foo2', link: 'foo.txt' }, { name: 'foochar', type: 'char', dev: [10, 50] }, { name: 'fooblock', type: 'block', dev: [15, 20] },
      { name: 'fifoo', type: 'fifo' }], ['fifoo', 'foo2', 'foo.txt', 'fooblock'], ['fifoo', 'foo2', 'foo.txt', 'fooblock', LM, 'foochar']],
    ['existing_landmark', [f('baa.txt'), f('bar.txt'), f('baz.txt'), f(LM, 'v'), f('foo.txt')], ['foo.txt', 'bar.txt'], ['foo.txt', 'bar.txt', LM, 'baa.txt', 'baz.txt']],
    ['existing_landmark_nolog', [f('baa.txt'), f('bar.txt'), f('baz.txt'), f(LM, 'v'), f('foo.txt')], [], [NO, 'baa.txt', 'bar.txt', 'baz.txt', 'foo.txt']],
    ['existing_noprefetch_landmark', [f(NO, 'v'), f('baa.txt'), f('bar.txt'), f('baz.txt'), f('foo.txt')], ['foo.txt', 'bar.txt'], ['foo.txt', 'bar.txt', LM, 'baa.txt', 'baz.txt']],
    ['existing_noprefetch_landmark_nolog', [f(NO, 'v'), f('baa.txt'), f('bar.txt'), f('baz.txt'), f('foo.txt')], [], [NO, 'baa.txt', 'bar.txt', 'baz.txt', 'foo.txt']],
    // The reference fails without WithAllowPrioritizeNotFound; ours always reports them.
    ['not_existing_file', [f('foo.txt'), f('baz.txt'), f('bar.txt'), f('baa.txt')], ['baa.txt', 'bar.txt', 'dummy'], ['baa.txt', 'bar.txt', LM, 'foo.txt', 'baz.txt'], ['dummy']],
    ['not_existing_file_allow_fail', [f('foo.txt'), f('baz.txt'), f('bar.txt'), f('baa.txt')], ['baa.txt', 'dummy1', 'bar.txt', 'dummy2'],
      ['baa.txt', 'bar.txt', LM, 'foo.txt', 'baz.txt'], ['dummy1', 'dummy2']],
    ['duplicated_entry', [f('foo.txt'), d('bar/'), f('bar/baz.txt', 'baz'), d('bar/'), f('bar/baz.txt', 'baz2')], ['bar/baz.txt'], ['bar/', 'bar/baz.txt', LM, 'foo.txt']],
    ['hardlink', [f('baz.txt', 'aaaaa'), l('bazlink', 'baz.txt')], ['bazlink'], ['baz.txt', 'bazlink', LM]],
    ['root_relative_file', [d('./'), f('./foo.txt'), f('./baz.txt'), f('./baa.txt'), l('./bazlink', './baz.txt')], ['baa.txt', 'bazlink'],
      ['./', './baa.txt', './baz.txt', './bazlink', LM, './foo.txt']],
    ['root_absolute_file', [d('/'), f('/foo.txt'), f('/baz.txt'), f('/baa.txt'), l('/bazlink', '/baz.txt')], ['baa.txt', 'bazlink'],
      ['/', '/baa.txt', '/baz.txt', '/bazlink', LM, '/foo.txt']],
  ];
  for (const [name, input, log, want, missed] of cases) {
    it(`${name}, every log prefix and tar prefix`, () => {
      for (const logPrefix of PREFIXES) {
        for (const tarPrefix of PREFIXES) {
          const specs = prefixed(tarPrefix, input).map((s) => (s.name === tarPrefix + LM || s.name === tarPrefix + NO ? { ...s, name: s.name.slice(tarPrefix.length) } : s));
          const parts: Buffer[] = [];
          const r = writeEstargz(entries(specs), (b) => parts.push(b), { prioritized: log.map((p) => logPrefix + p) });
          const toc = tocOf(Buffer.concat(parts));
          const what = `${name} log prefix ${JSON.stringify(logPrefix)} tar prefix ${JSON.stringify(tarPrefix)}`;
          assert.deepEqual(toc.entries.filter((e) => e.type !== 'chunk').map((e) => e.name), want.map((n) => (n === LM || n === NO ? n : tarPrefix + n)), what);
          assert.deepEqual(r.missedPrioritized, (missed ?? []).map((p) => logPrefix + p), what);
          if (name === 'duplicated_entry') assert.equal(toc.entries.find((e) => cleanName(e.name) === 'bar/baz.txt')?.['digest'], sha256(Buffer.from('baz2')), 'the later duplicate is kept');
        }
      }
    });
  }
});

describe('reference: testBuild\'s comparisons of two writers and of source tar formats', () => {
  // Build() (from a tar stream) must write what Writer.AppendTar writes: ours are
  // writeEstargz (entries in memory) and writeEstargzStream (bodies read chunk by chunk).
  for (const format of ['estargz', 'zstdchunked'] as const) {
    it(`${format}: the streaming writer writes the same blob and TOC digest as the in-memory one, for every testBuild tree`, async () => {
      for (const [name, tree] of Object.entries(TREES)) {
        const input = entries(tree);
        const parts: Buffer[] = [];
        const a = writeEstargz(input, (b) => parts.push(b), { chunkSize: 4, format });
        const streamed: Buffer[] = [];
        const b = await writeEstargzStream(input.map((e) => ({ header: e.header, read: (off: number, len: number) => Promise.resolve(e.body.subarray(off, off + len)) })),
          (c) => void streamed.push(Buffer.from(c)), { chunkSize: 4, format, parallel: 2 });
        assert.ok(Buffer.concat(parts).equals(Buffer.concat(streamed)), `${name}: same bytes`);
        assert.deepEqual([b.tocDigest, b.diffId], [a.tocDigest, a.diffId], `${name}: same TOC digest and DiffID`);
      }
    });
  }

  // srcTarFormat: USTAR, PAX and GNU tars (long names through the prefix field, PAX path
  // records and ././@LongLink) give the same entries.
  it('USTAR, PAX and GNU source tars made by GNU tar parse to the same entries, long names and links included', () => {
    const { dir, cleanup } = tempDir();
    try {
      const src = join(dir, 'src');
      const long = `${'d'.repeat(60)}/${'f'.repeat(90)}`;
      mkdirSync(join(src, 'd'.repeat(60)), { recursive: true });
      writeFileSync(join(src, long), 'long name body');
      writeFileSync(join(src, 'baz.txt'), 'bazbazbazbazbazbazbaz');
      symlinkSync('baz.txt', join(src, 'barlink'));
      linkSync(join(src, 'baz.txt'), join(src, 'bazlink'));
      const seen: string[] = [];
      for (const format of ['ustar', 'pax', 'gnu']) {
        const tar = execFileSync('tar', [`--format=${format}`, '--sort=name', '--owner=0', '--group=0', '--mtime=@1700000000', '-cf', '-', '-C', src, '.']);
        const parsed = parseTar(tar).map((e) => {
          const link = e.header.type === 'hardlink' ? cleanName(e.header.linkName) : e.header.linkName;
          return `${cleanName(e.header.name)} ${e.header.type} ${link} ${e.body.toString()}`;
        });
        seen.push(parsed.join('\n'));
        assert.ok(parsed.includes(`${long} reg  long name body`), `${format}: the long name whole`);
        assert.ok(parsed.includes('barlink symlink baz.txt '), `${format}: the symlink`);
        assert.ok(parsed.some((p) => /^baz(link|\.txt) hardlink baz(\.txt|link) $/.test(p)), `${format}: the hard link`);
      }
      assert.equal(seen[1], seen[0], 'PAX as USTAR');
      assert.equal(seen[2], seen[0], 'GNU as USTAR');
    } finally {
      cleanup();
    }
  });
});
