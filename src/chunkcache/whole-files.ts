// Whole files assembled from cached chunks, for FUSE passthrough (the kernel reads a file
// straight from one plain file holding all its bytes from offset 0). An assembled file is
// named by a digest of its piece list and lives at <root>/files/<2 hex>/<64 hex>, so the
// same content in two layers (the same chunk list) shares one file. ChunkStore owns the
// quota and the index; this module names the files and writes their bytes.
import { createHash } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { CacheCorruptError } from '../errors.js';

/** One piece of a file, in file order: a chunk (its digest, uncompressed size) or a hole of zeros (digest null). */
export interface FilePiece {
  readonly digest: Buffer | null;
  readonly size: number;
}

/**
 * The index of assembled files in meta.db, beside cache_chunks. A table of its own rather
 * than flagged rows in cache_chunks: early fetch (layer/early-fetch.ts) asks cache_chunks
 * which chunks are cached by digest alone (cache-index.ts CACHED_SQL), and a file's digest
 * (of its piece list) is no chunk; every query over chunks would otherwise need the flag.
 * Eviction walks both tables by last_use (ChunkStore.evict), so they share one LRU.
 */
export const WHOLE_FILES_SCHEMA = `
CREATE TABLE IF NOT EXISTS cache_files (
  digest BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  last_use INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_files_lru ON cache_files(last_use);
`;

/** Bytes a chunk file is copied in. */
const COPY_PIECE_BYTES = 4 << 20;
const NO_DIGEST = Buffer.alloc(32);

/**
 * The name of a file made of these pieces: sha256 over each piece's digest (32 zero bytes
 * for a hole) and size (8 bytes, big-endian). Undefined for pieces no file is made of (a
 * digest that is not a sha256, a size that is not a whole number of bytes).
 */
export function wholeFileDigest(pieces: readonly FilePiece[]): Buffer | undefined {
  // An open of a file not whole yet asks up to three times (finishing? whole? grow), with
  // the one piece list its caller keeps for the file (layer/whole-file.ts).
  if (digests.has(pieces)) return digests.get(pieces);
  const d = digestOf(pieces);
  digests.set(pieces, d);
  return d;
}

const digests = new WeakMap<readonly FilePiece[], Buffer | undefined>();

function digestOf(pieces: readonly FilePiece[]): Buffer | undefined {
  const h = createHash('sha256');
  const size = Buffer.alloc(8);
  for (const p of pieces) {
    if (!Number.isSafeInteger(p.size) || p.size < 0 || (p.digest !== null && p.digest.length !== 32)) return undefined;
    size.writeBigUInt64BE(BigInt(p.size));
    h.update(p.digest ?? NO_DIGEST).update(size);
  }
  return h.digest();
}

/** The file's size: its pieces' sizes summed. */
export function wholeFileSize(pieces: readonly FilePiece[]): number {
  let total = 0;
  for (const p of pieces) total += p.size;
  return total;
}

async function copyChunk(path: string, size: number, out: FileHandle, at: number, buf: Buffer): Promise<void> {
  const src = await open(path, 'r');
  try {
    const actual = (await src.stat()).size;
    if (actual !== size) throw new CacheCorruptError(`chunk file holds ${actual} bytes, not ${size}`, { path });
    for (let done = 0; done < size; ) {
      const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, size - done), done);
      if (bytesRead === 0) throw new CacheCorruptError(`chunk file ends at ${done} bytes, not ${size}`, { path });
      for (let w = 0; w < bytesRead; ) w += (await out.write(buf, w, bytesRead - w, at + done + w)).bytesWritten;
      done += bytesRead;
    }
  } finally {
    await src.close();
  }
}

/** A chunk's bytes for a growing file: in memory, or a verified chunk file's path. */
export type PieceSource = Buffer | string;

/**
 * A whole file written as its chunks arrive (ChunkStore.growFile): made at its full size
 * (holes stay holes), each verified chunk written at every offset it has in the file the
 * first time it is offered, from memory (a chunk just fetched) or from its chunk file. It
 * is whole once every chunk is written; ChunkStore then renames it into place. Writing it
 * beside the reads is what lets a file read through once be handed to the kernel at its
 * very next open: assembling it after the last close took a second for 512 MiB, and the
 * next open came first.
 */
export class GrowingFile {
  /** Chunks still to be written: hex → its size and offsets in the file. */
  private readonly left = new Map<string, { size: number; offsets: number[] }>();
  private readonly fh: Promise<FileHandle>;
  private writing = 0;
  readonly size: number;
  /** Bytes written so far (counted against the cache quota). */
  written = 0;
  /** When a chunk was last written (an idle file is given up). */
  lastWrite = Date.now();

  constructor(readonly tmp: string, pieces: readonly FilePiece[]) {
    let at = 0;
    for (const p of pieces) {
      if (p.digest !== null && p.size > 0) {
        const hex = p.digest.toString('hex');
        const e = this.left.get(hex);
        if (e === undefined) this.left.set(hex, { size: p.size, offsets: [at] });
        else e.offsets.push(at);
      }
      at += p.size;
    }
    this.size = at;
    this.fh = (async () => {
      const fh = await open(tmp, 'wx');
      try {
        await fh.truncate(at);
      } catch (err) {
        await fh.close().catch(() => undefined);
        throw err;
      }
      return fh;
    })();
    this.fh.catch(() => undefined);
  }

  /** The chunks not written yet: hex → size. */
  *missing(): IterableIterator<[string, number]> {
    for (const [hex, e] of this.left) yield [hex, e.size];
  }

  /** Bytes writing this chunk adds (0 if not wanted or already written). */
  bytesFor(hex: string): number {
    const e = this.left.get(hex);
    return e === undefined ? 0 : e.size * e.offsets.length;
  }

  /** Every chunk written or being written. */
  get allIn(): boolean {
    return this.left.size === 0;
  }

  /** Every chunk written, no write in flight. */
  get whole(): boolean {
    return this.left.size === 0 && this.writing === 0;
  }

  /**
   * Writes a verified chunk at each of its offsets (a no-op if it is not one of the file's
   * or was written already). Throws on any failure: the caller gives the file up.
   */
  async write(hex: string, source: PieceSource): Promise<void> {
    const e = this.left.get(hex);
    if (e === undefined) return;
    this.left.delete(hex);
    this.writing++;
    try {
      const out = await this.fh;
      for (const at of e.offsets) {
        if (typeof source === 'string') await copyChunk(source, e.size, out, at, Buffer.allocUnsafe(Math.min(COPY_PIECE_BYTES, e.size)));
        else {
          if (source.length !== e.size) throw new CacheCorruptError(`chunk ${hex} holds ${source.length} bytes, not ${e.size}`, { path: this.tmp });
          for (let w = 0; w < source.length; ) w += (await out.write(source, w, source.length - w, at + w)).bytesWritten;
        }
        this.written += e.size;
      }
      this.lastWrite = Date.now();
    } finally {
      this.writing--;
    }
  }

  /** Closes the file (it is whole; the caller renames it). */
  async close(): Promise<void> {
    await (await this.fh).close();
  }

  /** Closes and removes the file (given up). */
  async discard(): Promise<void> {
    await (await this.fh.catch(() => undefined))?.close().catch(() => undefined);
    await unlink(this.tmp).catch(() => undefined);
  }
}
