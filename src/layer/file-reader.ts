// Reads a file's bytes through its chunks (ESTARGZ.md §4.7, §5). A read maps to chunks;
// cached ones come from the chunk cache; the rest are grouped by member and handed to
// the image's fetch scheduler as one on-demand job, together with the small members that
// follow (a burst of small files in one directory is usually one region of the blob).
// Sequential reads start read-ahead of the file's next chunks at prefetch priority. Every
// chunk is verified against its chunkDigest before it is cached or returned, and a member
// being fetched is never fetched again at the same time (single-flight by member).
import type { BlobReader } from '../toc/blob.js';
import type { ChunkRow, InodeTable, LayerRow } from '../toc/inode-db.js';
import type { ViewNode } from '../toc/view.js';
import { DecodeError, DigestMismatchError, ReadTimeoutError, TocFormatError, type ErrorContext } from '../errors.js';
import {
  chunkKey, fetchMembers, groupMembers, groupMembersInOrder, IN_ORDER, memberKey, spanBytes, type ChunkFailure, type DecodedMember, type Grouping, type Member,
} from './members.js';
import { LinkEstimator } from './link-estimator.js';
import { NeighbourYield } from './neighbour-yield.js';
import { DecodeQueue } from './decode-queue.js';
import { isLargeChunk, LargeChunks, type LargeChunkCache } from './large-chunk.js';
import { ON_DEMAND, PREFETCH, type Scheduler, type Priority, type Scheduled } from './scheduler.js';
import { WholeBlobPasses, type RemoteBlob } from './whole-blob.js';
import { Refetcher } from './refetch.js';
import { inRead, withDeadline } from './read-deadline.js';
import { ReadAhead } from './read-ahead.js';
import { PlainRefetch } from './plain-refetch.js';

export type BlobFor = (layer: LayerRow) => BlobReader;

/** Where verified chunks are kept between reads (chunkcache/ChunkStore). */
export interface ChunkCache {
  get(digest: Buffer, size: number): Promise<Buffer | undefined>;
  put(digest: Buffer, data: Buffer): Promise<void>;
  /** Whether the chunk is stored (by this or another process), without reading it. */
  has(digest: Buffer): boolean;
  /** Bytes [from, to) of a cached chunk, without reading the rest of it; undefined on a miss. */
  readPart?(digest: Buffer, size: number, from: number, to: number): Promise<Buffer | undefined>;
  /** The path of a chunk's file once this process has verified it; undefined otherwise. */
  verifiedFile?(digest: Buffer): string | undefined;
  /** Part of a stored chunk, for chunks too large to hold (large-chunk.ts); without it they are streamed per read. */
  readRange?: LargeChunkCache['readRange'];
  createWriter?: LargeChunkCache['createWriter'];
}

/** Per-layer counters, for status, metrics and tests. */
export interface LayerCounters {
  /** Blob range requests made for chunks. */
  requests: number;
  bytesFetched: number;
  bytesServed: number;
  cacheHits: number;
  cacheMisses: number;
  /** Members fetched again after bad bytes, and their bytes (not in bytesFetched). */
  refetches: number;
  bytesRefetched: number;
}

export interface ReadTuning {
  /** Largest read-ahead window of a sequentially read file, bytes (0: none). */
  readonly readAheadBytes: number;
  /**
   * Compressed bytes of the members after a miss fetched with it, for the next small
   * files (0: none); 'auto': about one round trip's worth, learned from this image's fetches.
   */
  readonly neighbourBytes: number | 'auto';
  /** Members closer than this are read in one request, gap included. */
  readonly coalesceGapBytes: number;
  /** Longest an on-demand read waits, milliseconds, then SGZ_READ_TIMEOUT; absent or 0: no deadline. */
  readonly readTimeoutMs?: number;
}

export interface FetchJobInfo {
  readonly priority: Priority;
  readonly requests: number;
  readonly ms: number;
  /** The blob ranges [start, end) the bytes were for, when known: progress counts a range fetched again once. */
  readonly ranges?: ReadonlyArray<readonly [number, number]>;
}

