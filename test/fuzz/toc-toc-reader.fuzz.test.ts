// Fuzzing src/toc/toc-reader.ts, where a layer's TOC is found and decompressed: the
// zstd:chunked manifest in its skippable frame behind a flavor A or B trailer, and the
// eStargz TOC member (gzip → tar → stargz.index.json). Blobs from our writer with their
// tails mutated; blobs assembled from a zstd frame of random content with trailer numbers
// made extreme; gzip TOC members holding mutated tars; and writer blobs read back whole.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { readToc, type RawToc } from '../../src/toc/toc-reader.js';
import type { BlobReader } from '../../src/toc/blob.js';
import { footer, writeEstargz, type LayerFormat } from '../../src/toc/writer.js';
import { emptyHeader, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from '../../src/toc/tar.js';
import { BlobRangeError } from '../../src/errors.js';
import { bytes, fuzz, mutated, refusedOrValueAsync, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 4 properties below. */
const EACH = share(4);

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer };
const sha = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
const MAX_TOC = 1 << 20;

function memBlob(b: Buffer): BlobReader {
  return {
    size: b.length,
    readAt: async (offset, length) => {
      if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset + length > b.length) {
        throw new BlobRangeError(`read of ${length} at ${offset} outside a blob of ${b.length}`);
      }
      return b.subarray(offset, offset + length);
    },
  };
}

function written(entries: readonly TarEntry[], format: LayerFormat): { blob: Buffer; tocDigest: string; tocOffset: number } {
  const parts: Buffer[] = [];
  const r = writeEstargz(entries, (b) => parts.push(b), { format, chunkSize: 64 });
  return { blob: Buffer.concat(parts), tocDigest: r.tocDigest, tocOffset: r.tocOffset };
}

/** A writer blob's zstd:chunked trailer (flavor A) swapped for flavor B's, tar-split right after the TOC. */
function asFlavorB(blob: Buffer): Buffer {
  const a = blob.subarray(-48);
  const b = Buffer.alloc(72);
  b.writeUInt32LE(0x184d2a50, 0);
  b.writeUInt32LE(64, 4);
  a.copy(b, 8, 8, 40);
  const tocEnd = Number(a.readBigUInt64LE(8) + a.readBigUInt64LE(16));
  b.writeBigUInt64LE(BigInt(tocEnd + 8), 40);
  b.write('GNUlInUx', 64, 'latin1');
  return Buffer.concat([blob.subarray(0, -48), b]);
}

const entryArb: fc.Arbitrary<TarEntry[]> = fc.uniqueArray(
  fc.tuple(fc.stringMatching(/^[a-z]{1,3}(\/[a-z]{1,3}){0,2}$/), fc.constantFrom('reg', 'dir', 'symlink') as fc.Arbitrary<'reg' | 'dir' | 'symlink'>, bytes(200)),
  { maxLength: 5, selector: ([n]) => n },
).map((list) => list.map(([name, type, body]) => ({
  header: { ...emptyHeader(type === 'dir' ? `${name}/` : name, type), size: type === 'reg' ? body.length : 0, linkName: type === 'symlink' ? 'a' : '' },
  body: type === 'reg' ? body : Buffer.alloc(0),
})));

/** Fixed blobs to mutate (a writer call per input would spend the run in zlib and zstd). */
const SEEDS = (() => {
  const files: TarEntry[] = ['a', 'b/c', 'd'].map((n, i) => ({ header: { ...emptyHeader(n, 'reg'), size: 100 * i }, body: Buffer.alloc(100 * i, 0x41 + i) }));
  const gz = written(files, 'estargz');
  const zs = written(files, 'zstdchunked');
  return [
    { blob: gz.blob, from: gz.tocOffset },
    { blob: zs.blob, from: zs.tocOffset - 8 },
    { blob: asFlavorB(zs.blob), from: zs.tocOffset - 8 },
  ];
})();

/** What readToc's answer must hold to. */
function assertSane(t: RawToc, blobSize: number): void {
  assert.ok(t.json.length <= MAX_TOC);
  assert.equal(t.tocDigest, sha(t.json));
  assert.ok(t.comp.length <= blobSize);
  assert.ok(Number.isSafeInteger(t.dataEnd) && t.dataEnd >= 0 && t.dataEnd <= blobSize, `dataEnd ${t.dataEnd} of ${blobSize}`);
  assert.ok(t.footer.tocOffset >= 0 && t.footer.tocOffset + t.comp.length <= blobSize);
}

const u64 = fc.oneof(fc.nat(400).map(BigInt), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(2n ** 53n, 2n ** 63n, BigInt(MAX_TOC), BigInt(MAX_TOC + 1)));
const opts = fc.record({ tailBytes: fc.integer({ min: 0, max: 4096 }), maxTocBytes: fc.constant(MAX_TOC) });

