// Learned prefetch: the files an earlier mount of this image read first (profile.ts),
// fetched in that order at prefetch priority, a few files per job so that the first
// files arrive first and the rest still travel in large reads.
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import { S_IFMT, S_IFREG } from '../toc/inode-db.js';
import { LayerView } from '../toc/layer-view.js';
import { resolvePath } from '../toc/view.js';
import type { FileReader } from './file-reader.js';
import type { ProfileEntry } from './profile.js';
import { PREFETCH } from './scheduler.js';

const FILES_PER_JOB = 64;
const BYTES_PER_JOB = 4 << 20;

export interface LearnedResult {
  /** Profile entries found in the image as regular files. */
  readonly files: number;
  readonly fetched: number;
  readonly failed: number;
}

export async function prefetchLearned(
  entries: readonly ProfileEntry[], layers: ReadonlyMap<string, LayerRow>, table: InodeTable, reader: FileReader,
): Promise<LearnedResult> {
  const views = new Map<string, LayerView>();
  const jobs: Array<Promise<{ fetched: number; failed: number }>> = [];
  const pending = new Map<string, { rows: ChunkRow[]; files: number; bytes: number }>();
  let files = 0;
  const flush = (digest: string): void => {
    const p = pending.get(digest);
    const layer = layers.get(digest);
    if (p === undefined || layer === undefined) return;
    pending.delete(digest);
    jobs.push(reader.warm(layer, p.rows, PREFETCH, BYTES_PER_JOB));
  };
  for (const e of entries) {
    const layer = layers.get(e.layer);
    if (layer === undefined) continue;
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
    files++;
    const rows = table.allChunks(node.dataId);
    const p = pending.get(e.layer) ?? { rows: [], files: 0, bytes: 0 };
    p.rows.push(...rows);
    p.files++;
    p.bytes += rows.reduce((n, c) => n + c.blob_end - c.blob_offset, 0);
    pending.set(e.layer, p);
    if (p.files >= FILES_PER_JOB || p.bytes >= BYTES_PER_JOB) flush(e.layer);
  }
  for (const digest of [...pending.keys()]) flush(digest);
  let fetched = 0;
  let failed = 0;
  for (const r of await Promise.all(jobs)) {
    fetched += r.fetched;
    failed += r.failed;
  }
  return { files, fetched, failed };
}