export interface ReaderHooks {
  /** A cache write failed; the read goes on. */
  onCacheError?(err: unknown): void;
  /** The chunks a read of a file's contents touches, before they are loaded (the learned prefetch profile). */
  onChunksRead?(layer: LayerRow, path: string, rows: readonly ChunkRow[]): void;
  /**
   * A fetch for this layer failed or returned bad bytes. `background`: no reader is
   * waiting for it (read-ahead, prefetch, background fetch), so nobody else reports it.
   */
  onError?(layer: LayerRow, err: Error, background: boolean): void;
  /** Bytes fetched for this layer (progress, metrics): one fetch job's requests and wall time. */
  onFetched?(layer: LayerRow, bytes: number, job: FetchJobInfo): void;
}

function failureError(c: ChunkRow, f: ChunkFailure, ctx: ErrorContext): Error {
  const at = { ...ctx, offset: c.chunk_offset };
  return f.kind === 'digest'
    ? new DigestMismatchError(`chunk at file offset ${c.chunk_offset}`, f.expected, f.actual, at)
    : new DecodeError(`chunk at ${c.chunk_offset} (blob bytes ${c.blob_offset}–${c.blob_end}): ${f.message}`, at);
}

/** Nodes either side of a file searched for its member's other chunks and its neighbours. */
const NODE_WINDOW = 512;
/** Bounds of the neighbour window. */
const MIN_NEIGHBOURS = 64 << 10;
const MAX_NEIGHBOURS = 4 << 20;

export class FileReader {
  private readonly counters = new Map<number, LayerCounters>();
  private readonly inflight = new Map<string, Scheduled<DecodedMember>>();
  /** Chunks of plain layers no longer cached: the whole blob streamed again. */
  private readonly plain: PlainRefetch;
  private readonly ahead: ReadAhead;
  private readonly layers = new Map<number, LayerRow>();
  /** Round trip and bandwidth seen by this reader's fetches, for the neighbour window. */
  readonly link = new LinkEstimator(MIN_NEIGHBOURS, MAX_NEIGHBOURS);
  /** The share of neighbour bytes that reads used, which scales the neighbour window. */
  readonly neighbourYield = new NeighbourYield();
  /** Decodes of members fetched for no read in particular (neighbours, prefetch, background). */
  private readonly decodes = new DecodeQueue();
  /** Chunks too large to hold in memory: streamed, and read by range from the cache. */
  private readonly large: LargeChunks;
  /** Layers whose registry ignores Range: one whole-blob stream for all their misses. */
  private readonly whole: WholeBlobPasses;
  /** Second fetches of members that came with bad bytes. */
  private readonly refetch: Refetcher;

  constructor(
    private readonly table: InodeTable,
    private readonly blobFor: BlobFor,
    private readonly scheduler: Scheduler,
    private readonly tuning: ReadTuning,
    private readonly cache?: ChunkCache,
    private readonly hooks: ReaderHooks = {},
  ) {
    const ranged = cache?.readRange !== undefined && cache.createWriter !== undefined ? (cache as ChunkCache & LargeChunkCache) : undefined;
    this.large = new LargeChunks(blobFor, scheduler, ranged, (layer, bytes, ms, priority) => {
      const counters = this.stats(layer.id);
      counters.requests++;
      counters.bytesFetched += bytes;
      this.hooks.onFetched?.(layer, bytes, { priority, requests: 1, ms });
    });
    const put = async (digest: Buffer, data: Buffer): Promise<void> => {
      if (this.cache === undefined || this.cache.has(digest)) return;
      await this.cache.put(digest, data).catch((err: unknown) => this.hooks.onCacheError?.(err));
    };
    this.whole = new WholeBlobPasses(table, {
      put,
      get: async (digest, size) => this.cache?.get(digest, size),
      streamed: (layer, bytes, restarted, ms) => {
        const counters = this.stats(layer.id);
        counters.requests++;
        counters.bytesFetched += bytes;
        counters.bytesRefetched += restarted;
        this.hooks.onFetched?.(layer, bytes, { priority: ON_DEMAND, requests: 1, ms });
      },
    });
    this.ahead = new ReadAhead(tuning.readAheadBytes);
    this.plain = new PlainRefetch({
      blobFor,
      scheduler,
      put: async (digest, data) => this.cache?.put(digest, data).catch((err: unknown) => this.hooks.onCacheError?.(err)),
      get: async (digest, size) => this.cache?.get(digest, size),
      streamed: (layer, bytes, ms) => {
        const counters = this.stats(layer.id);
        counters.requests++;
        counters.bytesFetched += bytes;
        this.hooks.onFetched?.(layer, bytes, { priority: ON_DEMAND, requests: Math.ceil(bytes / (8 << 20)), ms, ranges: [[0, bytes]] });
      },
    });
    this.refetch = new Refetcher(blobFor, scheduler, {
      put,
      refetched: (layer, bytes) => {
        const counters = this.stats(layer.id);
        counters.refetches++;
        counters.bytesRefetched += bytes;
      },
    });
  }

