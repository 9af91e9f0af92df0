// Landmark prefetch (ESTARGZ.md §6): the region [0, offset(.prefetch.landmark)) holds the
// files the image's builder marked as needed first. It is fetched in a few large reads,
// every member in it is decompressed once, and every chunk of every file in it (several
// when they share a member through innerOffset) is verified and cached.
import { createHash } from 'node:crypto';
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import type { BlobReader } from '../toc/blob.js';
import { decompressPrefix, type Compression } from '../toc/codec.js';
import type { ChunkCache, LayerCounters } from './file-reader.js';

export interface PrefetchResult {
  readonly layer: string;
  readonly regionBytes: number;
  readonly chunks: number;
  readonly cached: number;
  /** Chunks whose bytes did not match their digest: not cached, reported. */
  readonly corrupt: number;
}

/** Largest single read while prefetching, bytes. */
const MAX_READ = 16 << 20;

export async function prefetchLandmarkRegion(
  table: InodeTable, layer: LayerRow, blob: BlobReader, cache: ChunkCache, counters: LayerCounters,
): Promise<PrefetchResult> {
  const empty = { layer: layer.digest, regionBytes: 0, chunks: 0, cached: 0, corrupt: 0 };
  if (layer.landmark !== 'prefetch' || layer.prefetch_size <= 0) return empty;
  const chunks = table.layerChunksBefore(layer, layer.prefetch_size);
  // One entry per member: its extent and the chunks decoded from it.
  const members = new Map<number, { start: number; end: number; chunks: ChunkRow[] }>();
  for (const c of chunks) {
    const m = members.get(c.blob_offset) ?? { start: c.blob_offset, end: c.blob_end, chunks: [] };
    m.chunks.push(c);
    members.set(c.blob_offset, m);
  }
  let cached = 0;
  let corrupt = 0;
  let regionBytes = 0;
  const list = [...members.values()].sort((a, b) => a.start - b.start);
  for (let i = 0; i < list.length; ) {
    // Group consecutive members into reads of at most MAX_READ bytes.
    const first = list[i] as { start: number; end: number };
    let j = i;
    while (j + 1 < list.length && (list[j + 1] as { end: number }).end - first.start <= MAX_READ) j++;
    const last = list[j] as { end: number };
    const bytes = await blob.readAt(first.start, last.end - first.start);
    counters.requests++;
    counters.bytesFetched += bytes.length;
    regionBytes += bytes.length;
    for (const m of list.slice(i, j + 1)) {
      const need = Math.max(...m.chunks.map((c) => c.inner_offset + c.chunk_size));
      const plain = await decompressPrefix(layer.compression as Compression, bytes.subarray(m.start - first.start, m.end - first.start), need);
      for (const c of m.chunks) {
        const data = plain.subarray(c.inner_offset, c.inner_offset + c.chunk_size);
        if (c.digest === null || data.length !== c.chunk_size || !createHash('sha256').update(data).digest().equals(c.digest)) {
          corrupt++;
          continue;
        }
        await cache.put(c.digest, Buffer.from(data));
        cached++;
      }
    }
    i = j + 1;
  }
  return { layer: layer.digest, regionBytes, chunks: chunks.length, cached, corrupt };
}
