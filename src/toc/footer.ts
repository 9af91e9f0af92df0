// Footer detection (ESTARGZ.md §3). Tried in the reference's order on the blob's tail:
// eStargz 51, legacy stargz 47, external TOC 46, zstd:chunked 72 (flavor B) and 48
// (flavor A). Every candidate is parsed as what it claims to be (gzip header walked, the
// empty member inflated; skippable-frame magic and size checked) before its offset is used.
import { gunzipSync } from 'node:zlib';
import { parseExtraSubfields, parseGzipHeader } from './gzip-header.js';
import { TocFormatError, type ErrorContext } from '../errors.js';

export type FooterKind = 'estargz' | 'stargz' | 'external-toc' | 'zstd-chunked-a' | 'zstd-chunked-b';

export interface Footer {
  readonly kind: FooterKind;
  /** Footer length in bytes (51, 47, 46, 48, 72). */
  readonly size: number;
  /** gzip: offset of the member holding the TOC tar header; zstd: offset of the compressed TOC frame. */
  readonly tocOffset: number;
  /** zstd only: compressed and uncompressed TOC lengths from the trailer. */
  readonly tocCompressedSize?: number;
  readonly tocUncompressedSize?: number;
  /** zstd flavor B only: the tar-split frame. */
  readonly tarSplitOffset?: number;
}

export const ESTARGZ_FOOTER_SIZE = 51;
export const LEGACY_FOOTER_SIZE = 47;
export const EXTERNAL_TOC_FOOTER_SIZE = 46;
export const ZSTD_A_FOOTER_SIZE = 48;
export const ZSTD_B_FOOTER_SIZE = 72;
export const MAX_FOOTER_SIZE = ZSTD_B_FOOTER_SIZE;

const SKIPPABLE_MAGIC_MIN = 0x184d2a50;
const ZSTD_A_MAGIC = Buffer.from('GnUlInUx', 'latin1');
const ZSTD_B_MAGIC = Buffer.from('GNUlInUx', 'latin1');

/**
 * Finds the footer at the end of `tail` (the last bytes of a blob of `blobSize`).
 * Returns undefined when no known footer is there (a plain layer). Throws
 * TocFormatError when a footer is recognized but its numbers are impossible.
 */
export function parseFooter(tail: Buffer, blobSize: number, ctx: ErrorContext = {}): Footer | undefined {
  const at = (size: number): Buffer | undefined =>
    tail.length >= size ? tail.subarray(tail.length - size) : undefined;

  const gz =
    gzipFooter(at(ESTARGZ_FOOTER_SIZE), 'estargz') ??
    gzipFooter(at(LEGACY_FOOTER_SIZE), 'stargz') ??
    gzipFooter(at(EXTERNAL_TOC_FOOTER_SIZE), 'external-toc');
  if (gz !== undefined) {
    if (gz.kind !== 'external-toc') {
      // The TOC member needs at least a gzip header and trailer before the footer.
      if (gz.tocOffset > blobSize - gz.size - 18) {
        throw new TocFormatError(
          `footer points at TOC offset ${gz.tocOffset}, outside the blob of ${blobSize} bytes`,
          { ...ctx, offset: gz.tocOffset },
        );
      }
    }
    return gz;
  }
  const zs = zstdFooter(at(ZSTD_B_FOOTER_SIZE), 64, ZSTD_B_MAGIC) ?? zstdFooter(at(ZSTD_A_FOOTER_SIZE), 40, ZSTD_A_MAGIC);
  if (zs !== undefined) {
    const end = blobSize - zs.size;
    const compLen = zs.tocCompressedSize ?? 0;
    if (zs.tocOffset < 8 || compLen <= 0 || zs.tocOffset + compLen > end) {
      throw new TocFormatError(
        `zstd:chunked trailer points at a TOC of ${compLen} bytes at offset ${zs.tocOffset}, outside the blob of ${blobSize} bytes`,
        { ...ctx, offset: zs.tocOffset },
      );
    }
    return zs;
  }
  return undefined;
}

function gzipFooter(buf: Buffer | undefined, kind: 'estargz' | 'stargz' | 'external-toc'): Footer | undefined {
  if (buf === undefined) return undefined;
  const h = parseGzipHeader(buf);
  if (h === undefined || h.extra === undefined) return undefined;
  let payload: Buffer | undefined;
  if (kind === 'stargz') {
    // CRFS wrote the 22 bytes raw into Extra, without an RFC 1952 subfield header.
    payload = h.extra.length === 22 ? h.extra : undefined;
  } else {
    payload = parseExtraSubfields(h.extra)?.get('SG');
  }
  if (payload === undefined) return undefined;
  if (kind === 'external-toc') {
    if (payload.toString('latin1') !== 'STARGZEXTERNALTOC') return undefined;
  } else if (payload.length !== 22 || payload.toString('latin1', 16) !== 'STARGZ') {
    return undefined;
  }
  // The rest of the footer must be a complete, empty gzip member.
  try {
    if (gunzipSync(buf).length !== 0) return undefined;
  } catch {
    return undefined;
  }
  if (kind === 'external-toc') return { kind, size: buf.length, tocOffset: 0 };
  const hex = payload.toString('latin1', 0, 16);
  if (!/^[0-9a-fA-F]{16}$/.test(hex)) return undefined;
  const tocOffset = Number.parseInt(hex, 16);
  if (!Number.isSafeInteger(tocOffset)) return undefined;
  return { kind, size: buf.length, tocOffset };
}

function zstdFooter(buf: Buffer | undefined, payloadSize: number, magic: Buffer): Footer | undefined {
  if (buf === undefined) return undefined;
  const frameMagic = buf.readUInt32LE(0);
  if ((frameMagic & 0xfffffff0) !== SKIPPABLE_MAGIC_MIN) return undefined;
  if (buf.readUInt32LE(4) !== payloadSize) return undefined;
  const p = buf.subarray(8);
  if (!p.subarray(payloadSize - 8).equals(magic)) return undefined;
  const u64 = (i: number): number => {
    const v = p.readBigUInt64LE(i * 8);
    return v > BigInt(Number.MAX_SAFE_INTEGER) ? Number.NaN : Number(v);
  };
  const manifestType = u64(3);
  if (manifestType !== 1) return undefined;
  const tocOffset = u64(0);
  const tocCompressedSize = u64(1);
  const tocUncompressedSize = u64(2);
  if (![tocOffset, tocCompressedSize, tocUncompressedSize].every(Number.isSafeInteger)) return undefined;
  if (payloadSize === 64) {
    // Past 2^53 it read as NaN, and a NaN offset went out with the footer.
    const tarSplitOffset = u64(4);
    if (!Number.isSafeInteger(tarSplitOffset)) return undefined;
    return { kind: 'zstd-chunked-b', size: buf.length, tocOffset, tocCompressedSize, tocUncompressedSize, tarSplitOffset };
  }
  return { kind: 'zstd-chunked-a', size: buf.length, tocOffset, tocCompressedSize, tocUncompressedSize };
}

/** Where the data members end: the start of the TOC (gzip) or of its skippable frame (zstd). */
export function dataEnd(f: Footer): number {
  switch (f.kind) {
    case 'zstd-chunked-a': return f.tocOffset - 8;
    case 'zstd-chunked-b': {
      const toc = f.tocOffset - 8;
      const ts = f.tarSplitOffset !== undefined && f.tarSplitOffset > 8 ? f.tarSplitOffset - 8 : toc;
      return Math.min(toc, ts);
    }
    default: return f.tocOffset;
  }
}