  /** Counters of one layer (by meta.db layer id), zero until it is read. */
  stats(layerId: number): LayerCounters {
    let c = this.counters.get(layerId);
    if (c === undefined) {
      c = { requests: 0, bytesFetched: 0, bytesServed: 0, cacheHits: 0, cacheMisses: 0, refetches: 0, bytesRefetched: 0 };
      this.counters.set(layerId, c);
    }
    return c;
  }

  /** Bytes [off, off+len) of a regular file, clipped to its size. */
  read(node: ViewNode, path: string, off: number, len: number): Promise<Buffer> {
    const ms = this.tuning.readTimeoutMs ?? 0;
    const ctx = (): ErrorContext => ({ layer: this.layerOf(node).digest, path, inode: node.ino, offset: off });
    const reading = this.readNow(node, path, off, len).catch((err: unknown) => {
      throw inRead(err, ctx());
    });
    return withDeadline(reading, ms, () => new ReadTimeoutError(`the read of ${len} bytes at file offset ${off} got no answer within ${ms} ms (--read-timeout)`, ms, ctx()));
  }

  /**
   * The parts of a file's [off, end) whose bytes are in chunk files this process has
   * verified ('' for holes), for the FUSE addon to read on its own (fs/operations.ts).
   */
  verifiedParts(node: ViewNode, off: number, end: number): { offs: number[]; lens: number[]; paths: string[] } {
    const out = { offs: [] as number[], lens: [] as number[], paths: [] as string[] };
    const cache = this.cache;
    if (cache?.verifiedFile === undefined) return out;
    for (const c of this.table.chunks(node.dataId, off, Math.min(end, node.size))) {
      const p = c.zeros ? '' : c.digest !== null ? cache.verifiedFile(c.digest) : undefined;
      if (p === undefined) continue;
      out.offs.push(c.chunk_offset);
      out.lens.push(c.chunk_size);
      out.paths.push(p);
    }
    return out;
  }

  /**
   * The file is handed to the kernel whole (FUSE passthrough): its reads will not come
   * here, so it counts as read now, all of it (the learned profile sees it in its place).
   */
  noteHandedOver(node: ViewNode, path: string): void {
    if (this.hooks.onChunksRead === undefined) return;
    this.hooks.onChunksRead(this.layerOf(node), path, this.table.chunks(node.dataId, 0, node.size));
  }

