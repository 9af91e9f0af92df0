// Chunks too large to hold in memory. The TOC's chunkSize is the contract, and an image
// may declare one chunk of gigabytes (a 3 GiB file of zeros compresses to 3 MB). Such a
// chunk never exists as one buffer: its member is fetched in windows, inflated piece by
// piece (stopping at the chunk's end however far the member goes on), hashed as it
// streams, and written to the chunk cache, which puts it into place only once its digest
// matched. Reads then take just their range from the cached file. Without a cache that can
// hold it, each read streams the member again and keeps only its own range, so memory
// stays bounded either way and no byte is served before the whole chunk is verified.
import { createHash } from 'node:crypto';
import type { BlobReader } from '../toc/blob.js';
import type { ChunkRow, LayerRow } from '../toc/inode-db.js';
import { inflateMember, type Compression } from '../toc/codec.js';
import { DecodeError, DigestMismatchError, StargzfsError, type ErrorContext } from '../errors.js';
import { chunkKey } from './members.js';
import type { RemoteBlob } from './whole-blob.js';
import { ON_DEMAND, type Scheduler, type Priority, type Scheduled } from './scheduler.js';

/** A chunk whose member must inflate past this many bytes takes this path. */
export const LARGE_CHUNK_BYTES = 32 << 20;
/** Compressed bytes asked for per request; one more is on the wire while one inflates. */
const WINDOW_BYTES = 8 << 20;

export const isLargeChunk = (c: ChunkRow): boolean => c.inner_offset + c.chunk_size > LARGE_CHUNK_BYTES;

/** What this path needs from the chunk cache (chunkcache/ChunkStore). */
export interface LargeChunkCache {
  readRange(digest: Buffer, size: number, from: number, to: number): Promise<Buffer | undefined>;
  createWriter(digest: Buffer, size: number): LargeChunkWriter | undefined;
}

export interface LargeChunkWriter {
  write(piece: Buffer): Promise<void>;
  commit(): Promise<void>;
  abort(): Promise<void>;
}

/** Where a pass's bytes go: into the cache, or the range a read keeps. */
type Out = { writer: LargeChunkWriter } | { from: number; to: number };

/** Told of each blob request made: its bytes and how long it took. */
export type FetchedHook = (layer: LayerRow, bytes: number, ms: number, priority: Priority) => void;

export class LargeChunks {
  /** Chunks being streamed into the cache, by chunkKey: true once stored. */
  private readonly storing = new Map<string, Scheduled<boolean>>();

  constructor(
    private readonly blobFor: (layer: LayerRow) => BlobReader,
    private readonly scheduler: Scheduler,
    private readonly cache: LargeChunkCache | undefined,
    private readonly fetched: FetchedHook,
  ) {}

  /** Bytes [from, to) of the chunk (offsets within it), verified. */
  async read(layer: LayerRow, c: ChunkRow, from: number, to: number, ctx: ErrorContext): Promise<Buffer> {
    if (c.digest !== null && this.cache !== undefined) {
      const hit = await this.cache.readRange(c.digest, c.chunk_size, from, to);
      if (hit !== undefined) return hit;
      let stored = false;
      try {
        stored = await this.store(layer, c, ON_DEMAND, ctx);
      } catch (err) {
        // Bad bytes or a failed fetch fail the read; a cache that could not take the file
        // (a full disk) only means this read streams the member itself.
        if (err instanceof StargzfsError) throw err;
      }
      if (stored) {
        const now = await this.cache.readRange(c.digest, c.chunk_size, from, to);
        if (now !== undefined) return now;
      }
    }
    // Not cacheable (no cache, larger than its quota or the disk, or no digest to file it under).
    return this.scheduler.submit(ON_DEMAND, c.blob_end - c.blob_offset, () => this.twice(layer, c, ON_DEMAND, ctx, () => ({ from, to }))) as Promise<Buffer>;
  }

  /** Streams the chunk into the cache at `priority` (read-ahead, prefetch, background). */
  warm(layer: LayerRow, c: ChunkRow, priority: Priority): Promise<boolean> {
    return this.store(layer, c, priority, { layer: layer.digest, offset: c.chunk_offset });
  }

  /** Whether the chunk is being streamed into the cache now. */
  inFlight(layer: LayerRow, c: ChunkRow): boolean {
    return this.storing.has(chunkKey(layer.id, c));
  }

