// A registry that ignores Range answers every ranged GET with the whole blob. Read chunk
// by chunk, every read would transfer the whole layer (the probe: 67 reads in 106 s on a
// 100 MB layer). So a ranged read refused that way (SGZ_RANGE_UNSUPPORTED, its body left
// unread) marks the layer, and its misses wait for one pass instead: the blob streamed
// once, every member decoded, verified and cached as it goes by, and each member a reader
// waits for handed over as soon as it is decoded; a member the stream has passed already
// is read from the cache. The mark is kept for a while after the last refusal or pass
// (REMEMBER_MS): reads queued behind the first refusal are then answered from the pass or
// the cache without a request each; after that the next miss tries a range again, so a
// registry that recovered is read by range again (one that did not costs one refused
// request, then another pass).
import { RangeUnsupportedError } from '../errors.js';
import type { BlobReader } from '../toc/blob.js';
import type { InodeTable, LayerRow } from '../toc/inode-db.js';
import { chunkKey, fetchMembers, groupMembers, type ChunkFailure, type DecodedMember, type Member } from './members.js';
import { isLargeChunk } from './large-chunk.js';

/** What a registry blob offers beyond BlobReader (http/RegistryBlob); other sources offer none of it. */
export interface RemoteBlob extends BlobReader {
  /** The same blob, its ranged reads failing with SGZ_RANGE_UNSUPPORTED instead of bringing the whole blob. */
  rangesOnly?(): BlobReader;
  /** The same blob read from another host first, when there is one (a refetch after bad bytes). */
  elsewhere?(): BlobReader;
  /** The whole blob in one GET, piece by piece to the sink `start` makes (again on a retry); resolves with its bytes. */
  streamWhole?(start: () => (piece: Buffer) => void | Promise<void>): Promise<number>;
}

/**
 * Members larger than this, compressed, are left out of a pass: a member is held whole
 * until it is decoded, and chunks that large have their own streaming path (large-chunk.ts).
 */
const MAX_PASS_MEMBER_BYTES = 64 << 20;
/** How long a layer is read by passes after its last refused range or pass, milliseconds. */
const REMEMBER_MS = 30_000;

export interface WholeBlobHooks {
  /** Caches a verified chunk (a failure is the hook's to report). */
  put(digest: Buffer, data: Buffer): Promise<void>;
  /** A cached chunk, for a reader whose member the stream has passed. */
  get(digest: Buffer, size: number): Promise<Buffer | undefined>;
  /** A pass's transfer ended: bytes of the attempt that finished, bytes of attempts started over, wall time. */
  streamed(layer: LayerRow, bytes: number, restartedBytes: number, ms: number): void;
}

interface Pass {
  readonly members: readonly Member[];
  /** Index of the first member not decoded yet. */
  next: number;
  /** Failures of the members decoded, by member start (their good chunks are in the cache). */
  readonly failures: Map<number, ReadonlyMap<string, ChunkFailure>>;
  /** Readers waiting for a member, by its start. */
  readonly waiting: Map<number, Array<{ resolve: (m: DecodedMember) => void; reject: (err: unknown) => void }>>;
  readonly finished: Promise<void>;
}

const NOTHING: DecodedMember = Object.freeze({ ok: new Map(), failed: new Map() });

export class WholeBlobPasses {
  /** Layers whose registry refused a range: until when (epoch ms) misses wait for a pass, by layer id. */
  private readonly rangeless = new Map<number, number>();
  private readonly passes = new Map<number, Pass>();

  constructor(private readonly table: InodeTable, private readonly hooks: WholeBlobHooks) {}

  /** Whether a miss of this layer waits for a pass instead of asking for a range. */
  waitsForPass(layer: LayerRow): boolean {
    return this.passes.has(layer.id) || (this.rangeless.get(layer.id) ?? 0) > Date.now();
  }

  /** `blob`, its reads refused without a request while the layer is read by passes (a fetch queued before the mark). */
  guard(layer: LayerRow, blob: BlobReader): BlobReader {
    const refuse = (): Promise<never> => Promise.reject(new RangeUnsupportedError('the registry ignores Range for this blob: read by a whole-blob pass', { layer: layer.digest }));
    return {
      size: blob.size,
      readAt: (offset, length, progress) => (this.waitsForPass(layer) ? refuse() : blob.readAt(offset, length, progress)),
      readRanges: blob.readRanges === undefined ? undefined : (extents, gap, arrived, inOrder) =>
        this.waitsForPass(layer) ? refuse() : (blob.readRanges as NonNullable<BlobReader['readRanges']>).call(blob, extents, gap, arrived, inOrder),
    };
  }

  /** Whether `err` (a failed ranged fetch of `blob`) is one a pass can make good. */
  canRecover(err: unknown, blob: RemoteBlob): boolean {
    return (err as { code?: string } | undefined)?.code === 'SGZ_RANGE_UNSUPPORTED' && blob.streamWhole !== undefined;
  }

  /** Marks the layer as read by passes from now on (until the pass this starts is over). */
  markRangeless(layer: LayerRow): void {
    this.rangeless.set(layer.id, Date.now() + REMEMBER_MS);
  }

