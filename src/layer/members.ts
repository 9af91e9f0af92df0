// Members are the unit of fetching: one gzip member or zstd frame at [start, end) of the
// blob, holding one chunk, or several small files' chunks at different innerOffsets
// (ESTARGZ.md §4.7). A fetch reads a set of members in as few requests as the source
// allows, decompresses each once, verifies every chunk in it against its chunkDigest
// and caches the good ones, so neighbours decoded on the way are never fetched again.
import { createHash } from 'node:crypto';
import type { BlobReader } from '../toc/blob.js';
import type { ChunkRow, LayerRow } from '../toc/inode-db.js';
import { decompressPrefix, GunzipAsItComes, STREAM_MIN_BYTES, type Compression } from '../toc/codec.js';

export interface Member {
  readonly start: number;
  readonly end: number;
  /** The chunks decoded from this member, by inner offset. */
  readonly chunks: readonly ChunkRow[];
}

/** Why a chunk of a fetched member was not usable; the reader turns it into an error naming the file. */
export type ChunkFailure =
  | { readonly kind: 'digest'; readonly expected: string; readonly actual: string }
  | { readonly kind: 'decode'; readonly message: string };

export interface DecodedMember {
  /** Verified chunk bytes by chunkKey. */
  readonly ok: Map<string, Buffer>;
  readonly failed: Map<string, ChunkFailure>;
}

export interface FetchSink {
  /** Stores a verified chunk; a failure is reported, never fatal to the read. */
  put(digest: Buffer, data: Buffer): Promise<void>;
  /** Counts blob requests: `bytes` in all, the last arriving `ms` after they were sent. */
  fetched(requests: number, bytes: number, ms: number): void;
}

/** Identity of a chunk within a layer: its digest, or its place when the TOC gives none. */
export function chunkKey(layerId: number, c: ChunkRow): string {
  return c.digest !== null ? c.digest.toString('hex') : `${layerId}:${c.blob_offset}:${c.inner_offset}:${c.chunk_size}`;
}

export const memberKey = (layerId: number, blobOffset: number): string => `${layerId}@${blobOffset}`;

/** Chunks grouped by member, members in blob order. */
/** Members asked for each as its own range, in the order given (see fetchMembers). */
export const IN_ORDER = 'in-order';
/** How a fetch groups members into ranges: merged when closer than this many bytes, or IN_ORDER. */
export type Grouping = number | typeof IN_ORDER;

export function groupMembers(chunks: Iterable<ChunkRow>): Member[] {
  return groupMembersInOrder(chunks).sort((a, b) => a.start - b.start);
}

/** The members holding `chunks`, in the order their first chunk comes. */
export function groupMembersInOrder(chunks: Iterable<ChunkRow>): Member[] {
  const by = new Map<number, { start: number; end: number; chunks: ChunkRow[] }>();
  for (const c of chunks) {
    let m = by.get(c.blob_offset);
    if (m === undefined) {
      m = { start: c.blob_offset, end: c.blob_end, chunks: [] };
      by.set(c.blob_offset, m);
    }
    if (!m.chunks.some((x) => x.inner_offset === c.inner_offset && x.chunk_size === c.chunk_size)) m.chunks.push(c);
  }
  for (const m of by.values()) m.chunks.sort((a, b) => a.inner_offset - b.inner_offset);
  return [...by.values()];
}

/** Compressed bytes of a set of members (the size of their reads, gaps included up to `gap`). */
export function spanBytes(members: readonly Member[], gap: number): number {
  let total = 0;
  let start = -1;
  let end = -1;
  for (const m of members) {
    if (start >= 0 && m.start - end <= gap) {
      end = Math.max(end, m.end);
      continue;
    }
    if (start >= 0) total += end - start;
    start = m.start;
    end = m.end;
  }
  return start >= 0 ? total + end - start : 0;
}

/**
 * Reads the members' bytes: one request when they are close, else a multi-range request
 * or parallel ones. `arrived(i, bytes)` is told of each member whose bytes are in, as soon
 * as they are (a single range streams), and at the latest when its request completes.
 */
async function readMembers(
  blob: BlobReader, members: readonly Member[], gap: Grouping, sink: FetchSink, arrived: (i: number, comp: Buffer) => void, arriving?: (i: number, got: Buffer) => void,
): Promise<void> {
  const inOrder = gap === IN_ORDER;
  const spans: Array<{ start: number; end: number; first: number; last: number }> = [];
  members.forEach((m, i) => {
    const s = spans[spans.length - 1];
    // In order, each member is a part of its own: a part is handed on only when all of it is in.
    if (s !== undefined && !inOrder && m.start - s.end <= (gap as number)) {
      s.end = Math.max(s.end, m.end);
      s.last = i;
    } else {
      spans.push({ start: m.start, end: m.end, first: i, last: i });
    }
  });
  const bytes = spans.reduce((n, s) => n + s.end - s.start, 0);
  const t0 = performance.now();
  let spanData: Buffer[];
  if (spans.length > 1 && blob.readRanges !== undefined) {
    // Each span's members are handed on as soon as its part of the answer is in.
    spanData = await blob.readRanges(spans.map((s) => ({ offset: s.start, length: s.end - s.start })), 0, (si, data) => {
      const s = spans[si];
      if (s === undefined) return;
      for (let i = s.first; i <= s.last; i++) {
        const m = members[i] as Member;
        arrived(i, data.subarray(m.start - s.start, m.end - s.start));
      }
    }, inOrder);
    sink.fetched(1, bytes, performance.now() - t0);
  } else {
    spanData = await Promise.all(spans.map((s) => {
      // Members come in blob order, so each is handed on once the prefix covers its end.
      let next = s.first;
      return blob.readAt(s.start, s.end - s.start, (prefix) => {
        for (let m = members[next]; next <= s.last && m !== undefined && m.end - s.start <= prefix.length; m = members[++next]) {
          arrived(next, prefix.subarray(m.start - s.start, m.end - s.start));
        }
        const m = members[next];
        if (arriving !== undefined && next <= s.last && m !== undefined && prefix.length > m.start - s.start) {
          arriving(next, prefix.subarray(m.start - s.start));
        }
      });
    }));
    sink.fetched(spans.length, bytes, performance.now() - t0);
  }
  spans.forEach((s, si) => {
    const data = spanData[si] as Buffer;
    for (let i = s.first; i <= s.last; i++) {
      const m = members[i] as Member;
      arrived(i, data.subarray(m.start - s.start, m.end - s.start));
    }
  });
}

