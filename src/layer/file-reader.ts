// Reads a file's bytes through its chunks: fetch the member's compressed extent,
// decompress, skip innerOffset, take chunkSize, and check sha256 against chunkDigest
// before a byte is returned (ESTARGZ.md §4.7, §5). The chunk cache and the fetch
// scheduler of the read-path issue slot in here.
import { createHash } from 'node:crypto';
import type { BlobReader } from '../toc/blob.js';
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import { decompressPrefix, type Compression } from '../toc/codec.js';
import type { ViewNode } from '../toc/view.js';
import { DecodeError, DigestMismatchError, StargzfsError, TocFormatError, type ErrorContext } from '../errors.js';
import { readPlainLayer } from '../toc/plain-layer.js';

export type BlobFor = (layer: LayerRow) => BlobReader;

/** Where verified chunks are kept between reads (chunkcache/ChunkStore). */
export interface ChunkCache {
  get(digest: Buffer, size: number): Promise<Buffer | undefined>;
  put(digest: Buffer, data: Buffer): Promise<void>;
}

/** Per-layer counters, for status, metrics and tests. */
export interface LayerCounters {
  /** Blob range requests made for chunks. */
  requests: number;
  bytesFetched: number;
  bytesServed: number;
  cacheHits: number;
  cacheMisses: number;
}

export class FileReader {
  private readonly counters = new Map<number, LayerCounters>();
  private readonly inflight = new Map<string, Promise<Buffer>>();
  private readonly plainRefetch = new Map<string, Promise<Map<string, Buffer>>>();

  constructor(
    private readonly table: InodeTable,
    private readonly blobFor: BlobFor,
    private readonly cache?: ChunkCache,
    private readonly onCacheError?: (err: unknown) => void,
  ) {}

  /** Counters of one layer (by meta.db layer id), zero until it is read. */
  /**
   * A chunk of a plain (not eStargz) layer that is no longer cached: the whole blob is
   * fetched again (once for all waiting readers), checked, and every chunk re-stored.
   */
  private async fromPlainLayer(layer: LayerRow, digest: Buffer, ctx: ErrorContext): Promise<Buffer> {
    const key = `plain:${layer.id}`;
    let p = this.plainRefetch.get(key);
    if (p === undefined) {
      p = (async () => {
        const blob = this.blobFor(layer);
        const counters = this.stats(layer.id);
        counters.requests++;
        counters.bytesFetched += blob.size;
        const found = new Map<string, Buffer>();
        for (const c of (await readPlainLayer(blob, layer.digest, Number.MAX_SAFE_INTEGER, ctx)).chunks) {
          found.set(c.digest.toString('hex'), c.data);
          await this.cache?.put(c.digest, c.data).catch((err: unknown) => this.onCacheError?.(err));
        }
        return found;
      })().finally(() => this.plainRefetch.delete(key));
      this.plainRefetch.set(key, p);
    }
    const data = (await p).get(digest.toString('hex'));
    if (data === undefined) throw new DecodeError('the layer blob no longer holds this chunk', ctx);
    return data;
  }

  stats(layerId: number): LayerCounters {
    let c = this.counters.get(layerId);
    if (c === undefined) {
      c = { requests: 0, bytesFetched: 0, bytesServed: 0, cacheHits: 0, cacheMisses: 0 };
      this.counters.set(layerId, c);
    }
    return c;
  }

  /** Bytes [off, off+len) of a regular file, clipped to its size. */
  async read(node: ViewNode, path: string, off: number, len: number): Promise<Buffer> {
    const end = Math.min(node.size, off + len);
    if (off >= end) return Buffer.alloc(0);
    const parts: Buffer[] = [];
    for await (const piece of this.stream(node, path, off, end)) parts.push(piece);
    return Buffer.concat(parts);
  }