  /** The read, without its deadline. */
  private async readNow(node: ViewNode, path: string, off: number, len: number): Promise<Buffer> {
    const end = Math.min(node.size, off + len);
    if (off >= end) return Buffer.alloc(0);
    const layer = this.layerOf(node);
    const ctx = { layer: layer.digest, path, inode: node.ino };
    const rows = this.table.chunks(node.dataId, off, end);
    this.hooks.onChunksRead?.(layer, path, rows);
    this.readAhead(layer, node, off, end);
    // Each chunk's slice of the read.
    const slices: Array<{ c: ChunkRow; from: number; to: number }> = [];
    let pos = off;
    for (const c of rows) {
      if (c.chunk_offset > pos || pos >= end) continue;
      const from = pos - c.chunk_offset;
      const to = Math.min(c.chunk_size, end - c.chunk_offset);
      if (to <= from) continue;
      slices.push({ c, from, to });
      pos = c.chunk_offset + to;
    }
    if (pos < end) throw new TocFormatError(`no chunk in the TOC covers file offset ${pos} (file size ${node.size})`, { ...ctx, offset: pos });
    // Cached chunks give only the slice asked for, all at once; holes and chunks too large
    // to hold are read by range; the rest are loaded whole (fetched), through load().
    const counters = this.stats(layer.id);
    const parts: Array<Buffer | Promise<Buffer>> = new Array<Buffer>(slices.length);
    const misses: number[] = [];
    await Promise.all(slices.map(async ({ c, from, to }, i) => {
      if (c.zeros) {
        parts[i] = Buffer.alloc(to - from);
      } else if (isLargeChunk(c)) {
        const p = this.readLarge(layer, c, from, to, ctx);
        p.catch(() => undefined); // observed below, with the others
        parts[i] = p;
      } else {
        const hit = await this.cachedSlice(c, from, to);
        if (c.digest !== null) this.neighbourYield.read(c.digest);
        if (hit !== undefined) {
          counters.cacheHits++;
          parts[i] = hit;
        } else {
          misses.push(i);
        }
      }
    }));
    misses.sort((a, b) => a - b);
    const loaded = misses.length > 0 ? this.load(layer, node.dataId, misses.map((i) => (slices[i] as { c: ChunkRow }).c), ON_DEMAND, ctx) : Promise.resolve([]);
    misses.forEach((i, k) => {
      const { from, to } = slices[i] as { from: number; to: number };
      parts[i] = loaded.then((datas) => (datas[k] as Buffer).subarray(from, to));
    });
    // Every piece settles before a failure is passed on: none is left running unobserved.
    const settled = await Promise.allSettled([loaded, ...parts]);
    const failed = settled.find((r) => r.status === 'rejected');
    if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
    const bufs = settled.slice(1).map((r) => (r as PromiseFulfilledResult<Buffer>).value);
    counters.bytesServed += end - off;
    return bufs.length === 1 ? (bufs[0] as Buffer) : Buffer.concat(bufs, end - off);
  }

  /** A cached chunk's slice, read alone (not the whole chunk); undefined when not cached. */
  private async cachedSlice(c: ChunkRow, from: number, to: number): Promise<Buffer | undefined> {
    const cache = this.cache;
    if (cache === undefined || c.digest === null || cache.readPart === undefined || !cache.has(c.digest)) return undefined;
    // A file that cannot be read or fails its check is a miss: load() fetches the chunk.
    return cache.readPart(c.digest, c.chunk_size, from, to).catch((err: unknown) => {
      this.hooks.onCacheError?.(err);
      return undefined;
    });
  }

  /** The file's bytes in [off, end), in reads of up to 1 MiB (sequential, so read-ahead runs). */
  async *stream(node: ViewNode, path: string, off = 0, end = node.size): AsyncGenerator<Buffer> {
    for (let pos = off; pos < end; ) {
      const piece = await this.read(node, path, pos, Math.min(1 << 20, end - pos));
      if (piece.length === 0) return;
      yield piece;
      pos += piece.length;
    }
  }

  /** Part of a chunk too large to hold in memory; a failure is reported as a read's. */
  private readLarge(layer: LayerRow, c: ChunkRow, from: number, to: number, ctx: ErrorContext): Promise<Buffer> {
    return this.large.read(layer, c, from, to, ctx).catch((err: unknown) => {
      this.hooks.onError?.(layer, err as Error, false);
      throw err;
    });
  }

