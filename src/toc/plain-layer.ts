// Layers that are not eStargz (plain tar, tar+gzip, tar+zstd) cannot be read lazily:
// the blob is fetched once, whole, checked against its digest, and its tar turned into
// the same TOC entries an eStargz layer would carry, with file contents cut into chunks
// stored by digest. They then mount and read like any other layer, and say NOT LAZY.
import { constants } from 'node:buffer';
import { createHash } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { zstdPrefix } from './codec.js';
import { TarReader, type TarEntry } from './tar.js';
import { DecodeError, DigestMismatchError, TarError, type ErrorContext } from '../errors.js';
import { sha256 } from './digest.js';

export interface PlainChunk {
  readonly digest: Buffer;
  readonly data: Buffer;
}

export type PlainCompression = 'gzip' | 'zstd' | 'none';

const CHUNK = 4 << 20;
const sha = (b: Buffer): Buffer => createHash('sha256').update(b).digest();

export function plainCompression(blob: Buffer): PlainCompression {
  if (blob[0] === 0x1f && blob[1] === 0x8b) return 'gzip';
  if (blob.readUInt32LE(0) === 0xfd2fb528) return 'zstd';
  return 'none';
}

/** The tar entries of a whole plain layer blob. */
export function plainTarEntries(blob: Buffer, maxBytes: number, ctx: ErrorContext): TarEntry[] {
  const kind = plainCompression(blob);
  const limit = Math.min(maxBytes, constants.MAX_LENGTH);
  let tar: Buffer;
  try {
    tar = kind === 'gzip' ? gunzipSync(blob, { maxOutputLength: limit }) : kind === 'zstd' ? zstdPrefix(blob, limit) : blob;
  } catch (err) {
    throw new DecodeError(`plain ${kind} layer does not decompress: ${(err as Error).message}`, ctx, { cause: err });
  }
  try {
    const r = new TarReader();
    const entries = r.push(tar);
    r.end();
    return entries;
  } catch (err) {
    throw new TarError(`plain layer's tar is malformed: ${(err as Error).message}`, ctx);
  }
}

/**
 * Fetches a plain layer whole, checks it against its digest, and returns its TOC and
 * content chunks. Used when the layer is indexed and again when its chunks were evicted.
 */
export async function readPlainLayer(
  blob: { readonly size: number; readAt(offset: number, length: number): Promise<Buffer> },
  digest: string, maxBytes: number, ctx: ErrorContext,
): Promise<{ json: Buffer; chunks: PlainChunk[]; compression: PlainCompression }> {
  const bytes = await blob.readAt(0, blob.size);
  const actual = sha256(bytes);
  if (actual !== digest) throw new DigestMismatchError('layer blob', digest, actual, ctx);
  return { ...plainToc(plainTarEntries(bytes, maxBytes, ctx)), compression: plainCompression(bytes) };
}

/** TOC JSON (eStargz entry shapes) and the content chunks for a plain layer's entries. */
export function plainToc(entries: readonly TarEntry[]): { json: Buffer; chunks: PlainChunk[] } {
  const toc: Array<Record<string, unknown>> = [];
  const chunks: PlainChunk[] = [];
  for (const { header: h, body } of entries) {
    const e: Record<string, unknown> = { name: h.name, type: h.type, mode: h.mode, uid: h.uid, gid: h.gid };
    if (Math.round(h.mtime) !== 0) e['modtime'] = new Date(Math.round(h.mtime) * 1000).toISOString().replace('.000Z', 'Z');
    if (h.type === 'symlink' || h.type === 'hardlink') e['linkName'] = h.linkName;
    if (h.type === 'char' || h.type === 'block') Object.assign(e, { devMajor: h.devMajor, devMinor: h.devMinor });
    if (h.xattrs.size > 0) e['xattrs'] = Object.fromEntries([...h.xattrs].map(([k, v]) => [k, v.toString('base64')]));
    toc.push(e);
    if (h.type !== 'reg' || body.length === 0) continue;
    e['size'] = body.length;
    for (let off = 0; off < body.length; off += CHUNK) {
      const data = body.subarray(off, Math.min(off + CHUNK, body.length));
      const digest = sha(data);
      chunks.push({ digest, data });
      const c = off === 0 ? e : { name: h.name, type: 'chunk', chunkOffset: off };
      c['chunkSize'] = data.length;
      c['chunkDigest'] = `sha256:${digest.toString('hex')}`;
      if (off !== 0) toc.push(c);
    }
  }
  return { json: Buffer.from(JSON.stringify({ version: 1, entries: toc })), chunks };
}
