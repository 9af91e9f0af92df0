// Background fetch: everything of a layer not yet cached, in blob order, in small batches
// at background priority (the scheduler pauses it while on-demand reads are in flight and
// holds it to the bandwidth limit). Nodes are paged so a layer of 200k files is never
// held in memory as one list of chunks.
import type { InodeTable, LayerRow } from '../toc/inode-db.js';
import type { FileReader } from './file-reader.js';
import { BACKGROUND } from './scheduler.js';

const NODES_PER_PAGE = 4096;
/**
 * Blob bytes per background request: small, so that an on-demand read arriving while one
 * is in flight shares the link with it only briefly (one at a time; see scheduler.ts).
 */
const BATCH_BYTES = 1 << 20;

export async function backgroundFetch(
  table: InodeTable, layer: LayerRow, reader: FileReader, stopped: () => boolean,
): Promise<{ fetched: number; failed: number }> {
  let fetched = 0;
  let failed = 0;
  const last = layer.root_id + layer.node_count - 1;
  for (let from = layer.root_id; from <= last && !stopped(); from += NODES_PER_PAGE) {
    const rows = table.chunksNear(layer, from, from + NODES_PER_PAGE - 1, 0, Number.MAX_SAFE_INTEGER);
    const r = await reader.warm(layer, rows, BACKGROUND, BATCH_BYTES);
    fetched += r.fetched;
    failed += r.failed;
  }
  return { fetched, failed };
}
