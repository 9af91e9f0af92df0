// Bytes that fail their chunk's digest, or do not inflate, were most often damaged on the
// way (the probe flipped bytes in 206 bodies and got 63 reads of EIO), while the
// registry's copy is fine. So such a chunk's member is fetched once more, from another
// mirror when one is configured, before the read fails; a second bad copy is the error.
// Concurrent readers of one chunk share its refetch.
import type { ChunkRow, LayerRow } from '../toc/inode-db.js';
import type { BlobReader } from '../toc/blob.js';
import { chunkKey, fetchMembers, groupMembers, memberKey, type DecodedMember, type Member } from './members.js';
import type { RemoteBlob } from './whole-blob.js';
import { ON_DEMAND, type Scheduler } from './scheduler.js';

export interface RefetchHooks {
  /** Caches a verified chunk (a failure is the hook's to report). */
  put(digest: Buffer, data: Buffer): Promise<void>;
  /** Bytes fetched again: counted apart from first fetches, so they never exceed a layer's size. */
  refetched(layer: LayerRow, bytes: number): void;
}

export class Refetcher {
  private readonly running = new Map<string, Promise<DecodedMember>>();

  constructor(
    private readonly blobFor: (layer: LayerRow) => BlobReader,
    private readonly scheduler: Scheduler,
    private readonly hooks: RefetchHooks,
  ) {}

  /** The member holding `c`, fetched again (decoded and verified; good chunks cached). */
  chunk(layer: LayerRow, c: ChunkRow): Promise<DecodedMember> {
    const key = `${memberKey(layer.id, c.blob_offset)}/${chunkKey(layer.id, c)}`;
    let p = this.running.get(key);
    if (p === undefined) {
      const m = groupMembers([c])[0] as Member;
      const remote = this.blobFor(layer) as RemoteBlob;
      const other = (remote.elsewhere?.() ?? remote) as RemoteBlob;
      const blob = other.rangesOnly?.() ?? other;
      p = this.scheduler.submit(ON_DEMAND, m.end - m.start, () =>
        fetchMembers(layer, blob, [m], 0, {
          put: (d, data) => this.hooks.put(d, data),
          fetched: (_requests, bytes) => this.hooks.refetched(layer, bytes),
        }),
      ).then((r) => r[0] as DecodedMember);
      this.running.set(key, p);
      const clear = (): void => void this.running.delete(key);
      p.then(clear, clear);
    }
    return p;
  }
}
