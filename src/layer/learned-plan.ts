// How a learned profile's chunks go on the wire: in the profile's order, a member each
// range, cut into requests. One function, so that the request a mount sends before its CLI
// has loaded (layer/early-fetch.ts) is the very one its learned prefetch asks for later
// (layer/learned.ts), and the registry client takes that early answer as its own.
import type Database from 'better-sqlite3';
import { indexedLayerDigests, type ChunkRow } from '../toc/inode-db.js';
import { rangesHeader } from '../http/api-paths.js';
import { CACHED_SQL } from '../chunkcache/cache-index.js';
import { groupMembersInOrder } from './members.js';
import { entryOf, LIST_SQL, REF_SQL, type ProfileEntry, type ProfileRow } from './profile.js';

/** A request's largest answer. */
export const MAX_REQUEST = 16 << 20;
/** A request's most ranges: its Range header names each member (a few KB). */
export const MAX_RANGES = 200;

/**
 * The chunks worth fetching (not zeros, with a place in the blob and a digest to check,
 * not `held`), in requests of at most `maxBytes` of blob and `maxRanges` members, each
 * member in the request of its first chunk, in the order given.
 */
export function orderedRequests(
  rows: readonly ChunkRow[], held: (c: ChunkRow) => boolean, maxBytes = MAX_REQUEST, maxRanges = MAX_RANGES,
): ChunkRow[][] {
  const out: ChunkRow[][] = [];
  const requestOf = new Map<number, ChunkRow[]>();
  let bytes = Infinity;
  let ranges = Infinity;
  for (const c of rows) {
    if (c.zeros !== 0 || c.blob_end <= 0 || c.digest === null || held(c)) continue;
    const joined = requestOf.get(c.blob_offset);
    if (joined !== undefined) {
      joined.push(c);
      continue;
    }
    if (bytes + c.blob_end - c.blob_offset > maxBytes || ranges >= maxRanges) {
      out.push([]);
      bytes = 0;
      ranges = 0;
    }
    const request = out[out.length - 1] as ChunkRow[];
    request.push(c);
    requestOf.set(c.blob_offset, request);
    bytes += c.blob_end - c.blob_offset;
    ranges++;
  }
  return out;
}

/** The Range header the registry client sends for one of those requests (FileReader.warmInOrder). */
export function requestRange(request: readonly ChunkRow[]): string {
  return rangesHeader(groupMembersInOrder(request).map((m) => ({ offset: m.start, length: m.end - m.start })));
}

/**
 * The first request a mount of `image` will send for its learned prefetch, read from
 * meta.db (the profile, and the chunk cache's index for what is cached): its layer (the
 * profile's first) and Range header. Undefined when there is none, when that layer is
 * not indexed (the mount indexes it first), or when its rows include whole files (their
 * chunks need the TOC index: the mount asks itself).
 */
export function firstLearnedRequest(db: Database.Database, image: string): { layer: string; range: string } | undefined {
  const entries = (db.prepare(LIST_SQL).all(image) as ProfileRow[]).map(entryOf);
  const layer = entries[0]?.layer;
  if (layer === undefined || !indexedLayerDigests(db, [layer]).has(layer)) return undefined;
  const chunks: ChunkRow[] = [];
  for (const e of entries as ProfileEntry[]) {
    if (e.layer !== layer) continue;
    if (e.chunk === undefined) return undefined;
    chunks.push(e.chunk);
  }
  const cached = db.prepare(CACHED_SQL).pluck();
  const [request] = orderedRequests(chunks, (c) => c.digest !== null && cached.get(c.digest) !== undefined);
  return request === undefined ? undefined : { layer, range: requestRange(request) };
}

/** The image `ref` named when it was last used here (meta.db), or undefined. */
export function lastImageOf(db: Database.Database, ref: string): string | undefined {
  return db.prepare(REF_SQL).pluck().get(ref) as string | undefined;
}
