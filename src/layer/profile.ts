// Learned prefetch: the order in which the chunks of an image's files were first read,
// kept in meta.db per image (manifest digest), so the next mount of that image prefetches
// them first even when the image has no landmark; and exported, as files, for the
// converter's prioritized list.
//
//   access_chunks  (image, seq) → layer digest, the file's path in that layer, and the
//                  chunk read (its file offset and where it is in the layer's blob). A
//                  chunk appears once per image (first access wins); at most MAX_ENTRIES
//                  rows per image. Rows are added in batches, never one write per read.
//   image_refs     reference as given → the image (manifest digest) it named last: the
//                  next mount of that reference sends its learned prefetch's first request
//                  with the manifest's, not a round trip after (layer/early-fetch.ts).
//
// A chunk, not a file: python maps its 6.8 MB binary at start and its libraries after,
// and a file-level order brought the whole binary before the loader it asks for next. And
// the blob extents: a layer's blob never changes under its digest, so the next mount (and
// its first request, sent before the CLI loads: layer/early-fetch.ts) plans its fetch
// from this table alone, without resolving a path. Rows from the file-level table of
// earlier versions (access_profile) are moved here as whole-file rows (no extents).
import type Database from 'better-sqlite3';
import type { ChunkRow } from '../toc/inode-db.js';

export interface ProfileEntry {
  readonly layer: string;
  readonly path: string;
  /** The chunk read; undefined: the whole file (a row from a file-level profile). */
  readonly chunk?: ChunkRow | undefined;
}