  /** Streams the chunk into the cache once, however many readers ask; false if it cannot be cached. */
  private store(layer: LayerRow, c: ChunkRow, priority: Priority, ctx: ErrorContext): Promise<boolean> {
    const key = chunkKey(layer.id, c);
    const running = this.storing.get(key);
    if (running !== undefined) {
      if (priority === ON_DEMAND) running.promote();
      return running.done;
    }
    if (c.digest === null || this.cache === undefined) return Promise.resolve(false);
    const { cache, digest } = { cache: this.cache, digest: c.digest };
    const first = cache.createWriter(digest, c.chunk_size);
    if (first === undefined) return Promise.resolve(false);
    // Each attempt writes a file of its own: a failed one's was removed.
    const writers: LargeChunkWriter[] = [];
    const writer = (): Out => {
      const w = writers.length === 0 ? first : cache.createWriter(digest, c.chunk_size);
      if (w === undefined) throw new DecodeError('the chunk cache can no longer take this chunk for a second try', ctx);
      writers.push(w);
      return { writer: w };
    };
    const job = this.scheduler.schedule(priority, c.blob_end - c.blob_offset, async () => {
      await this.twice(layer, c, priority, ctx, writer);
      return true;
    });
    this.storing.set(key, job);
    const clear = (): void => {
      if (this.storing.get(key) === job) this.storing.delete(key);
    };
    // A job cancelled before it ran never wrote: its temporary file was never made.
    job.done.then(clear, () => {
      clear();
      for (const w of writers) void w.abort();
    });
    return job.done;
  }

  /** A pass, and once more (from another host, if there is one) when the bytes came wrong. */
  private async twice(layer: LayerRow, c: ChunkRow, priority: Priority, ctx: ErrorContext, out: () => Out): Promise<Buffer | undefined> {
    try {
      return await this.pass(layer, c, priority, ctx, out(), this.blobFor(layer));
    } catch (err) {
      if (!(err instanceof DigestMismatchError || err instanceof DecodeError)) throw err;
      const blob = this.blobFor(layer) as RemoteBlob;
      return this.pass(layer, c, priority, ctx, out(), blob.elsewhere?.() ?? blob);
    }
  }

  /**
   * One pass over the chunk's member: inflated up to the chunk's end, hashed, and either
   * written to `writer` (committed once the digest matched) or with [from, to) kept.
   */
  private async pass(layer: LayerRow, c: ChunkRow, priority: Priority, ctx: ErrorContext, out: Out, blob: BlobReader): Promise<Buffer | undefined> {
    const at = { ...ctx, offset: c.chunk_offset };
    const hash = c.digest !== null ? createHash('sha256') : undefined;
    const keep = 'from' in out ? Buffer.allocUnsafe(out.to - out.from) : undefined;
    let pos = -c.inner_offset;
    try {
      const need = c.inner_offset + c.chunk_size;
      try {
        for await (let piece of inflateMember(layer.compression as Compression, this.compressed(blob, layer, c, priority), need)) {
          if (pos < 0) {
            const skip = Math.min(piece.length, -pos);
            piece = piece.subarray(skip);
            pos += skip;
            if (piece.length === 0) continue;
          }
          hash?.update(piece);
          if ('writer' in out) await out.writer.write(piece);
          else if (keep !== undefined) {
            const a = Math.max(pos, out.from);
            const b = Math.min(pos + piece.length, out.to);
            if (b > a) piece.copy(keep, a - out.from, a - pos, b - pos);
          }
          pos += piece.length;
        }
      } catch (err) {
        if (err instanceof StargzfsError) throw err;
        throw new DecodeError(`the member at blob bytes ${c.blob_offset}–${c.blob_end} does not decompress: ${(err as Error).message}`, at, { cause: err });
      }
      if (pos < c.chunk_size) {
        throw new DecodeError(`chunk at ${c.chunk_offset} (blob bytes ${c.blob_offset}–${c.blob_end}) decompresses to ${Math.max(0, pos)} bytes, need ${c.chunk_size}`, at);
      }
      if (hash !== undefined && c.digest !== null) {
        const actual = hash.digest();
        if (!actual.equals(c.digest)) {
          throw new DigestMismatchError(`chunk at file offset ${c.chunk_offset}`, `sha256:${c.digest.toString('hex')}`, `sha256:${actual.toString('hex')}`, at);
        }
      }
      if ('writer' in out) await out.writer.commit();
      return keep;
    } catch (err) {
      if ('writer' in out) await out.writer.abort();
      throw err;
    }
  }

  /** The member's compressed bytes in windows, the next one requested while this one inflates. */
  private async *compressed(blob: BlobReader, layer: LayerRow, c: ChunkRow, priority: Priority): AsyncGenerator<Buffer> {
    const get = (off: number): Promise<Buffer> => {
      const len = Math.min(WINDOW_BYTES, c.blob_end - off);
      const t0 = performance.now();
      return blob.readAt(off, len).then((b) => {
        this.fetched(layer, len, performance.now() - t0, priority);
        return b;
      });
    };
    let next: Promise<Buffer> | undefined = get(c.blob_offset);
    try {
      for (let off = c.blob_offset; off < c.blob_end; ) {
        const b: Buffer = await (next as Promise<Buffer>);
        off += b.length;
        next = off < c.blob_end ? get(off) : undefined;
        yield b;
      }
    } finally {
      // Stopped early (the chunk ended, or a failure): the window on the wire is not wanted.
      next?.catch(() => undefined);
    }
  }
}