  /**
   * Fetches the chunks into the cache at the given priority (read-ahead, prefetch and
   * background use this), in jobs of at most `batchBytes` of blob each; resolves when all
   * are cached or failed. Chunks already cached or in flight are skipped.
   */
  async warm(layer: LayerRow, rows: readonly ChunkRow[], priority: Priority, batchBytes = 4 << 20): Promise<{ fetched: number; failed: number }> {
    const large = this.warmLarge(layer, rows, priority);
    const missing = this.notHeld(layer, rows);
    const members = groupMembers(missing);
    const jobs: Member[][] = [];
    for (let i = 0; i < members.length; ) {
      let j = i + 1;
      const start = (members[i] as Member).start;
      while (j < members.length && (members[j] as Member).end - start <= batchBytes) j++;
      jobs.push(members.slice(i, j));
      i = j;
    }
    const [small, big] = await Promise.all([this.warmJobs(layer, missing, jobs, priority, this.tuning.coalesceGapBytes), large]);
    return { fetched: small.fetched + big.fetched, failed: small.failed + big.failed };
  }

  /** Streams the large chunks among `rows` into the cache, one after another. */
  private async warmLarge(layer: LayerRow, rows: readonly ChunkRow[], priority: Priority): Promise<{ fetched: number; failed: number }> {
    let fetched = 0;
    let failed = 0;
    for (const c of rows) {
      if (!isLargeChunk(c) || c.zeros !== 0 || c.digest === null || this.held(layer, c)) continue;
      try {
        if (await this.large.warm(layer, c, priority)) fetched++;
      } catch (err) {
        failed++;
        this.hooks.onError?.(layer, err as Error, true);
      }
    }
    return { fetched, failed };
  }

  /**
   * Like warm, for chunks wanted in the order given (a learned profile, cut into requests
   * by learned-plan.ts): each member is a range of its own in one multi-range request,
   * asked for in that order, so that a registry that keeps the order (the distribution
   * registry does) sends what is needed first first, at the link's whole rate. `arrived`
   * is called once the request's bytes are in (or it failed), before they are all decoded.
   */
  async warmInOrder(layer: LayerRow, rows: readonly ChunkRow[], priority: Priority, arrived?: () => void): Promise<{ fetched: number; failed: number }> {
    const large = this.warmLarge(layer, rows, priority);
    const missing = this.notHeld(layer, rows);
    const jobs = missing.length > 0 ? [groupMembersInOrder(missing)] : [];
    const [small, big] = await Promise.all([this.warmJobs(layer, missing, jobs, priority, IN_ORDER, arrived), large]);
    return { fetched: small.fetched + big.fetched, failed: small.failed + big.failed };
  }

  /** Whether a chunk is cached or being fetched already. */
  held(layer: LayerRow, c: ChunkRow): boolean {
    return this.inflight.has(memberKey(layer.id, c.blob_offset)) || this.large.inFlight(layer, c) || (c.digest !== null && this.cache?.has(c.digest) === true);
  }

  /** The rows worth fetching: not zeros, not cached, not in flight. */
  private notHeld(layer: LayerRow, rows: readonly ChunkRow[]): ChunkRow[] {
    return rows.filter((c) => c.zeros === 0 && c.blob_end > 0 && c.digest !== null && !isLargeChunk(c) && !this.held(layer, c));
  }

  private async warmJobs(
    layer: LayerRow, missing: readonly ChunkRow[], jobs: readonly Member[][], priority: Priority, grouping: Grouping, arrived?: () => void,
  ): Promise<{ fetched: number; failed: number }> {
    let toArrive = jobs.length + 1;
    const oneArrived = (): void => {
      if (--toArrive === 0) arrived?.();
    };
    const fetches = jobs.map((members) => Promise.all(this.fetch(layer, members, priority, grouping, oneArrived)));
    oneArrived();
    let failed = 0;
    for (const r of await Promise.all(fetches)) {
      for (const m of r) {
        failed += m.failed.size;
        for (const [key, f] of m.failed) {
          const c = missing.find((x) => chunkKey(layer.id, x) === key);
          if (c !== undefined) this.hooks.onError?.(layer, failureError(c, f, { layer: layer.digest }), true);
        }
      }
    }
    return { fetched: missing.length - failed, failed };
  }

  /** Layer rows never change once indexed: one query per layer, not one per read. */
  private layerOf(node: ViewNode): LayerRow {
    let layer = this.layers.get(node.layerId);
    if (layer === undefined) {
      layer = this.table.layer(node.layerId);
      if (layer === undefined) throw new Error(`meta.db: layer ${node.layerId} is missing`);
      this.layers.set(node.layerId, layer);
    }
    return layer;
  }