export interface ProfileFile {
  readonly layer: string;
  readonly path: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS access_chunks (
  image TEXT NOT NULL,
  seq INTEGER NOT NULL,
  layer TEXT NOT NULL,
  path TEXT NOT NULL,
  chunk_offset INTEGER NOT NULL,
  chunk_size INTEGER,
  blob_offset INTEGER,
  blob_end INTEGER,
  inner_offset INTEGER,
  digest BLOB,
  zeros INTEGER,
  PRIMARY KEY (image, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS access_chunks_chunk ON access_chunks(image, layer, path, chunk_offset);
CREATE TABLE IF NOT EXISTS image_refs (ref TEXT PRIMARY KEY, image TEXT NOT NULL) WITHOUT ROWID;
`;

/** The image a reference named last (exported for early-fetch, which has its own connection). */
export const REF_SQL = 'SELECT image FROM image_refs WHERE ref = ?';

/** chunk_offset of a whole-file row. */
const WHOLE_FILE = -1;

/** A profile longer than this stops growing: start-up sets are hundreds of chunks, not tens of thousands. */
export const MAX_ENTRIES = 10_000;
const FLUSH_MS = 1000;

export interface ProfileRow {
  layer: string;
  path: string;
  chunk_offset: number;
  chunk_size: number | null;
  blob_offset: number | null;
  blob_end: number | null;
  inner_offset: number | null;
  digest: Buffer | null;
  zeros: number | null;
}

/** The image's rows in the order they were first read (exported for early-fetch, which has its own connection). */
export const LIST_SQL = 'SELECT layer, path, chunk_offset, chunk_size, blob_offset, blob_end, inner_offset, digest, zeros FROM access_chunks WHERE image = ? ORDER BY seq';

export function entryOf(r: ProfileRow): ProfileEntry {
  if (r.chunk_offset === WHOLE_FILE || r.blob_offset === null || r.blob_end === null || r.chunk_size === null) return { layer: r.layer, path: r.path };
  return {
    layer: r.layer,
    path: r.path,
    chunk: {
      chunk_offset: r.chunk_offset, chunk_size: r.chunk_size, blob_offset: r.blob_offset, blob_end: r.blob_end,
      inner_offset: r.inner_offset ?? 0, digest: r.digest, zeros: r.zeros ?? 0,
    },
  };
}

export class ProfileStore {
  private readonly sList;
  private readonly sCount;
  private readonly sNext;
  private readonly sAdd;
  private readonly sClear;
  private readonly sRef;
  private readonly sSetRef;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    this.adoptFileLevel();
    this.sList = db.prepare(LIST_SQL);
    this.sCount = db.prepare('SELECT count(*) FROM access_chunks WHERE image = ?').pluck();
    this.sNext = db.prepare('SELECT coalesce(max(seq), -1) + 1 FROM access_chunks WHERE image = ?').pluck();
    this.sAdd = db.prepare(
      'INSERT OR IGNORE INTO access_chunks (image, seq, layer, path, chunk_offset, chunk_size, blob_offset, blob_end, inner_offset, digest, zeros) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    this.sClear = db.prepare('DELETE FROM access_chunks WHERE image = ?');
    this.sRef = db.prepare(REF_SQL).pluck();
    this.sSetRef = db.prepare('INSERT OR REPLACE INTO image_refs (ref, image) VALUES (?, ?)');
  }

  /** Notes the image `ref` resolved to (a write only when it changed). */
  rememberRef(ref: string, image: string): void {
    if (this.sRef.get(ref) !== image) this.sSetRef.run(ref, image);
  }

  /** Moves a file-level profile of an earlier version here, once, as whole-file rows. */
  private adoptFileLevel(): void {
    const old = this.db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'access_profile'").pluck().get();
    if (old === undefined) return;
    this.db.transaction(() => {
      this.db.exec(`INSERT OR IGNORE INTO access_chunks (image, seq, layer, path, chunk_offset)
        SELECT image, seq, layer, path, ${WHOLE_FILE} FROM access_profile; DROP TABLE access_profile;`);
    }).immediate();
  }

  list(image: string): ProfileEntry[] {
    return (this.sList.all(image) as ProfileRow[]).map(entryOf);
  }

  /** The files, each once, in the order their first chunk was read (the converter's prioritized list). */
  files(image: string): ProfileFile[] {
    const seen = new Set<string>();
    const out: ProfileFile[] = [];
    for (const r of this.sList.all(image) as ProfileRow[]) {
      const key = `${r.layer}\0${r.path}`;
      if (seen.has(key)) continue;
      seen.add(key);
      out.push({ layer: r.layer, path: r.path });
    }
    return out;
  }

  /** Appends the entries not yet in the image's profile, in order, up to MAX_ENTRIES. Safe across processes. */
  append(image: string, entries: readonly ProfileEntry[]): number {
    return this.db.transaction(() => {
      let count = this.sCount.get(image) as number;
      let seq = this.sNext.get(image) as number;
      let added = 0;
      for (const e of entries) {
        if (count >= MAX_ENTRIES) break;
        const c = e.chunk;
        const row = c === undefined
          ? [WHOLE_FILE, null, null, null, null, null, null]
          : [c.chunk_offset, c.chunk_size, c.blob_offset, c.blob_end, c.inner_offset, c.digest, c.zeros];
        if (this.sAdd.run(image, seq, e.layer, e.path, ...row).changes === 1) {
          seq++;
          count++;
          added++;
        }
      }
      return added;
    }).immediate();
  }

  clear(image: string): number {
    return this.sClear.run(image).changes;
  }
}

/** Collects first reads in memory and appends them in batches. */
export class ProfileRecorder {
  private readonly seen = new Set<string>();
  private pending: ProfileEntry[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ProfileStore,
    private readonly image: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  /**
   * The chunks a read touched; those read before in this process are skipped. Called on
   * every read: the path is made relative (`./a`, `/a` → `a`) only for a chunk seen first.
   */
  record(layer: string, path: string, chunks: readonly ChunkRow[]): void {
    for (const chunk of chunks) {
      if (this.seen.size >= MAX_ENTRIES) return;
      const key = `${layer}\0${path}\0${chunk.chunk_offset}`;
      if (this.seen.has(key)) continue;
      this.seen.add(key);
      this.pending.push({ layer, path: path.replace(/^(\.?\/)+/, ''), chunk });
    }
    if (this.pending.length > 0) this.timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.store.append(this.image, batch);
    } catch (err) {
      this.onError(err);
    }
  }
}
