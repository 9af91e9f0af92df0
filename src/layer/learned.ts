// Learned prefetch: the files an earlier mount of this image read first (profile.ts),
// fetched in that order at prefetch priority: a few files per job, each job one request
// (multi-range when its files lie apart, handed on part by part; a large file in 16 MiB
// requests), and three jobs on the wire at a time. All jobs at once (seven at 20 ms and
// 200 Mbit/s for python3's 8 MB) shared the link: python's own binary, in the first,
// arrived last. A lane sends its next request once the last one's bytes are in, not once
// they are decoded: that waited 15–60 ms per job for the thread, with the link idle.
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import { S_IFMT, S_IFREG } from '../toc/inode-db.js';
import { LayerView } from '../toc/layer-view.js';
import { resolvePath } from '../toc/view.js';
import type { FileReader } from './file-reader.js';
import type { ProfileEntry } from './profile.js';
import { PREFETCH } from './scheduler.js';

const FILES_PER_JOB = 64;
/** Compressed bytes per job (a file larger than this is a job of its own). */
const BYTES_PER_JOB = 512 << 10;
/** Jobs on the wire at once: while one's last bytes arrive, the next one's request is out. */
const LANES = 3;
/** A job's largest request (a large file is fetched in several, as landmark prefetch does). */
const MAX_REQUEST = 16 << 20;

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
  const jobs: Array<(arrived: () => void) => Promise<{ fetched: number; failed: number }>> = [];
  const pending = new Map<string, { rows: ChunkRow[]; files: number; bytes: number }>();
  let files = 0;
  const flush = (digest: string): void => {
    const p = pending.get(digest);
    const layer = layers.get(digest);
    if (p === undefined || layer === undefined) return;
    pending.delete(digest);
    jobs.push((arrived) => reader.warm(layer, p.rows, PREFETCH, MAX_REQUEST, arrived));
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
  let next = 0;
  const done: Array<Promise<{ fetched: number; failed: number }>> = [];
  const lane = async (): Promise<void> => {
    for (let job = jobs[next++]; job !== undefined; job = jobs[next++]) {
      let arrived!: () => void;
      const bytesIn = new Promise<void>((resolve) => (arrived = resolve));
      const all = job(arrived);
      done.push(all);
      await Promise.race([bytesIn, all]);
    }
  };
  await Promise.all(Array.from({ length: LANES }, lane));
  const results = await Promise.all(done);
  return { files, fetched: results.reduce((n, r) => n + r.fetched, 0), failed: results.reduce((n, r) => n + r.failed, 0) };
}