  /** The chunks' bytes, in order: cached, joined to a fetch in flight, or fetched now. */
  private async load(layer: LayerRow, dataId: number, rows: readonly ChunkRow[], priority: Priority, ctx: ErrorContext): Promise<Buffer[]> {
    const counters = this.stats(layer.id);
    const out: Array<Buffer | Promise<Buffer>> = [];
    const missing: ChunkRow[] = [];
    for (const c of rows) {
      if (c.zeros) {
        out.push(Buffer.alloc(c.chunk_size));
        continue;
      }
      if (c.digest === null && layer.verified === 1) {
        throw new TocFormatError(`chunk at ${c.chunk_offset} has no chunkDigest to verify it against`, { ...ctx, offset: c.chunk_offset });
      }
      const hit = c.digest !== null && this.cache !== undefined ? await this.cache.get(c.digest, c.chunk_size) : undefined;
      if (c.digest !== null && priority === ON_DEMAND) this.neighbourYield.read(c.digest);
      if (hit !== undefined) {
        counters.cacheHits++;
        out.push(hit);
        continue;
      }
      if (c.blob_end === 0 && c.digest !== null) {
        if (this.cache !== undefined) counters.cacheMisses++;
        out.push(this.plain.chunk(layer, c.digest, c.chunk_size, { ...ctx, offset: c.chunk_offset }));
        continue;
      }
      const pending = this.joinable(layer, c, priority);
      if (pending === undefined && c.digest !== null && this.cache?.has(c.digest) === true) {
        // Its fetch ended while the cache was looked at: the chunk is there now, not in flight.
        const now = await this.cache.get(c.digest, c.chunk_size);
        if (now !== undefined) {
          counters.cacheHits++;
          out.push(now);
          continue;
        }
      }
      if (this.cache !== undefined && c.digest !== null) counters.cacheMisses++;
      if (pending !== undefined) {
        if (priority === ON_DEMAND) pending.promote();
        // That fetch may have been for other chunks of the member only; then fetch this one.
        out.push(pending.done.then((m) => this.pick(layer, m, c, ctx) ?? this.load(layer, dataId, [c], priority, ctx).then((b) => b[0] as Buffer)));
        continue;
      }
      out.push(Buffer.alloc(0)); // placeholder, filled below
      missing.push(c);
    }
    // The cache lookups above yield: a chunk found missing before a later lookup may be in
    // flight by now, fetched by a read that ran meanwhile. Join that fetch, never ask again.
    for (let i = 0, j = 0; i < rows.length && j < missing.length; i++) {
      const c = missing[j] as ChunkRow;
      if (rows[i] !== c) continue;
      const pending = this.joinable(layer, c, priority);
      if (pending === undefined) {
        j++;
        continue;
      }
      if (priority === ON_DEMAND) pending.promote();
      out[i] = pending.done.then((m) => this.pick(layer, m, c, ctx) ?? this.load(layer, dataId, [c], priority, ctx).then((b) => b[0] as Buffer));
      missing.splice(j, 1);
    }
    if (missing.length > 0) {
      const { members, neighbours } = this.plan(layer, dataId, groupMembers(missing), priority);
      const results = this.fetch(layer, members, priority);
      // Failures there are reported by fetch(); a read that joins them gets the error.
      if (neighbours.length > 0) this.fetch(layer, neighbours, PREFETCH);
      for (let i = 0, j = 0; i < rows.length; i++) {
        const c = missing[j];
        if (c === undefined || rows[i] !== c) continue;
        const mi = members.findIndex((m) => m.start === c.blob_offset);
        out[i] = (results[mi] as Promise<DecodedMember>).then((m) => this.pick(layer, m, c, ctx) ?? this.missingFromMember(layer, c, ctx));
        j++;
      }
    }
    return Promise.all(out);
  }

