// Locating and decoding a layer's TOC (ESTARGZ.md §3.5, §4.1, §8): one tail read that
// usually holds footer and TOC together, a second read only for large TOCs; then one
// gzip member → tar → stargz.index.json, or the zstd frame of zstd:chunked.
import { createHash } from 'node:crypto';
import type { BlobReader } from './blob.js';
import { gunzipAll, LimitExceeded, zstdPrefix, type Compression } from './codec.js';
import { dataEnd, MAX_FOOTER_SIZE, parseFooter, type Footer } from './footer.js';
import { TOC_TAR_NAME } from './names.js';
import { TarReader } from './tar.js';
import { DecodeError, ExternalTocError, NotEstargzError, TocFormatError, TocTooLargeError, type ErrorContext } from '../errors.js';

export interface TocReadOptions {
  readonly tailBytes: number;
  readonly maxTocBytes: number;
}

export interface RawToc {
  readonly footer: Footer;
  readonly compression: Compression;
  /** Uncompressed TOC JSON, exactly as stored. */
  readonly json: Buffer;
  /** sha256 of `json` (what containerd.io/snapshot/stargz/toc.digest names). */
  readonly tocDigest: string;
  /** sha256 of the compressed TOC bytes (what zstd:chunked's manifest-checksum names). */
  readonly tocCompressedDigest: string;
  readonly tocCompressedSize: number;
  readonly dataEnd: number;
}

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

/** Reads the footer only: which format a blob is, without fetching its TOC. */
export async function readFooter(blob: BlobReader, tailBytes: number, ctx: ErrorContext): Promise<{ footer: Footer | undefined; tail: Buffer; tailStart: number }> {
  const len = Math.min(blob.size, Math.max(tailBytes, MAX_FOOTER_SIZE));
  const tailStart = blob.size - len;
  const tail = await blob.readAt(tailStart, len);
  return { footer: parseFooter(tail, blob.size, ctx), tail, tailStart };
}

export async function readToc(blob: BlobReader, opts: TocReadOptions, ctx: ErrorContext, mediaType = ''): Promise<RawToc> {
  const { footer, tail, tailStart } = await readFooter(blob, opts.tailBytes, ctx);
  if (footer === undefined) throw new NotEstargzError(plainReason(mediaType), ctx);
  if (footer.kind === 'external-toc') throw new ExternalTocError(ctx);

  const zstd = footer.kind === 'zstd-chunked-a' || footer.kind === 'zstd-chunked-b';
  const start = footer.tocOffset;
  const end = zstd ? start + (footer.tocCompressedSize ?? 0) : blob.size - footer.size;
  const compLen = end - start;
  // A compressed TOC larger than the uncompressed limit cannot be within it either.
  if (compLen > opts.maxTocBytes) throw new TocTooLargeError(compLen, opts.maxTocBytes, ctx);
  const comp = start >= tailStart ? tail.subarray(start - tailStart, end - tailStart) : await blob.readAt(start, compLen);

  let json: Buffer;
  if (zstd) {
    const want = footer.tocUncompressedSize ?? 0;
    if (want > opts.maxTocBytes) throw new TocTooLargeError(want, opts.maxTocBytes, ctx);
    try {
      json = zstdPrefix(comp, want);
    } catch (err) {
      throw new DecodeError('TOC zstd frame does not decompress', { ...ctx, offset: start }, { cause: err });
    }
    if (json.length !== want) {
      throw new TocFormatError(`TOC decompressed to ${json.length} bytes, the trailer says ${want}`, { ...ctx, offset: start });
    }
  } else {
    json = await tocFromGzip(comp, opts.maxTocBytes, { ...ctx, offset: start });
  }
  return {
    footer,
    compression: zstd ? 'zstd' : 'gzip',
    json,
    tocDigest: sha256(json),
    tocCompressedDigest: sha256(comp),
    tocCompressedSize: compLen,
    dataEnd: dataEnd(footer),
  };
}

async function tocFromGzip(comp: Buffer, maxTocBytes: number, ctx: ErrorContext): Promise<Buffer> {
  let tar: Buffer;
  // Room for the tar header(s), padding and the end-of-archive blocks around the JSON.
  const limit = maxTocBytes + 8192;
  try {
    tar = await gunzipAll(comp, limit);
  } catch (err) {
    if (err instanceof LimitExceeded) throw new TocTooLargeError(limit, maxTocBytes, ctx);
    throw new DecodeError('TOC gzip member does not decompress (truncated or corrupt)', ctx, { cause: err });
  }
  let first;
  try {
    first = new TarReader().push(tar)[0];
  } catch (err) {
    throw new TocFormatError(`TOC tar is malformed: ${(err as Error).message}`, ctx, { cause: err });
  }
  if (first === undefined) throw new TocFormatError('TOC member holds no complete tar entry (truncated?)', ctx);
  if (first.header.name !== TOC_TAR_NAME) {
    throw new TocFormatError(`first tar entry of the TOC member is ${JSON.stringify(first.header.name)}, not ${TOC_TAR_NAME}`, ctx);
  }
  if (first.body.length > maxTocBytes) throw new TocTooLargeError(first.body.length, maxTocBytes, ctx);
  return first.body;
}

/** Why a blob without a footer cannot be read lazily, in words a person can act on. */
function plainReason(mediaType: string): string {
  const kind = mediaType.includes('zstd') ? 'zstd' : mediaType.includes('gzip') ? 'gzip' : mediaType.endsWith('.tar') || mediaType.endsWith('tar') ? 'uncompressed tar' : undefined;
  const what = kind !== undefined ? `plain ${kind} layer` : `layer of media type ${mediaType || 'unknown'}`;
  return `${what} without an eStargz/stargz/zstd:chunked footer; it can only be fetched whole`;
}
