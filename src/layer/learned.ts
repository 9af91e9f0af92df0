// Learned prefetch: the chunks an earlier mount of this image read first (profile.ts),
// fetched in that order at prefetch priority, as one stream: each layer's profile in
// multi-range requests of up to 16 MiB whose ranges (a member each) are in the profile's
// order (learned-plan.ts, FileReader.warmInOrder), one request on the wire at a time, the
// next sent once the last one's bytes are in. The distribution registry answers the
// ranges in the order asked, so python's own binary comes first and at the link's whole
// rate. Before: jobs of 512 KiB in blob order, three on the wire sharing the link, and a
// round trip between one job and the next in each lane (python3 at 20 ms and 200 Mbit/s,
// meta.db kept and a spare waiting: 0.75–0.98 s).
//
// The profile's rows carry their chunks' places in the blob, so nothing is looked up
// here: resolving the paths of python's 126 chunks took the main thread 40–50 ms before
// the first request could go. Whole-file rows (a profile from before chunks were kept)
// are resolved by path.
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import { S_IFMT, S_IFREG } from '../toc/inode-db.js';
import { LayerView } from '../toc/layer-view.js';
import { resolvePath } from '../toc/view.js';
import type { FileReader } from './file-reader.js';
import { orderedRequests } from './learned-plan.js';
import type { ProfileEntry } from './profile.js';
import { PREFETCH } from './scheduler.js';

export interface LearnedResult {
  /** Chunks of the profile found in the image (a whole-file row counts its file's chunks). */
  readonly chunks: number;
  readonly fetched: number;
  readonly failed: number;
}

/** Each layer's profiled chunks, in profile order; layers in the order they first appear. */
export function learnedChunks(entries: readonly ProfileEntry[], layers: ReadonlyMap<string, LayerRow>, table: InodeTable): Map<string, ChunkRow[]> {
  const views = new Map<string, LayerView>();
  const out = new Map<string, ChunkRow[]>();
  for (const e of entries) {
    const layer = layers.get(e.layer);
    if (layer === undefined) continue;
    let rows: readonly ChunkRow[];
    if (e.chunk !== undefined) {
      rows = [e.chunk];
    } else {
      let view = views.get(e.layer);
      if (view === undefined) {
        view = new LayerView(table, layer, 'none');
        views.set(e.layer, view);
      }
      let node;
      try {
        node = resolvePath(view, e.path);
      } catch {
        continue; // the profile names a file this layer no longer has
      }
      if ((node.mode & S_IFMT) !== S_IFREG || node.size === 0) continue;
      rows = table.allChunks(node.dataId);
    }
    const list = out.get(e.layer) ?? [];
    list.push(...rows);
    out.set(e.layer, list);
  }
  return out;
}

export async function prefetchLearned(
  entries: readonly ProfileEntry[], layers: ReadonlyMap<string, LayerRow>, table: InodeTable, reader: FileReader,
): Promise<LearnedResult> {
  const chunks = learnedChunks(entries, layers, table);
  const done: Array<Promise<{ fetched: number; failed: number }>> = [];
  let count = 0;
  for (const [digest, rows] of chunks) {
    const layer = layers.get(digest) as LayerRow;
    count += rows.length;
    for (const request of orderedRequests(rows, (c) => reader.held(layer, c))) {
      let arrived!: () => void;
      const bytesIn = new Promise<void>((resolve) => (arrived = resolve));
      const all = reader.warmInOrder(layer, request, PREFETCH, arrived);
      done.push(all);
      await Promise.race([bytesIn, all]);
    }
  }
  const results = await Promise.all(done);
  return { chunks: count, fetched: results.reduce((n, r) => n + r.fetched, 0), failed: results.reduce((n, r) => n + r.failed, 0) };
}