  /** The fetch of this chunk's member a load at `priority` may wait for: not background work still queued, for a read. */
  private joinable(layer: LayerRow, c: ChunkRow, priority: Priority): Scheduled<DecodedMember> | undefined {
    const pending = this.inflight.get(memberKey(layer.id, c.blob_offset));
    return pending !== undefined && priority === ON_DEMAND && pending.waitingBackground() ? undefined : pending;
  }

  /**
   * The members to fetch for these misses, each whole (all chunks in it, so files sharing
   * it through innerOffset are cached too); and, for on-demand reads, the members that
   * follow within the neighbour window, skipping what is cached or already being fetched.
   * The neighbours go in a request of their own beside the read's, so the read waits for
   * its own bytes only and the next small files are usually there when they are asked for.
   */
  private plan(layer: LayerRow, dataId: number, members: Member[], priority: Priority): { members: Member[]; neighbours: Member[] } {
    const first = members[0] as Member;
    const last = members[members.length - 1] as Member;
    const n = this.tuning.neighbourBytes;
    const extra = priority !== ON_DEMAND ? 0 : n === 'auto' ? this.neighbourYield.scale(this.link.windowBytes()) : n;
    const near = this.table.chunksNear(layer, dataId - NODE_WINDOW, dataId + NODE_WINDOW, first.start, last.end + extra);
    const wanted = new Set(members.map((m) => m.start));
    const limit = last.end + extra;
    const own: ChunkRow[] = [];
    const next: ChunkRow[] = [];
    for (const c of near) {
      // A chunk too large to hold is never decoded with its member's others (large-chunk.ts).
      if (isLargeChunk(c)) continue;
      if (wanted.has(c.blob_offset)) own.push(c);
      else if (c.blob_end <= limit && c.blob_offset >= last.end && c.digest !== null && !this.inflight.has(memberKey(layer.id, c.blob_offset)) && this.cache?.has(c.digest) === false) next.push(c);
    }
    for (const c of next) this.neighbourYield.fetchedAsNeighbour(c.digest as Buffer, c.chunk_size);
    const whole = groupMembers(own);
    for (const m of members) if (!whole.some((o) => o.start === m.start)) whole.push(m);
    return { members: whole.sort((a, b) => a.start - b.start), neighbours: groupMembers(next) };
  }

  /**
   * One scheduled job for these members; each is registered as in flight until it is
   * decoded. Returns each member's result on its own: a member is usable as soon as its
   * bytes are in and checked, while the rest of a large read is still arriving.
   */
  /** `arrived` hears once that the members' bytes are in, or that their fetch failed. */
  private fetch(
    layer: LayerRow, members: readonly Member[], priority: Priority, gap: Grouping = this.tuning.coalesceGapBytes, arrived?: () => void,
  ): Array<Promise<DecodedMember>> {
    const counters = this.stats(layer.id);
    const each = members.map(() => {
      let settle!: { resolve: (m: DecodedMember | Promise<DecodedMember>) => void; reject: (err: unknown) => void };
      const done = new Promise<DecodedMember>((resolve, reject) => void (settle = { resolve, reject }));
      return { done, ...settle };
    });
    if (this.whole.waitsForPass(layer)) {
      // The registry ignores Range for this layer: its one whole-blob stream brings these.
      const remote = this.blobFor(layer) as RemoteBlob;
      members.forEach((m, i) => each[i]?.resolve(this.whole.member(layer, remote, m)));
      arrived?.();
      // A reader that joins hears of a failed pass; a neighbour fetch has none, and an
      // unheard rejection would end the process (the soak found it).
      for (const e of each) e.done.catch(() => undefined);
      return each.map((e) => e.done);
    }
    const bytes = gap === IN_ORDER ? members.reduce((n, m) => n + m.end - m.start, 0) : spanBytes(members, gap);
    // Run as on-demand when a read raised the job while it waited: its bytes count as a
    // read's, and its members are decoded at once, not deferred behind other work.
    const job = this.scheduler.schedule(priority, bytes, (runsAs) =>
      fetchMembers(layer, this.rangesOnly(layer), members, gap, {
        put: async (digest, data) => {
          if (this.cache === undefined || this.cache.has(digest)) return;
          await this.cache.put(digest, data).catch((err: unknown) => this.hooks.onCacheError?.(err));
        },
        fetched: (requests, bytes, ms) => {
          counters.requests += requests;
          counters.bytesFetched += bytes;
          if (requests === 1) this.link.observe(bytes, ms);
          this.hooks.onFetched?.(layer, bytes, { priority: runsAs, requests, ms, ranges: members.map((m) => [m.start, m.end] as const) });
          arrived?.();
          arrived = undefined;
        },
      }, (i, m) => each[i]?.resolve(m), runsAs === ON_DEMAND ? undefined : this.decodes.defer),
    );
    job.done.then(
      (rs) => rs.forEach((m, i) => each[i]?.resolve(m)),
      (err: unknown) => {
        arrived?.();
        arrived = undefined;
        const remote = this.blobFor(layer) as RemoteBlob;
        if (this.whole.canRecover(err, remote)) {
          this.whole.markRangeless(layer);
          members.forEach((m, i) => each[i]?.resolve(this.whole.member(layer, remote, m)));
          return;
        }
        for (const e of each) e.reject(err);
        this.hooks.onError?.(layer, err as Error, priority !== ON_DEMAND);
      },
    );
    members.forEach((m, i) => {
      const key = memberKey(layer.id, m.start);
      const done = (each[i] as { done: Promise<DecodedMember> }).done;
      this.inflight.set(key, { done, promote: job.promote, waitingBackground: job.waitingBackground });
      const clear = (): void => {
        if (this.inflight.get(key)?.done === done) this.inflight.delete(key);
      };
      done.then(clear, clear);
    });
    return each.map((e) => e.done);
  }

