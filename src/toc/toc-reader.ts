// Locating and decoding a layer's TOC (ESTARGZ.md §3.5, §4.1, §8): one tail read that
// usually holds footer and TOC together, a second read only for large TOCs; then one
// gzip member → tar → stargz.index.json, or the zstd frame of zstd:chunked.
import { sha256 } from './digest.js';
import type { BlobReader } from './blob.js';
import { createGunzip } from 'node:zlib';
import { zstdPrefix, type Compression } from './codec.js';
import { dataEnd, MAX_FOOTER_SIZE, parseFooter, type Footer } from './footer.js';
import { TOC_TAR_NAME } from './names.js';
import { TarReader } from './tar.js';
import { DecodeError, ExternalTocError, StargzfsError, NotEstargzError, TocFormatError, TocTooLargeError, type ErrorContext } from '../errors.js';

export interface TocReadOptions {
  readonly tailBytes: number;
  readonly maxTocBytes: number;
}

/** The compressed TOC of a layer, located and bounds-checked but not yet decompressed. */
export interface TocRegion {
  readonly footer: Footer;
  readonly compression: Compression;
  readonly comp: Buffer;
  /** sha256 of the compressed TOC bytes (what zstd:chunked's manifest-checksum names). */
  readonly tocCompressedDigest: string;
  readonly dataEnd: number;
}

export interface RawToc extends TocRegion {
  /** Uncompressed TOC JSON, exactly as stored. */
  readonly json: Buffer;
  /** sha256 of `json` (what containerd.io/snapshot/stargz/toc.digest names). */
  readonly tocDigest: string;
}

/**
 * A big layer's tail read covers 1 % of it, up to 4 × tailBytes: its TOC is likely larger
 * than tailBytes (the Debian python layer: 52 MB, a 309 KB TOC), and a second read costs a
 * round trip where the extra bytes cost a fraction of one (560 KB at 200 Mbit/s: 22 ms).
 */
const TAIL_SHARE = 100;
const TAIL_MAX_FACTOR = 4;

/**
 * The blob's tail read first: from the TOC's start when `tocOffsetHint` (from the layer's
 * annotations) is usable, else `tailBytes` (more for a big layer), at least a footer's worth.
 */
export function tocTailExtent(size: number, tocOffsetHint: number | undefined, opts: TocReadOptions): { offset: number; length: number } {
  const hinted = tocOffsetHint !== undefined && tocOffsetHint > 0 && tocOffsetHint < size && size - tocOffsetHint <= opts.maxTocBytes + MAX_FOOTER_SIZE;
  const tail = Math.max(opts.tailBytes, Math.min(Math.floor(size / TAIL_SHARE), opts.tailBytes * TAIL_MAX_FACTOR));
  const length = Math.min(size, Math.max(hinted ? size - tocOffsetHint : tail, MAX_FOOTER_SIZE));
  return { offset: size - length, length };
}

/**
 * Reads footer and compressed TOC: one request when the hint is right or the TOC fits the
 * tail read, two otherwise.
 */
export async function readTocRegion(
  blob: BlobReader, opts: TocReadOptions, ctx: ErrorContext, mediaType = '', tocOffsetHint?: number,
): Promise<TocRegion> {
  const { offset: tailStart, length } = tocTailExtent(blob.size, tocOffsetHint, opts);
  const tail = await blob.readAt(tailStart, length);
  const footer = parseFooter(tail, blob.size, ctx);
  if (footer === undefined) throw new NotEstargzError(plainReason(mediaType), ctx);
  if (footer.kind === 'external-toc') throw new ExternalTocError(ctx);
  const zstd = footer.kind === 'zstd-chunked-a' || footer.kind === 'zstd-chunked-b';
  const start = footer.tocOffset;
  const end = zstd ? start + (footer.tocCompressedSize ?? 0) : blob.size - footer.size;
  const compLen = end - start;
  // A compressed TOC larger than the uncompressed limit cannot be within it either.
  if (compLen > opts.maxTocBytes) throw new TocTooLargeError(compLen, opts.maxTocBytes, ctx);
  if (zstd && (footer.tocUncompressedSize ?? 0) > opts.maxTocBytes) {
    throw new TocTooLargeError(footer.tocUncompressedSize ?? 0, opts.maxTocBytes, ctx);
  }
  const comp = start >= tailStart ? tail.subarray(start - tailStart, end - tailStart) : await blob.readAt(start, compLen);
  return { footer, compression: zstd ? 'zstd' : 'gzip', comp, tocCompressedDigest: sha256(comp), dataEnd: dataEnd(footer) };
}