/** data, a skippable frame holding a zstd frame of `payload` (maybe mutated), a trailer with numbers right or extreme. */
const zstdAssembled: fc.Arbitrary<Buffer> = fc.record({
  data: bytes(64),
  payload: fc.oneof(fc.json().map((j) => Buffer.from(j)), bytes(200), fc.constant(Buffer.from('{"version":1,"entries":[{"name":"a","type":"reg","size":1,"offset":0}]}'))),
  mutateFrame: fc.boolean(),
  edits: fc.array(fc.nat(), { maxLength: 3 }),
  flavorB: fc.boolean(),
  fields: fc.array(fc.option(u64, { nil: undefined, freq: 2 }), { minLength: 7, maxLength: 7 }),
}).map(({ data, payload, mutateFrame, edits, flavorB, fields }) => {
  const frame = zstd.compress(payload);
  if (mutateFrame) for (const e of edits) frame[e % frame.length] = (frame[e % frame.length] as number) ^ (1 << (e % 8));
  const skip = Buffer.alloc(8);
  skip.writeUInt32LE(0x184d2a50, 0);
  skip.writeUInt32LE(frame.length, 4);
  const right = [BigInt(data.length + 8), BigInt(frame.length), BigInt(payload.length), 1n, BigInt(data.length + 8 + frame.length), 0n, 0n];
  const size = flavorB ? 64 : 40;
  const trailer = Buffer.alloc(8 + size);
  trailer.writeUInt32LE(0x184d2a5f, 0);
  trailer.writeUInt32LE(size, 4);
  for (let i = 0; i < size / 8 - 1; i++) trailer.writeBigUInt64LE(i === 3 ? 1n : fields[i] ?? (right[i] as bigint), 8 + 8 * i);
  trailer.write(flavorB ? 'GNUlInUx' : 'GnUlInUx', size, 'latin1');
  return Buffer.concat([data, skip, frame, trailer]);
});

/** data, a gzip member holding a (mutated) tar whose first entry is the TOC, an eStargz footer. */
const gzipAssembled: fc.Arbitrary<Buffer> = fc.tuple(bytes(40), fc.constantFrom('stargz.index.json', 'other'), fc.json().map((j) => Buffer.from(j)), fc.boolean())
  .chain(([data, name, json, pax]) => {
    const h = encodeHeader({ ...emptyHeader(pax ? `${'p/'.repeat(60)}${name}` : name, 'reg'), size: json.length });
    const tar = Buffer.concat([h, json, Buffer.alloc(padding(json.length)), END_OF_ARCHIVE]);
    return fc.oneof(fc.constant(tar), mutated(tar)).map((t) => Buffer.concat([data, gzipSync(t, { level: 1 }), footer(data.length)]));
  });

describe('fuzz: toc/toc-reader.ts (zstd:chunked manifest, skippable frames, eStargz TOC member)', () => {
  it(`writer blobs (eStargz, zstd:chunked A and B) with their tails mutated: ${EACH} inputs`, async (t) => {
    const blobs = fc.constantFrom(...SEEDS).chain(({ blob, from }) => mutated(blob.subarray(from)).map((tail) => Buffer.concat([blob.subarray(0, from), tail])));
    await fuzz(t, EACH, fc.asyncProperty(blobs, opts, fc.option(fc.nat(3000), { nil: undefined }), async (blob, o, hint) => {
      const toc = await refusedOrValueAsync(() => readToc(memBlob(blob), o, {}, '', hint));
      if (toc !== undefined) assertSane(toc, blob.length);
    }));
  });

  it(`zstd frames of random content in skippable frames, trailer numbers right or extreme: ${EACH} inputs`, async (t) => {
    await fuzz(t, EACH, fc.asyncProperty(zstdAssembled, opts, async (blob, o) => {
      const toc = await refusedOrValueAsync(() => readToc(memBlob(blob), o, {}, 'application/vnd.oci.image.layer.v1.tar+zstd'));
      if (toc !== undefined) {
        assertSane(toc, blob.length);
        assert.equal(toc.compression, 'zstd');
      }
    }));
  });

  it(`gzip TOC members holding mutated tars: ${EACH} inputs`, async (t) => {
    await fuzz(t, EACH, fc.asyncProperty(gzipAssembled, opts, async (blob, o) => {
      const toc = await refusedOrValueAsync(() => readToc(memBlob(blob), o, {}));
      if (toc !== undefined) assertSane(toc, blob.length);
    }));
  });

  it(`writer blobs of random entries read back to the TOC written, every format: ${EACH} inputs`, async (t) => {
    await fuzz(t, EACH, fc.asyncProperty(entryArb, fc.constantFrom('estargz', 'zstdchunked', 'flavor-b'), opts, async (entries, format, o) => {
      const w = written(entries, format === 'estargz' ? 'estargz' : 'zstdchunked');
      const blob = format === 'flavor-b' ? asFlavorB(w.blob) : w.blob;
      const toc = await refusedOrValueAsync(() => readToc(memBlob(blob), o, {}));
      assert.ok(toc !== undefined);
      assertSane(toc, blob.length);
      assert.equal(toc.tocDigest, w.tocDigest);
      assert.equal(toc.footer.kind, format === 'estargz' ? 'estargz' : format === 'zstdchunked' ? 'zstd-chunked-a' : 'zstd-chunked-b');
      assert.equal(toc.compression, format === 'estargz' ? 'gzip' : 'zstd');
    }));
  });
});
