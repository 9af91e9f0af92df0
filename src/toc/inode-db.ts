// meta.db: the SQLite inode table every other part stands on. Schema version 1:
//
//   layers   one row per indexed layer blob. `digest` is the blob digest, `toc_digest`
//            the sha256 of the uncompressed TOC JSON (what the annotation names),
//            `verified` = 1 when that digest matched a trusted annotation. A row exists
//            only for a complete import (the import is one transaction).
//   nodes    one row per inode; `id` (rowid) is the inode number, assigned in TOC order,
//            so numbers are stable across remounts. `mode` is st_mode (type | 07777),
//            `mtime` NULL means "not defined" (implicit directories). Hard links share a
//            node; `nlink` is computed at import (files: names; dirs: 2 + subdirs).
//   dirents  (parent_id, name) → node_id, names in byte order (BINARY collation on
//            UTF-8), so a directory listing is one index range scan.
//   chunks   per regular file: uncompressed [chunk_offset, +chunk_size) comes from the
//            member at blob_offset, extent [blob_offset, blob_end), after skipping
//            inner_offset bytes; `digest` is the chunkDigest as 32 raw bytes (NULL:
//            none given); `zeros` = a hole with no bytes in the blob.
//   xattrs   (node_id, name) → raw value.
//   layer_warnings  entries that were unusable (named, with the reason), per layer.
//
// Whiteouts and landmarks are stored as the TOC has them and hidden at query time by
// the views, so the raw layer stays inspectable.
import Database from 'better-sqlite3';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export const SCHEMA_VERSION = 1;

export const S_IFMT = 0o170000;
export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

export const NODE_HAS_XATTRS = 1;
export const NODE_IMPLICIT = 2;

export interface NodeRow {
  readonly id: number;
  readonly layer_id: number;
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  readonly mtime: number | null;
  readonly mtime_nsec: number;
  readonly nlink: number;
  readonly rdev_major: number;
  readonly rdev_minor: number;
  readonly link: string | null;
  readonly flags: number;
}

export interface ChunkRow {
  readonly chunk_offset: number;
  readonly chunk_size: number;
  readonly blob_offset: number;
  readonly blob_end: number;
  readonly inner_offset: number;
  /** Raw 32-byte sha256 of the uncompressed chunk. */
  readonly digest: Buffer | null;
  readonly zeros: number;
}

export interface LayerRow {
  readonly id: number;
  readonly digest: string;
  readonly toc_digest: string;
  readonly toc_compressed_digest: string | null;
  readonly verified: number;
  readonly format: string;
  readonly compression: string;
  readonly blob_size: number;
  readonly footer_size: number;
  readonly toc_offset: number;
  readonly toc_compressed_size: number;
  readonly toc_size: number;
  readonly data_end: number;
  readonly root_id: number;
  readonly entry_count: number;
  readonly chunk_count: number;
  readonly node_count: number;
  readonly landmark: string | null;
  readonly prefetch_size: number;
  readonly warning_count: number;
  readonly indexed_at: number;
}