/**
 * The TOC JSON bytes as they are decompressed: gzip member → tar → stargz.index.json
 * (the tar header stripped as soon as it arrives), or the zstd:chunked frame.
 */
export async function* tocJsonChunks(region: TocRegion, maxTocBytes: number, ctx: ErrorContext): AsyncGenerator<Buffer> {
  const at = { ...ctx, offset: region.footer.tocOffset };
  if (region.compression === 'zstd') {
    const want = region.footer.tocUncompressedSize ?? 0;
    let json: Buffer;
    try {
      json = zstdPrefix(region.comp, want);
    } catch (err) {
      throw new DecodeError('TOC zstd frame does not decompress', at, { cause: err });
    }
    if (json.length !== want) throw new TocFormatError(`TOC decompressed to ${json.length} bytes, the trailer says ${want}`, at);
    yield json;
    return;
  }
  const z = createGunzip({ chunkSize: 256 << 10 });
  z.end(region.comp);
  const tar = new TarReader();
  let remaining = -1;
  let beforeHeader = 0;
  try {
    for await (const chunk of z as AsyncIterable<Buffer>) {
      let data = chunk;
      if (remaining < 0) {
        let first;
        try {
          first = tar.pushUntilHeader(chunk);
        } catch (err) {
          throw new TocFormatError(`TOC tar is malformed: ${(err as Error).message}`, at, { cause: err });
        }
        if (first === undefined) {
          // Extended headers before the TOC's own count against its limit: a small member
          // could otherwise inflate into gigabytes of them.
          beforeHeader += chunk.length;
          if (beforeHeader > maxTocBytes) throw new TocTooLargeError(beforeHeader, maxTocBytes, at);
          continue;
        }
        if (first.header.name !== TOC_TAR_NAME) {
          throw new TocFormatError(`first tar entry of the TOC member is ${JSON.stringify(first.header.name)}, not ${TOC_TAR_NAME}`, at);
        }
        if (first.header.size > maxTocBytes) throw new TocTooLargeError(first.header.size, maxTocBytes, at);
        remaining = first.header.size;
        data = first.rest;
      }
      if (remaining === 0) break;
      const piece = data.length > remaining ? data.subarray(0, remaining) : data;
      remaining -= piece.length;
      if (piece.length > 0) yield piece;
      if (remaining === 0) break;
    }
  } catch (err) {
    if (err instanceof StargzfsError) throw err;
    throw new DecodeError(`TOC gzip member does not decompress (truncated or corrupt): ${(err as Error).message}`, at, { cause: err });
  } finally {
    z.destroy();
  }
  if (remaining !== 0) throw new TocFormatError(remaining < 0 ? 'TOC member holds no complete tar header (truncated?)' : `TOC is truncated: ${remaining} bytes missing`, at);
}

/** The whole TOC in memory (tools and tests; indexing streams instead). */
export async function readToc(blob: BlobReader, opts: TocReadOptions, ctx: ErrorContext, mediaType = '', tocOffsetHint?: number): Promise<RawToc> {
  const region = await readTocRegion(blob, opts, ctx, mediaType, tocOffsetHint);
  const parts: Buffer[] = [];
  for await (const piece of tocJsonChunks(region, opts.maxTocBytes, ctx)) parts.push(piece);
  const json = Buffer.concat(parts);
  return { ...region, json, tocDigest: sha256(json) };
}

/** Why a blob without a footer cannot be read lazily, in words a person can act on. */
function plainReason(mediaType: string): string {
  const kind = mediaType.includes('zstd') ? 'zstd' : mediaType.includes('gzip') ? 'gzip' : mediaType.endsWith('.tar') || mediaType.endsWith('tar') ? 'uncompressed tar' : undefined;
  const what = kind !== undefined ? `plain ${kind} layer` : `layer of media type ${mediaType || 'unknown'}`;
  return `${what} without an eStargz/stargz/zstd:chunked footer; it can only be fetched whole`;
}
