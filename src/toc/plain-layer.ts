// Layers that are not eStargz (plain tar, tar+gzip, tar+zstd) cannot be read lazily:
// the blob is fetched once, whole, and streamed: hashed, decompressed and parsed as it
// arrives, file contents cut into chunks handed on (to the cache) one at a time, so no
// file and no blob is ever held whole. The tar becomes the same TOC entries an eStargz
// layer would carry. The digest is checked at the end; the caller commits the index only
// then (chunks stored before are addressed by their own sha256, so they are right
// whatever the blob turns out to be). Such layers then mount and read like any other,
// and say NOT LAZY.
import { createHash } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { zstdStream } from './codec.js';
import { TarReader, type TarHeader } from './tar.js';
import { DecodeError, DigestMismatchError, StargzfsError, TarError, type ErrorContext } from '../errors.js';
import type { BlobReader } from './blob.js';

export interface PlainChunk {
  readonly digest: Buffer;
  readonly data: Buffer;
}

export type PlainCompression = 'gzip' | 'zstd' | 'none';

const CHUNK = 4 << 20;
/** Blob bytes per range request while streaming. */
const READ = 8 << 20;

export function plainCompression(head: Buffer): PlainCompression {
  if (head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** Tar entries → TOC entries (eStargz shapes) and content chunks of at most CHUNK bytes. */
class PlainTocBuilder {
  private readonly toc: Array<Record<string, unknown>> = [];
  private current: { name: string; entry: Record<string, unknown>; offset: number } | undefined;
  private parts: Buffer[] = [];
  private partBytes = 0;
  readonly ready: PlainChunk[] = [];

  header(h: TarHeader): void {
    this.finishFile();
    const e: Record<string, unknown> = { name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid };
    if (Math.round(h.mtime) !== 0) e['modtime'] = new Date(Math.round(h.mtime) * 1000).toISOString().replace('.000Z', 'Z');
    if (h.type === 'symlink' || h.type === 'hardlink') e['linkName'] = h.linkName;
    if (h.type === 'char' || h.type === 'block') Object.assign(e, { devMajor: h.devMajor, devMinor: h.devMinor });
    if (h.xattrs.size > 0) e['xattrs'] = Object.fromEntries([...h.xattrs].map(([k, v]) => [k, v.toString('base64')]));
    this.toc.push(e);
    if (h.type === 'reg' && h.size > 0) {
      e['size'] = h.size;
      this.current = { name: h.name, entry: e, offset: 0 };
    }
  }

  body(piece: Buffer): void {
    if (this.current === undefined) return; // bodies of links, dirs … carry nothing we keep
    let p = piece;
    while (p.length > 0) {
      const n = Math.min(CHUNK - this.partBytes, p.length);
      this.parts.push(Buffer.from(p.subarray(0, n)));
      this.partBytes += n;
      p = p.subarray(n);
      if (this.partBytes === CHUNK) this.cut();
    }
  }

  finish(): Buffer {
    this.finishFile();
    return Buffer.from(JSON.stringify({ version: 1, entries: this.toc }));
  }

  private finishFile(): void {
    if (this.partBytes > 0) this.cut();
    this.current = undefined;
  }

  private cut(): void {
    const f = this.current as { name: string; entry: Record<string, unknown>; offset: number };
    const data = this.parts.length === 1 ? (this.parts[0] as Buffer) : Buffer.concat(this.parts, this.partBytes);
    const digest = createHash('sha256').update(data).digest();
    this.ready.push({ digest, data });
    const c = f.offset === 0 ? f.entry : { name: f.name, type: 'chunk', chunkOffset: f.offset };
    c['chunkSize'] = data.length;
    c['chunkDigest'] = `sha256:${digest.toString('hex')}`;
    if (f.offset !== 0) this.toc.push(c);
    f.offset += data.length;
    this.parts = [];
    this.partBytes = 0;
  }
}

/**
 * Streams a plain layer: fetched in large ranges, checked against its digest, its TOC
 * returned and its content chunks handed to `onChunk` as they are cut (awaited, so a
 * slow consumer slows the fetch rather than filling memory).
 */
export async function streamPlainLayer(
  blob: BlobReader, digest: string, maxBytes: number, ctx: ErrorContext, onChunk: (c: PlainChunk) => Promise<void>,
): Promise<{ json: Buffer; compression: PlainCompression }> {
  const hash = createHash('sha256');
  let hashed = 0;
  const read = async (off: number): Promise<Buffer> => {
    const piece = await blob.readAt(off, Math.min(READ, blob.size - off));
    hash.update(piece);
    hashed = off + piece.length;
    return piece;
  };
  const head = await read(0);
  const compression = plainCompression(head);
  async function* compressed(): AsyncGenerator<Buffer> {
    yield head;
    for (let off = head.length; off < blob.size; off = hashed) yield await read(off);
  }
  /** After a failure: was it the blob? Hash the rest, so a damaged blob is named as such. */
  const checkDigest = async (): Promise<void> => {
    while (hashed < blob.size) await read(hashed);
    const actual = `sha256:${hash.digest('hex')}`;
    if (actual !== digest) throw new DigestMismatchError('layer blob', digest, actual, ctx);
  };
  const tar = new TarReader();
  const toc = new PlainTocBuilder();
  let total = 0;
  // Our own error, kept: pipeline() reports an abort of its other stages instead.
  let failure: StargzfsError | undefined;
  const consume = async (plain: AsyncIterable<Buffer>): Promise<void> => {
    for await (const piece of plain) {
      total += piece.length;
      if (total > maxBytes) throw (failure = new DecodeError(`plain layer's tar is larger than the limit of ${maxBytes} bytes`, ctx));
      try {
        tar.feed(piece, toc);
      } catch (err) {
        throw (failure = new TarError(`plain layer's tar is malformed: ${(err as Error).message}`, ctx));
      }
      for (const c of toc.ready.splice(0)) await onChunk(c);
    }
  };
  try {
    if (compression === 'gzip') await pipeline(Readable.from(compressed()), createGunzip(), consume);
    else if (compression === 'zstd') await consume(zstdStream(compressed()));
    else await consume(compressed());
  } catch (caught) {
    const err = failure ?? caught;
    if (err instanceof StargzfsError && !(err instanceof TarError) && !(err instanceof DecodeError)) throw err; // a failed fetch
    if (!(err instanceof DecodeError && err === failure)) await checkDigest();
    if (err instanceof StargzfsError) throw err;
    throw new DecodeError(`plain ${compression} layer does not decompress: ${(err as Error).message}`, ctx, { cause: err });
  }
  await checkDigest();
  try {
    tar.endFeed();
  } catch (err) {
    throw new TarError(`plain layer's tar is malformed: ${(err as Error).message}`, ctx);
  }
  const json = toc.finish();
  for (const c of toc.ready.splice(0)) await onChunk(c);
  return { json, compression };
}
