// Landmark prefetch (ESTARGZ.md §6): the region [0, offset(.prefetch.landmark)) holds the
// files the image's builder marked as needed first. It is fetched in a few large reads at
// prefetch priority; every member in it is decompressed once, and every chunk of every
// file in it (several when they share a member through innerOffset) is verified and
// cached.
import type { InodeTable, LayerRow } from '../toc/inode-db.js';
import type { FileReader } from './file-reader.js';
import { PREFETCH } from './scheduler.js';

export interface PrefetchResult {
  readonly layer: string;
  readonly regionBytes: number;
  readonly chunks: number;
  readonly cached: number;
  /** Chunks whose bytes did not match their digest: not cached, reported. */
  readonly corrupt: number;
}

/** Largest single read while prefetching, bytes: large enough that round trips do not dominate. */
const MAX_READ = 16 << 20;

/** Whether the layer has a landmark region to prefetch. */
export const hasLandmarkRegion = (layer: LayerRow): boolean => layer.landmark === 'prefetch' && layer.prefetch_size > 0;

export async function prefetchLandmarkRegion(table: InodeTable, layer: LayerRow, reader: FileReader): Promise<PrefetchResult> {
  if (!hasLandmarkRegion(layer)) return { layer: layer.digest, regionBytes: 0, chunks: 0, cached: 0, corrupt: 0 };
  const before = reader.stats(layer.id).bytesFetched;
  const chunks = table.layerChunksBefore(layer, layer.prefetch_size);
  const { fetched, failed } = await reader.warm(layer, chunks, PREFETCH, MAX_READ);
  return { layer: layer.digest, regionBytes: reader.stats(layer.id).bytesFetched - before, chunks: chunks.length, cached: fetched, corrupt: failed };
}
