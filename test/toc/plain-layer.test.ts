// Plain layers streamed: the tar parser fed in arbitrary pieces agrees with the whole-
// buffer parser; tar, tar+gzip and tar+zstd blobs give the same TOC and chunks of at
// most 4 MiB; a damaged blob is named as such even when it breaks decompression first.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import { encodeTar, parseTar, TarReader, type TarHeader } from '../../src/toc/tar.js';
import { streamPlainLayer, type PlainChunk } from '../../src/toc/plain-layer.js';
import { entries } from '../helpers/entries.js';
import { bytes, int, rng } from '../helpers/random.js';

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer };
const digestOf = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const memoryBlob = (b: Buffer) => ({
  size: b.length,
  readAt: async (off: number, len: number) => {
    if (off + len > b.length) throw new Error('out of range');
    return b.subarray(off, off + len);
  },
});

describe('tar fed in pieces', () => {
  it('agrees with the whole-buffer parser for random tars cut at random places (60 seeds)', () => {
    for (let seed = 1; seed <= 60; seed++) {
      const r = rng(seed);
      const specs = Array.from({ length: int(r, 1, 12) }, (_, i) => ({
        name: `${'d'.repeat(int(r, 1, 3) * 60)}/f${i}`,
        body: bytes(r, int(r, 0, 3) === 0 ? 0 : int(r, 1, 20000)),
        xattrs: i % 3 === 0 ? { 'user.k': `v${i}` } : undefined,
      }));
      const tar = encodeTar(entries(specs.map((s) => (s.xattrs ? s : { name: s.name, body: s.body }))));
      const whole = parseTar(tar);
      const got: Array<{ header: TarHeader; parts: Buffer[] }> = [];
      const reader = new TarReader();
      const sink = { header: (h: TarHeader) => got.push({ header: h, parts: [] }), body: (p: Buffer) => got.at(-1)?.parts.push(Buffer.from(p)) };
      for (let off = 0; off < tar.length; ) {
        const n = int(r, 1, 5000);
        reader.feed(tar.subarray(off, off + n), sink);
        off += n;
      }
      reader.endFeed();
      assert.equal(got.length, whole.length, `seed ${seed}`);
      got.forEach((g, i) => {
        const w = whole[i];
        assert.equal(g.header.name, w?.header.name, `seed ${seed}`);
        assert.deepEqual([...g.header.xattrs], [...(w?.header.xattrs ?? [])]);
        assert.ok(Buffer.concat(g.parts).equals(w?.body ?? Buffer.alloc(0)), `seed ${seed}: body of ${g.header.name}`);
      });
    }
  });

  it('reports a stream cut inside an entry', () => {
    const tar = encodeTar(entries([{ name: 'a', body: 'x'.repeat(3000) }]));
    const reader = new TarReader();
    reader.feed(tar.subarray(0, 1500), { header: () => undefined, body: () => undefined });
    assert.throws(() => reader.endFeed(), { code: 'SGZ_TAR' });
  });
});

describe('plain layers, streamed', () => {
  const big = bytes(rng(9), 9 << 20);
  const tar = encodeTar(entries([
    { name: 'etc/', type: 'dir' },
    { name: 'etc/hosts', body: '127.0.0.1 localhost\n' },
    { name: 'big.bin', body: big },
    { name: 'link', link: 'big.bin' },
  ]));

  for (const [kind, blob] of [['none', tar], ['gzip', gzipSync(tar)], ['zstd', zstd.compress(tar)]] as const) {
    it(`tar${kind === 'none' ? '' : `+${kind}`}: TOC and chunks of at most 4 MiB, the file's bytes in order`, async () => {
      const chunks: PlainChunk[] = [];
      const { json, compression } = await streamPlainLayer(memoryBlob(blob), digestOf(blob), 1 << 30, {}, async (c) => { chunks.push(c); });
      assert.equal(compression, kind);
      const toc = JSON.parse(json.toString()) as { entries: Array<{ name: string; type: string; chunkOffset?: number; chunkSize?: number }> };
      assert.deepEqual(toc.entries.filter((e) => e.name === 'big.bin').map((e) => [e.type, e.chunkOffset ?? 0, e.chunkSize]), [
        ['reg', 0, 4 << 20], ['chunk', 4 << 20, 4 << 20], ['chunk', 8 << 20, 1 << 20],
      ]);
      assert.ok(chunks.every((c) => c.data.length <= 4 << 20));
      assert.ok(Buffer.concat(chunks.slice(1).map((c) => c.data)).equals(big));
      assert.equal(chunks[0]?.data.toString(), '127.0.0.1 localhost\n');
      for (const c of chunks) assert.ok(createHash('sha256').update(c.data).digest().equals(c.digest));
    });
  }

  it('a damaged blob is a digest mismatch, even where the damage breaks decompression first', async () => {
    const gz = gzipSync(tar);
    const bad = Buffer.from(gz);
    bad[1000] = (bad[1000] as number) ^ 0xff;
    await assert.rejects(streamPlainLayer(memoryBlob(bad), digestOf(gz), 1 << 30, { layer: 'sha256:l' }, async () => undefined), { code: 'SGZ_DIGEST_MISMATCH' });
    await assert.rejects(streamPlainLayer(memoryBlob(gz), digestOf(gz), 1 << 20, {}, async () => undefined), /larger than the limit/);
  });
});