/**
 * Fetches, decodes and verifies `members`, caching every good chunk: sorted by start and
 * read as one range where closer than `gap` bytes, or, with IN_ORDER, each its own range
 * in the order given (one multi-range request).
 * Returns one result per member, in order; `decoded` hears of each as soon as it is done,
 * while later members may still be on the wire. Only a failed request rejects; bad bytes
 * are reported per chunk. With `defer`, each member is decoded when `defer` runs its task
 * (work nobody waits for: see DecodeQueue), else as soon as its bytes are in.
 */
export async function fetchMembers(
  layer: LayerRow, blob: BlobReader, members: readonly Member[], gap: Grouping, sink: FetchSink,
  decoded?: (i: number, m: DecodedMember) => void, defer?: (task: () => void) => void,
): Promise<DecodedMember[]> {
  const out: Array<Promise<DecodedMember> | undefined> = new Array<Promise<DecodedMember> | undefined>(members.length);
  // Large gzip members start inflating while their bytes arrive (GunzipAsItComes); `fed`
  // is how many of a member's bytes its stream has had.
  const inflating = new Map<number, { g: GunzipAsItComes; fed: number }>();
  const feed = (i: number, got: Buffer): void => {
    const m = members[i] as Member;
    if (out[i] !== undefined || layer.compression !== 'gzip' || m.end - m.start <= STREAM_MIN_BYTES) return;
    let f = inflating.get(i);
    if (f === undefined) {
      f = { g: new GunzipAsItComes(memberNeed(m)), fed: 0 };
      inflating.set(i, f);
    }
    // A retried request's prefix starts over with the same bytes: only what is new goes in.
    const upTo = Math.min(got.length, m.end - m.start);
    if (upTo > f.fed) {
      f.g.write(got.subarray(f.fed, upTo));
      f.fed = upTo;
    }
  };
  // A member is decoded once, from the first complete copy of its bytes (a retried request
  // brings the same bytes again).
  const arrived = (i: number, comp: Buffer): void => {
    if (out[i] !== undefined) return;
    let inflated: Promise<Buffer> | undefined;
    const f = inflating.get(i);
    if (f !== undefined) {
      f.g.write(comp.subarray(f.fed));
      inflating.delete(i);
      inflated = f.g.end();
    }
    const decode = (): Promise<DecodedMember> =>
      decodeMember(layer, members[i] as Member, comp, sink, inflated).then((d) => {
        decoded?.(i, d);
        return d;
      });
    out[i] = defer === undefined ? decode() : new Promise((resolve) => defer(() => resolve(decode())));
  };
  try {
    await readMembers(blob, members, gap, sink, arrived, feed);
  } finally {
    for (const f of inflating.values()) f.g.abandon();
    // Decodes started from a streamed prefix are finished (and cached) even when the rest failed.
    await Promise.allSettled(out.filter((p) => p !== undefined));
  }
  return Promise.all(out as Array<Promise<DecodedMember>>);
}

/** How much of a member's inflated bytes its chunks need. */
const memberNeed = (m: Member): number => Math.max(...m.chunks.map((c) => c.inner_offset + c.chunk_size));

/** Decodes and verifies a member's chunks; `inflated`, when given, is its bytes inflated already as they came. */
async function decodeMember(layer: LayerRow, m: Member, comp: Buffer, sink: FetchSink, inflated?: Promise<Buffer>): Promise<DecodedMember> {
  const ok = new Map<string, Buffer>();
  const failed = new Map<string, ChunkFailure>();
  const need = memberNeed(m);
  let plain: Buffer;
  try {
    plain = await (inflated ?? decompressPrefix(layer.compression as Compression, comp, need));
  } catch (err) {
    const message = `the member at blob bytes ${m.start}–${m.end} does not decompress: ${(err as Error).message}`;
    for (const c of m.chunks) failed.set(chunkKey(layer.id, c), { kind: 'decode', message });
    return { ok, failed };
  }
  for (const c of m.chunks) {
    const key = chunkKey(layer.id, c);
    if (plain.length < c.inner_offset + c.chunk_size) {
      failed.set(key, { kind: 'decode', message: `blob bytes ${m.start}–${m.end} decompress to ${plain.length} bytes, need ${c.inner_offset + c.chunk_size}` });
      continue;
    }
    // The whole decoded buffer when it is exactly this chunk; else a copy, so the cache
    // does not keep a large member alive through a small view of it.
    const data = c.inner_offset === 0 && plain.length === c.chunk_size ? plain : Buffer.from(plain.subarray(c.inner_offset, c.inner_offset + c.chunk_size));
    if (c.digest !== null) {
      const actual = createHash('sha256').update(data).digest();
      if (!actual.equals(c.digest)) {
        failed.set(key, { kind: 'digest', expected: `sha256:${c.digest.toString('hex')}`, actual: `sha256:${actual.toString('hex')}` });
        continue;
      }
      // Only verified bytes are cached.
      await sink.put(c.digest, data);
    }
    ok.set(key, data);
  }
  return { ok, failed };
}
