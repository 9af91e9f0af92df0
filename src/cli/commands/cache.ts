// `stargzfs cache du|gc|clear [--json]`
import type { ChunkStore } from '../../chunkcache/chunk-store.js';
import { mib, write, writeJson } from '../output.js';

export async function cacheCommand(cache: ChunkStore, action: 'du' | 'gc' | 'clear', json: boolean): Promise<void> {
  if (action === 'du') {
    const u = cache.usage();
    if (json) await writeJson(u);
    else await write(`${u.chunks} chunks, ${mib(u.bytes)} MiB of a ${mib(u.quotaBytes)} MiB quota (${((100 * u.bytes) / u.quotaBytes).toFixed(1)}%)\n`);
  } else if (action === 'gc') {
    const r = await cache.gc();
    const u = cache.usage();
    if (json) await writeJson({ ...r, ...u });
    else await write(`evicted ${r.evicted} chunks (${mib(r.freed)} MiB), adopted ${r.adopted} unindexed, removed ${r.tmpRemoved} stale temporary files; now ${mib(u.bytes)} MiB of ${mib(u.quotaBytes)} MiB\n`);
  } else {
    const before = await cache.clear();
    if (json) await writeJson({ removedChunks: before.chunks, removedBytes: before.bytes });
    else await write(`removed ${before.chunks} chunks (${mib(before.bytes)} MiB)\n`);
  }
}