  /** The member decoded by the layer's pass (started if none runs); `again`: a second pass may be waited for. */
  async member(layer: LayerRow, blob: RemoteBlob, m: Member, again = true): Promise<DecodedMember> {
    // A fetch queued before the mark may ask for what a pass has cached since.
    const cached = await this.fromCache(layer, m);
    if (cached !== undefined) return cached;
    const pass = this.passes.get(layer.id) ?? this.start(layer, blob);
    const failures = pass.failures.get(m.start);
    if (failures === undefined) {
      return new Promise<DecodedMember>((resolve, reject) => {
        const list = pass.waiting.get(m.start) ?? [];
        list.push({ resolve, reject });
        pass.waiting.set(m.start, list);
      });
    }
    // Passed already: its chunks are in the cache (or failed).
    const ok = new Map<string, Buffer>();
    const failed = new Map<string, ChunkFailure>();
    let missing = false;
    for (const c of m.chunks) {
      const key = chunkKey(layer.id, c);
      const f = failures.get(key);
      if (f !== undefined) failed.set(key, f);
      else if (c.digest !== null) {
        const data = await this.hooks.get(c.digest, c.chunk_size);
        if (data !== undefined) ok.set(key, data);
        else missing = true;
      }
    }
    if (missing && again) {
      // Not kept (no cache, or evicted at once): the next pass brings it.
      await pass.finished.catch(() => undefined);
      this.markRangeless(layer);
      return this.member(layer, blob, m, false);
    }
    return { ok, failed };
  }

  /** The member's chunks when all are cached. */
  private async fromCache(layer: LayerRow, m: Member): Promise<DecodedMember | undefined> {
    const ok = new Map<string, Buffer>();
    for (const c of m.chunks) {
      const data = c.digest !== null ? await this.hooks.get(c.digest, c.chunk_size) : undefined;
      if (data === undefined) return undefined;
      ok.set(chunkKey(layer.id, c), data);
    }
    return { ok, failed: new Map() };
  }

  private start(layer: LayerRow, blob: RemoteBlob): Pass {
    // A chunk too large to hold is never decoded whole, here either (large-chunk.ts).
    const rows = this.table.layerChunksBefore(layer, Number.MAX_SAFE_INTEGER).filter((c) => c.zeros === 0 && c.blob_end > 0 && !isLargeChunk(c));
    const members = groupMembers(rows).filter((m) => m.end - m.start <= MAX_PASS_MEMBER_BYTES);
    let finish!: () => void;
    const pass: Pass = { members, next: 0, failures: new Map(), waiting: new Map(), finished: new Promise<void>((r) => (finish = r)) };
    this.passes.set(layer.id, pass);
    const t0 = performance.now();
    let restarted = 0;
    let current = 0;
    const stream = blob.streamWhole as NonNullable<RemoteBlob['streamWhole']>;
    stream.call(blob, () => {
      restarted += current;
      current = 0;
      const sink = this.sink(layer, blob, pass);
      return (piece) => {
        current += piece.length;
        return sink(piece);
      };
    }).then(
      (bytes) => {
        this.hooks.streamed(layer, bytes, restarted, performance.now() - t0);
        // Whatever is still awaited was not in the blob's members (or too large for a pass).
        for (const list of pass.waiting.values()) for (const w of list) w.resolve(NOTHING);
      },
      (err: unknown) => {
        this.hooks.streamed(layer, current, restarted, performance.now() - t0);
        for (const list of pass.waiting.values()) for (const w of list) w.reject(err);
      },
    ).finally(() => {
      pass.waiting.clear();
      this.passes.delete(layer.id);
      this.markRangeless(layer);
      finish();
    });
    return pass;
  }

  /**
   * One attempt's consumer: keeps the bytes from the first member not decoded yet, and
   * decodes each batch of members whose bytes are all in. A retried stream starts at byte
   * 0 again; the members decoded before are skipped.
   */
  private sink(layer: LayerRow, blob: RemoteBlob, pass: Pass): (piece: Buffer) => Promise<void> {
    const { members } = pass;
    let pieces: Buffer[] = [];
    let from = 0;
    let received = 0;
    return async (piece) => {
      pieces.push(piece);
      received += piece.length;
      const ready: Member[] = [];
      for (let m = members[pass.next]; m !== undefined && m.end <= received; m = members[++pass.next]) ready.push(m);
      const nextStart = members[pass.next]?.start ?? received;
      if (ready.length === 0) {
        if (nextStart >= received) {
          pieces = [];
          from = received;
        }
        return;
      }
      const window = pieces.length === 1 ? (pieces[0] as Buffer) : Buffer.concat(pieces);
      const base = from;
      from = Math.min(nextStart, received);
      pieces = from < received ? [window.subarray(from - base)] : [];
      const held: BlobReader = { size: blob.size, readAt: (off, len) => Promise.resolve(window.subarray(off - base, off - base + len)) };
      const decoded = await fetchMembers(layer, held, ready, 0, { put: (d, data) => this.hooks.put(d, data), fetched: () => undefined });
      decoded.forEach((d, i) => {
        const m = ready[i] as Member;
        pass.failures.set(m.start, d.failed);
        for (const w of pass.waiting.get(m.start) ?? []) w.resolve(d);
        pass.waiting.delete(m.start);
      });
    };
  }
}