export interface WarningRow {
  readonly code: string;
  readonly path: string | null;
  readonly message: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS layers (
  id INTEGER PRIMARY KEY,
  digest TEXT NOT NULL UNIQUE,
  toc_digest TEXT NOT NULL,
  toc_compressed_digest TEXT,
  verified INTEGER NOT NULL,
  format TEXT NOT NULL,
  compression TEXT NOT NULL,
  blob_size INTEGER NOT NULL,
  footer_size INTEGER NOT NULL,
  toc_offset INTEGER NOT NULL,
  toc_compressed_size INTEGER NOT NULL,
  toc_size INTEGER NOT NULL,
  data_end INTEGER NOT NULL,
  root_id INTEGER NOT NULL,
  entry_count INTEGER NOT NULL,
  chunk_count INTEGER NOT NULL,
  node_count INTEGER NOT NULL,
  landmark TEXT,
  prefetch_size INTEGER NOT NULL,
  warning_count INTEGER NOT NULL,
  indexed_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS nodes (
  id INTEGER PRIMARY KEY,
  layer_id INTEGER NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime INTEGER,
  mtime_nsec INTEGER NOT NULL,
  nlink INTEGER NOT NULL,
  rdev_major INTEGER NOT NULL,
  rdev_minor INTEGER NOT NULL,
  link TEXT,
  flags INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS dirents (
  parent_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  node_id INTEGER NOT NULL,
  PRIMARY KEY (parent_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS chunks (
  node_id INTEGER NOT NULL,
  chunk_offset INTEGER NOT NULL,
  chunk_size INTEGER NOT NULL,
  blob_offset INTEGER NOT NULL,
  blob_end INTEGER NOT NULL,
  inner_offset INTEGER NOT NULL,
  digest BLOB,
  zeros INTEGER NOT NULL,
  PRIMARY KEY (node_id, chunk_offset)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS xattrs (
  node_id INTEGER NOT NULL,
  name TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (node_id, name)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS layer_warnings (
  layer_id INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  code TEXT NOT NULL,
  path TEXT,
  message TEXT NOT NULL,
  PRIMARY KEY (layer_id, seq)
) WITHOUT ROWID;
`;

/**
 * `read` on meta.db opened read-only, without opening it for writing (no schema set-up,
 * no WAL switch); `none` when there is no meta.db or it cannot be read. For guesses only
 * (the early fetch): the indexer and the mount decide for real.
 */
export function peekMetaDb<T>(file: string, none: T, read: (db: Database.Database) => T): T {
  if (!existsSync(file)) return none;
  try {
    const db = new Database(file, { readonly: true, fileMustExist: true });
    try {
      return read(db);
    } finally {
      db.close();
    }
  } catch {
    // Unreadable, locked or of another schema: guess `none`.
    return none;
  }
}

/** Which of `digests` meta.db has indexed already (a guess: see peekMetaDb). */
export function indexedLayerDigests(db: Database.Database, digests: readonly string[]): Set<string> {
  const q = db.prepare('SELECT 1 FROM layers WHERE digest = ?').pluck();
  return new Set(digests.filter((d) => q.get(d) !== undefined));
}

/** Opens (creating if needed) meta.db in WAL mode, safe to share between processes. */
export function openMetaDb(file: string): Database.Database {
  if (file !== ':memory:') mkdirSync(dirname(file), { recursive: true });
  const db = new Database(file);
  db.pragma('busy_timeout = 10000');
  // Switching to WAL takes an exclusive lock and may fail at once with SQLITE_BUSY, busy
  // timeout or not, while another process opens the same file: retry for a while.
  for (let attempt = 0; ; attempt++) {
    try {
      db.pragma('journal_mode = WAL');
      break;
    } catch (err) {
      if ((err as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 200) throw err;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
    }
  }
  db.pragma('synchronous = NORMAL');
  // A serving connection's page cache stays in the process for its life (RSS): 16 MiB.
  // Imports set their own larger one (importer.ts).
  db.pragma('cache_size = -16384');
  db.exec('BEGIN IMMEDIATE');
  try {
    const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
    const version = hasMeta
      ? (db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as { value: string } | undefined)?.value
      : undefined;
    if (version !== undefined && Number(version) !== SCHEMA_VERSION) {
      throw new Error(`${file}: schema version ${version} is not ${SCHEMA_VERSION}; move it aside or use another --root`);
    }
    db.exec(SCHEMA);
    db.prepare("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)").run(String(SCHEMA_VERSION));
    db.exec('COMMIT');
  } catch (err) {
    db.exec('ROLLBACK');
    throw err;
  }
  return db;
}

/**
 * The read side of the inode table: single indexed queries, prepared once. This is
 * what the views (and later the FUSE operations) call on every lookup and read.
 */
export class InodeTable {
  private readonly sNode;
  private readonly sChild;
  private readonly sChildrenFirst;
  private readonly sChildrenAfter;
  private readonly sChildNodes;
  private readonly sAnyXattr;
  private readonly sAnyChild;
  private readonly sLayerEntries;
  private readonly sXattrs;
  private readonly sChunksFrom;
  private readonly sChunkAt;
  private readonly sLayerById;
  private readonly sLayerByDigest;
  private readonly sWarnings;
  private readonly sAllChunks;
  private readonly sLayerChunks;
  private readonly sChunksNear;

  constructor(readonly db: Database.Database) {
    this.sNode = db.prepare('SELECT * FROM nodes WHERE id = ?');
    this.sChild = db.prepare('SELECT node_id FROM dirents WHERE parent_id = ? AND name = ?').pluck();
    this.sChildrenFirst = db.prepare('SELECT name, node_id FROM dirents WHERE parent_id = ? ORDER BY name LIMIT ?');
    this.sChildrenAfter = db.prepare('SELECT name, node_id FROM dirents WHERE parent_id = ? AND name > ? ORDER BY name LIMIT ?');
    // Rows as arrays: better-sqlite3 builds a keyed object per row at about twice the cost.
    this.sChildNodes = db.prepare(
      'SELECT d.name, n.id, n.layer_id, n.mode, n.uid, n.gid, n.size, n.mtime, n.mtime_nsec, n.nlink, n.rdev_major, n.rdev_minor, n.link, n.flags ' +
        'FROM dirents d JOIN nodes n ON n.id = d.node_id WHERE d.parent_id = ? ORDER BY d.name',
    ).raw(true);
    this.sAnyXattr = db.prepare('SELECT 1 FROM xattrs WHERE node_id BETWEEN ? AND ? LIMIT 1').pluck();
    this.sAnyChild = db.prepare('SELECT 1 FROM dirents WHERE parent_id BETWEEN ? AND ? AND name = ? LIMIT 1').pluck();
    this.sLayerEntries = db.prepare('SELECT node_id, parent_id, name FROM dirents WHERE parent_id BETWEEN ? AND ?').raw();
    this.sXattrs = db.prepare('SELECT name, value FROM xattrs WHERE node_id = ? ORDER BY name');
    this.sChunkAt = db.prepare(
      'SELECT chunk_offset FROM chunks WHERE node_id = ? AND chunk_offset <= ? ORDER BY chunk_offset DESC LIMIT 1',
    ).pluck();
    this.sChunksFrom = db.prepare(
      'SELECT * FROM chunks WHERE node_id = ? AND chunk_offset >= ? AND chunk_offset < ? ORDER BY chunk_offset',
    );
    this.sAllChunks = db.prepare('SELECT * FROM chunks WHERE node_id = ? ORDER BY chunk_offset');
    this.sLayerChunks = db.prepare(
      'SELECT * FROM chunks WHERE node_id BETWEEN ? AND ? AND zeros = 0 AND blob_end > 0 AND blob_offset < ? ORDER BY blob_offset, inner_offset',
    );
    this.sChunksNear = db.prepare(
      'SELECT * FROM chunks WHERE node_id BETWEEN ? AND ? AND zeros = 0 AND blob_end > 0 AND blob_offset >= ? AND blob_offset < ? ORDER BY blob_offset, inner_offset',
    );
    this.sLayerById = db.prepare('SELECT * FROM layers WHERE id = ?');
    this.sLayerByDigest = db.prepare('SELECT * FROM layers WHERE digest = ?');
    this.sWarnings = db.prepare('SELECT code, path, message FROM layer_warnings WHERE layer_id = ? ORDER BY seq LIMIT ?');
  }

  node(id: number): NodeRow | undefined {
    return this.sNode.get(id) as NodeRow | undefined;
  }

  child(parentId: number, name: string): number | undefined {
    return this.sChild.get(parentId, name) as number | undefined;
  }

  /** Up to `limit` children in name order, after `after` (exclusive) when given. */
  children(parentId: number, after: string | undefined, limit: number): Array<{ name: string; node_id: number }> {
    return (after === undefined ? this.sChildrenFirst.all(parentId, limit) : this.sChildrenAfter.all(parentId, after, limit)) as Array<{
      name: string;
      node_id: number;
    }>;
  }

  *allChildren(parentId: number, page = 1024): Generator<{ name: string; node_id: number }> {
    let after: string | undefined;
    for (;;) {
      const rows = this.children(parentId, after, page);
      yield* rows;
      if (rows.length < page) return;
      after = rows[rows.length - 1]?.name;
    }
  }

  /** Every child with its node row, in name order: a directory listing in one query. */
  childNodes(parentId: number): Array<NodeRow & { name: string }> {
    type Raw = [string, number, number, number, number, number, number, number | null, number, number, number, number, string | null, number];
    return (this.sChildNodes.all(parentId) as Raw[]).map((r) => ({
      name: r[0], id: r[1], layer_id: r[2], mode: r[3], uid: r[4], gid: r[5], size: r[6], mtime: r[7], mtime_nsec: r[8],
      nlink: r[9], rdev_major: r[10], rdev_minor: r[11], link: r[12], flags: r[13],
    }));
  }

  /** Whether any node of the layer has an xattr (an index range scan). */
  layerHasXattrs(layer: LayerRow): boolean {
    return this.sAnyXattr.get(layer.root_id, layer.root_id + layer.node_count - 1) !== undefined;
  }

  /**
   * Every entry of the layer as [node, parent, name], in one range scan: what finds a
   * node's path from its id alone (a server that took over a live mount, asked about
   * inodes an earlier server handed out).
   */
  layerEntries(layer: LayerRow): Array<[number, number, string]> {
    return this.sLayerEntries.all(layer.root_id, layer.root_id + layer.node_count - 1) as Array<[number, number, string]>;
  }

  /** Whether any directory of the layer has an entry of this name (a scan of the layer's entries). */
  layerHasName(layer: LayerRow, name: string): boolean {
    return this.sAnyChild.get(layer.root_id, layer.root_id + layer.node_count - 1, name) !== undefined;
  }

  xattrs(id: number): Array<{ name: string; value: Buffer }> {
    return this.sXattrs.all(id) as Array<{ name: string; value: Buffer }>;
  }

  /** Chunks of a file overlapping the uncompressed range [off, end). */
  chunks(id: number, off: number, end: number): ChunkRow[] {
    const first = (this.sChunkAt.get(id, off) as number | undefined) ?? off;
    return this.sChunksFrom.all(id, first, end) as ChunkRow[];
  }

  allChunks(id: number): ChunkRow[] {
    return this.sAllChunks.all(id) as ChunkRow[];
  }

  /**
   * Every chunk of a layer whose member starts before `end` in the blob, in blob order.
   * A layer's nodes are one contiguous id range from its root, so this is a range scan.
   */
  layerChunksBefore(layer: LayerRow, end: number): ChunkRow[] {
    return this.sLayerChunks.all(layer.root_id, layer.root_id + layer.node_count - 1, end) as ChunkRow[];
  }

  /**
   * Chunks of the layer's nodes [fromNode, toNode] whose member starts in [blobStart,
   * blobEnd), in blob order. Node ids follow TOC order, which is blob order, so a window
   * of nodes around a file finds the members next to it (and its member's other chunks).
   */
  chunksNear(layer: LayerRow, fromNode: number, toNode: number, blobStart: number, blobEnd: number): ChunkRow[] {
    const lo = Math.max(layer.root_id, fromNode);
    const hi = Math.min(layer.root_id + layer.node_count - 1, toNode);
    return this.sChunksNear.all(lo, hi, blobStart, blobEnd) as ChunkRow[];
  }

  layer(id: number): LayerRow | undefined {
    return this.sLayerById.get(id) as LayerRow | undefined;
  }

  layerByDigest(digest: string): LayerRow | undefined {
    return this.sLayerByDigest.get(digest) as LayerRow | undefined;
  }

  warnings(layerId: number, limit = 100): WarningRow[] {
    return this.sWarnings.all(layerId, limit) as WarningRow[];
  }
}
