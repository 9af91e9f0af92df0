// Whole files assembled from cached chunks, for FUSE passthrough (the kernel reads a file
// straight from one plain file holding all its bytes from offset 0). An assembled file is
// named by a digest of its piece list and lives at <root>/files/<2 hex>/<64 hex>, so the
// same content in two layers (the same chunk list) shares one file. ChunkStore owns the
// quota, the index and the queue; this module names the files and writes their bytes.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
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

/**
 * Writes the pieces' bytes back to back into a new file at `dest`: each chunk file (at
 * `pathOf(digest)`) read in pieces of at most 4 MiB and written at its offset through one
 * descriptor; holes are not written at all (the file is truncated to its full size at the
 * end, so they read as zeros and take no disk). The file is synced before it is closed: an
 * assembled file is trusted without hashing once renamed into place (ChunkStore.wholeFile),
 * which is sound only if a crash cannot leave it renamed but not written. Async I/O only.
 * Throws on any failure; the caller removes `dest`.
 */
export async function writeWholeFile(dest: string, pieces: readonly FilePiece[], pathOf: (digest: Buffer) => string): Promise<void> {
  const out = await open(dest, 'wx');
  try {
    let buf: Buffer | undefined;
    let pos = 0;
    for (const p of pieces) {
      if (p.digest !== null && p.size > 0) {
        buf ??= Buffer.allocUnsafe(Math.min(COPY_PIECE_BYTES, wholeFileSize(pieces)));
        await copyChunk(pathOf(p.digest), p.size, out, pos, buf);
      }
      pos += p.size;
    }
    await out.truncate(pos);
  } finally {
    await out.close();
  }
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
