// Fuzzing src/toc/footer.ts: every footer kind it tells apart (eStargz 51 bytes, legacy
// stargz 47, external TOC 46, zstd:chunked flavor A 48 and flavor B 72), as arbitrary
// bytes, as mutated valid footers behind random blob bytes, and written then read back.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dataEnd, parseFooter, type Footer } from '../../src/toc/footer.js';
import { footer } from '../../src/toc/writer.js';
import { bytes, fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const hex16 = (n: number): string => n.toString(16).padStart(16, '0');
const EMPTY_MEMBER_END = Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]);

/** CRFS's 47 bytes: the 22-byte payload raw in Extra, no subfield header (ESTARGZ.md §3.2). */
function legacyFooter(tocOffset: number): Buffer {
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 22, 0]), Buffer.from(`${hex16(tocOffset)}STARGZ`, 'latin1'), EMPTY_MEMBER_END]);
}

/** The 46-byte external-TOC footer (ESTARGZ.md §3.3). */
function externalTocFooter(): Buffer {
  return Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 21, 0, 0x53, 0x47, 17, 0]), Buffer.from('STARGZEXTERNALTOC', 'latin1'), EMPTY_MEMBER_END]);
}

/** zstd:chunked trailers: flavor A (40-byte payload, GnUlInUx), flavor B (64, GNUlInUx) (ESTARGZ.md §8). */
function zstdTrailer(flavor: 'a' | 'b', fields: readonly bigint[], magicLow = 0): Buffer {
  const payload = flavor === 'a' ? 40 : 64;
  const b = Buffer.alloc(8 + payload);
  b.writeUInt32LE(0x184d2a50 + magicLow, 0);
  b.writeUInt32LE(payload, 4);
  fields.forEach((v, i) => b.writeBigUInt64LE(v, 8 + 8 * i));
  b.write(flavor === 'a' ? 'GnUlInUx' : 'GNUlInUx', 8 + payload - 8, 'latin1');
  return b;
}

const SIZE_BY_KIND = { estargz: 51, stargz: 47, 'external-toc': 46, 'zstd-chunked-a': 48, 'zstd-chunked-b': 72 } as const;

/** What any footer parseFooter returns must hold to, for a blob of `blobSize` ending in `tail`. */
function assertSane(f: Footer, tail: Buffer, blobSize: number): void {
  assert.equal(f.size, SIZE_BY_KIND[f.kind]);
  assert.ok(f.size <= tail.length);
  for (const n of [f.tocOffset, f.tocCompressedSize, f.tocUncompressedSize, f.tarSplitOffset]) {
    if (n !== undefined) assert.ok(Number.isSafeInteger(n) && n >= 0, `footer number ${n}`);
  }
  assert.ok(f.tocOffset <= blobSize - f.size, `tocOffset ${f.tocOffset} in a blob of ${blobSize}`);
  if (f.tocCompressedSize !== undefined) assert.ok(f.tocOffset + f.tocCompressedSize <= blobSize - f.size);
  const end = dataEnd(f);
  assert.ok(Number.isSafeInteger(end) && end >= 0 && end <= blobSize, `dataEnd ${end} in a blob of ${blobSize}`);
}

const u64 = fc.oneof(fc.bigInt({ min: 0n, max: 300n }), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n }), fc.constantFrom(0n, 8n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 63n, 2n ** 64n - 1n));

const validFooters: fc.Arbitrary<Buffer> = fc.oneof(
  fc.nat({ max: 1000 }).map(footer),
  fc.nat({ max: 1000 }).map(legacyFooter),
  fc.constant(externalTocFooter()),
  fc.array(u64, { minLength: 4, maxLength: 4 }).map(([o, c, u]) => zstdTrailer('a', [o as bigint, c as bigint, u as bigint, 1n])),
  fc.array(u64, { minLength: 7, maxLength: 7 }).map((f) => zstdTrailer('b', [f[0] as bigint, f[1] as bigint, f[2] as bigint, 1n, ...f.slice(4)])),
);

describe('fuzz: toc/footer.ts', () => {
  it(`arbitrary tails and mutated footers of every kind behind random bytes: ${EACH} inputs`, async (t) => {
    const tails = fc.oneof(
      bytes(80),
      fc.tuple(bytes(30), validFooters.chain(mutated)).map(([pre, f]) => Buffer.concat([pre, f])),
    );
    await fuzz(t, EACH, fc.property(tails, fc.oneof(fc.nat(300), fc.nat({ max: Number.MAX_SAFE_INTEGER })), (tail, extra) => {
      const blobSize = Math.min(Number.MAX_SAFE_INTEGER, tail.length + extra);
      const f = refusedOrValue(() => parseFooter(tail, blobSize));
      if (f !== undefined) assertSane(f, tail, blobSize);
    }));
  });

  it(`written, then read back, every kind with a TOC offset anywhere in the blob: ${EACH} inputs`, async (t) => {
    const kinds = fc.constantFrom('estargz', 'stargz', 'zstd-chunked-a', 'zstd-chunked-b', 'external-toc');
    await fuzz(t, EACH, fc.property(kinds, bytes(24), fc.nat({ max: Number.MAX_SAFE_INTEGER - 2000 }), fc.nat(1000), fc.nat(1000), fc.nat(2 ** 30), fc.integer({ min: 0, max: 15 }),
      (kind, pre, tocOffset, compLen, tail, uncomp, magicLow) => {
        const c = compLen + 1;
        let f: Buffer;
        let want: Footer;
        switch (kind) {
          case 'estargz': f = footer(tocOffset); want = { kind, size: 51, tocOffset }; break;
          case 'stargz': f = legacyFooter(tocOffset); want = { kind, size: 47, tocOffset }; break;
          case 'external-toc': f = externalTocFooter(); want = { kind, size: 46, tocOffset: 0 }; break;
          case 'zstd-chunked-a':
            f = zstdTrailer('a', [BigInt(tocOffset + 8), BigInt(c), BigInt(uncomp), 1n], magicLow);
            want = { kind, size: 48, tocOffset: tocOffset + 8, tocCompressedSize: c, tocUncompressedSize: uncomp };
            break;
          default:
            f = zstdTrailer('b', [BigInt(tocOffset + 8), BigInt(c), BigInt(uncomp), 1n, BigInt(tocOffset + 8 + c), 5n, 9n], magicLow);
            want = { kind: 'zstd-chunked-b', size: 72, tocOffset: tocOffset + 8, tocCompressedSize: c, tocUncompressedSize: uncomp, tarSplitOffset: tocOffset + 8 + c };
        }
        // The blob holds the TOC (at least a gzip member's worth) between the offset and the footer.
        const blobSize = tocOffset + 8 + c + 18 + f.length + tail;
        const got = refusedOrValue(() => parseFooter(Buffer.concat([pre, f]), blobSize));
        assert.deepEqual(got, want);
        assertSane(got as Footer, Buffer.concat([pre, f]), blobSize);
      }));
  });
});

describe('fuzz: toc/footer.ts regressions', () => {
  // Found by this fuzzer: a flavor B trailer whose tar-split offset is past 2^53 came back
  // with tarSplitOffset NaN; its other numbers that large already made it no footer.
  it('regression: a flavor B trailer with a tar-split offset of 2^63 is not a footer', () => {
    const tail = Buffer.from([80, 42, 77, 24, 64, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 18, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 128, 8, 0, 0, 0, 0, 0, 0, 0, 20, 110, 235, 164, 21, 125, 214, 253, 71, 78, 85, 108, 73, 110, 85, 120]);
    assert.equal(parseFooter(tail, 26 + tail.length), undefined);
  });
});