  /**
   * The chunk from a decoded member; undefined when that fetch did not include it. Bad
   * bytes are fetched once more (refetch.ts); bad again (`last`), they throw.
   */
  private pick(layer: LayerRow, m: DecodedMember, c: ChunkRow, ctx: ErrorContext, last = false): Buffer | Promise<Buffer> | undefined {
    const key = chunkKey(layer.id, c);
    const data = m.ok.get(key);
    if (data !== undefined) return data;
    const f = m.failed.get(key);
    if (f === undefined) return undefined;
    const err = failureError(c, f, ctx);
    if (!last) {
      // Reported as nobody's: the reader waits for the second copy, not for this error.
      this.hooks.onError?.(layer, err, true);
      return this.refetch.chunk(layer, c).then((again) => this.pick(layer, again, c, ctx, true) ?? this.missingFromMember(layer, c, ctx));
    }
    this.hooks.onError?.(layer, err, false);
    throw err;
  }

  /** The layer's blob, its ranged reads refused where the registry ignores Range (a whole-blob pass then reads it). */
  private rangesOnly(layer: LayerRow): BlobReader {
    const blob = this.blobFor(layer) as RemoteBlob;
    return this.whole.guard(layer, blob.rangesOnly?.() ?? blob);
  }

  private missingFromMember(layer: LayerRow, c: ChunkRow, ctx: ErrorContext): never {
    throw new DecodeError(`chunk at ${c.chunk_offset} (blob bytes ${c.blob_offset}–${c.blob_end}) was not decoded from its member`, { ...ctx, offset: c.chunk_offset, layer: layer.digest });
  }

  /**
   * Read-ahead (read-ahead.ts): the chunks past a sequential read, fetched at prefetch
   * priority without waiting for them.
   */
  private readAhead(layer: LayerRow, node: ViewNode, off: number, end: number): void {
    const ahead = this.ahead.next(node.dataId, node.size, off, end);
    if (ahead === undefined) return;
    // A chunk that starts before `end` is the read's own, loaded by the read itself. Read
    // ahead of it, it became a prefetch job the read then joined: with the kernel's 128 KiB
    // reads, a one-chunk file was fetched at prefetch priority, its decode deferred.
    const rows = this.table.chunks(node.dataId, ahead.from, ahead.to).filter((c) => c.chunk_offset >= end);
    // A failed request is reported by fetch(); a reader that joins it gets the error.
    void this.warm(layer, rows, PREFETCH).catch(() => undefined);
  }
}