  /** The file's bytes in [off, end), one verified chunk at a time. */
  async *stream(node: ViewNode, path: string, off = 0, end = node.size): AsyncGenerator<Buffer> {
    const layer = this.table.layer(node.layerId);
    if (layer === undefined) throw new Error(`meta.db: layer ${node.layerId} is missing`);
    const ctx = { layer: layer.digest, path, inode: node.ino };
    let pos = off;
    for (const c of this.table.chunks(node.dataId, off, end)) {
      if (c.chunk_offset > pos) break;
      const data = await this.chunk(layer, c, path, node.ino);
      const from = pos - c.chunk_offset;
      const to = Math.min(c.chunk_size, end - c.chunk_offset);
      if (to > from) {
        this.stats(layer.id).bytesServed += to - from;
        yield data.subarray(from, to);
        pos = c.chunk_offset + to;
      }
      if (pos >= end) return;
    }
    if (pos < end) throw new TocFormatError(`no chunk in the TOC covers file offset ${pos} (file size ${node.size})`, { ...ctx, offset: pos });
  }

  /**
   * One chunk, verified. Concurrent reads of the same chunk (same digest, or the same
   * member of the same layer) share one fetch and decode: single-flight.
   */
  private chunk(layer: LayerRow, c: ChunkRow, path: string, inode: number): Promise<Buffer> {
    const key = c.digest !== null ? c.digest.toString('hex') : `${layer.id}:${c.blob_offset}:${c.inner_offset}:${c.chunk_size}`;
    let p = this.inflight.get(key);
    if (p === undefined) {
      p = this.loadChunk(layer, c, path, inode).finally(() => this.inflight.delete(key));
      this.inflight.set(key, p);
    }
    return p;
  }

  private async loadChunk(layer: LayerRow, c: ChunkRow, path: string, inode: number): Promise<Buffer> {
    const ctx = { layer: layer.digest, path, inode, offset: c.chunk_offset };
    if (c.zeros) return Buffer.alloc(c.chunk_size);
    if (c.digest === null && layer.verified === 1) {
      throw new TocFormatError(`chunk at ${c.chunk_offset} has no chunkDigest to verify it against`, ctx);
    }
    const counters = this.stats(layer.id);
    if (c.digest !== null && this.cache !== undefined) {
      const hit = await this.cache.get(c.digest, c.chunk_size);
      if (hit !== undefined) {
        counters.cacheHits++;
        return hit;
      }
      counters.cacheMisses++;
    }
    if (c.blob_end === 0 && c.digest !== null) return this.fromPlainLayer(layer, c.digest, ctx);
    const blob = this.blobFor(layer);
    counters.requests++;
    counters.bytesFetched += c.blob_end - c.blob_offset;
    const comp = await blob.readAt(c.blob_offset, c.blob_end - c.blob_offset);
    const need = c.inner_offset + c.chunk_size;
    let plain: Buffer;
    try {
      plain = await decompressPrefix(layer.compression as Compression, comp, need);
    } catch (err) {
      if (err instanceof StargzfsError) throw err;
      throw new DecodeError(`chunk at ${c.chunk_offset} (blob bytes ${c.blob_offset}–${c.blob_end}) does not decompress: ${(err as Error).message}`, ctx, { cause: err });
    }
    if (plain.length < need) {
      throw new DecodeError(`chunk at ${c.chunk_offset} decompressed to ${plain.length} bytes, needs ${need}`, ctx);
    }
    const data = plain.subarray(c.inner_offset, need);
    if (c.digest !== null) {
      const actual = createHash('sha256').update(data).digest();
      if (!actual.equals(c.digest)) {
        throw new DigestMismatchError(`chunk at file offset ${c.chunk_offset}`, `sha256:${c.digest.toString('hex')}`, `sha256:${actual.toString('hex')}`, ctx);
      }
      // Only verified bytes are cached; a cache that cannot store them does not fail the read.
      await this.cache?.put(c.digest, Buffer.from(data)).catch((err: unknown) => this.onCacheError?.(err));
    }
    return data;
  }
}
