// TOC → SQLite, in one transaction, streaming the entries (ESTARGZ.md §4.5, §4.6).
// Builds the tree the way the reference readers do: names cleaned, implicit parents
// created and later replaced by their explicit entry, duplicates resolved last-wins,
// hard links sharing the target's node, chunks attached to the preceding file and
// their compressed extents computed from the next member start. An unusable entry is
// recorded as a warning on the layer and skipped; the rest of the layer stays usable.
import type Database from 'better-sqlite3';
import { StargzfsError, TocEntryError, TocFormatError } from '../errors.js';
import { decodeEntry, type TocEntry } from './entry.js';
import { forEachTocEntry } from './json-entries.js';
import { basename, cleanName, dirname, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK } from './names.js';
import {
  NODE_HAS_XATTRS, NODE_IMPLICIT, S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFREG, type LayerRow,
} from './inode-db.js';
import type { Compression } from './codec.js';

export interface ImportInput {
  readonly digest: string;
  readonly tocDigest: string;
  readonly tocCompressedDigest: string | undefined;
  readonly verified: boolean;
  readonly format: string;
  readonly compression: Compression;
  readonly blobSize: number;
  readonly footerSize: number;
  readonly tocOffset: number;
  readonly tocCompressedSize: number;
  /** End of the data region: the last member's extent ends here. */
  readonly dataEnd: number;
  readonly json: Buffer;
}

const MAX_STORED_WARNINGS = 1000;

const TYPE_BITS: Record<string, number> = {
  dir: S_IFDIR, reg: S_IFREG, symlink: S_IFLNK, char: S_IFCHR, block: S_IFBLK, fifo: S_IFIFO,
};

interface PendingChunk {
  node: number;
  chunkOffset: number;
  chunkSize: number;
  offset: number;
  inner: number;
  digest: string | null;
}

/** Imports a verified (or explicitly allowed) TOC; returns the layer row. Idempotent. */
export function importToc(db: Database.Database, input: ImportInput): LayerRow {
  const run = db.transaction(() => {
    const existing = db.prepare('SELECT * FROM layers WHERE digest = ?').get(input.digest) as LayerRow | undefined;
    if (existing !== undefined) return existing; // another process indexed it meanwhile
    return new Importer(db, input).run();
  });
  return run.immediate();
}

class Importer {
  private readonly sNode;
  private readonly sNodeId;
  private readonly sUpdDir;
  private readonly sDirent;
  private readonly sChunk;
  private readonly sXattr;
  private readonly sDelXattrs;
  private readonly sNlink;
  private readonly sWarn;

  private layerId = 0;
  private nextId = 0;
  private baseId = 0;
  private rootId = 0;
  private readonly paths = new Map<string, number>();
  // Per node, indexed by id - baseId.
  private readonly isDir: number[] = [];
  private readonly names: number[] = [];
  private readonly subdirs: number[] = [];

  private warningCount = 0;
  private chunkCount = 0;
  private landmark: string | null = null;
  private prefetchSize = 0;
  private lastReg: { node: number; path: string; size: number; next: number } | 'skip' | undefined;
  private pending: PendingChunk[] = [];
  private pendingOffset = -1;

  constructor(private readonly db: Database.Database, private readonly input: ImportInput) {
    this.sNode = db.prepare(
      'INSERT INTO nodes (id, layer_id, mode, uid, gid, size, mtime, mtime_nsec, nlink, rdev_major, rdev_minor, link, digest, flags) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)',
    );
    this.sNodeId = db.prepare('SELECT coalesce(max(id), 0) FROM nodes').pluck();
    this.sUpdDir = db.prepare('UPDATE nodes SET mode = ?, uid = ?, gid = ?, mtime = ?, mtime_nsec = ?, flags = ? WHERE id = ?');
    this.sDirent = db.prepare('INSERT OR REPLACE INTO dirents (parent_id, name, node_id) VALUES (?,?,?)');
    this.sChunk = db.prepare('INSERT OR REPLACE INTO chunks VALUES (?,?,?,?,?,?,?,?)');
    this.sXattr = db.prepare('INSERT OR REPLACE INTO xattrs VALUES (?,?,?)');
    this.sDelXattrs = db.prepare('DELETE FROM xattrs WHERE node_id = ?');
    this.sNlink = db.prepare('UPDATE nodes SET nlink = ? WHERE id = ?');
    this.sWarn = db.prepare('INSERT INTO layer_warnings VALUES (?,?,?,?,?)');
  }

  run(): LayerRow {
    const i = this.input;
    this.layerId = Number(
      this.db
        .prepare(
          `INSERT INTO layers (digest, toc_digest, toc_compressed_digest, verified, format, compression, blob_size, footer_size,
             toc_offset, toc_compressed_size, toc_size, data_end, root_id, entry_count, chunk_count, node_count, landmark,
             prefetch_size, warning_count, indexed_at)
           VALUES (?,?,?,?,?,?,?,?,?,?,?,?,0,0,0,0,NULL,0,0,?)`,
        )
        .run(i.digest, i.tocDigest, i.tocCompressedDigest ?? null, i.verified ? 1 : 0, i.format, i.compression, i.blobSize,
          i.footerSize, i.tocOffset, i.tocCompressedSize, i.json.length, i.dataEnd, Date.now()).lastInsertRowid,
    );
    this.baseId = this.nextId = (this.sNodeId.get() as number) + 1;
    this.rootId = this.newNode(S_IFDIR | 0o755, 0, 0, 0, null, 0, 0, 0, null, null, NODE_IMPLICIT);

    let entryCount = 0;
    const header = forEachTocEntry(
      i.json,
      (raw, index) => {
        entryCount++;
        let e: TocEntry;
        try {
          e = decodeEntry(raw, index, i.digest);
        } catch (err) {
          if (this.lastReg !== undefined && (raw as { type?: unknown } | null)?.type !== 'chunk') this.lastReg = 'skip';
          this.warn(err);
          return;
        }
        try {
          this.entry(e);
        } catch (err) {
          if (e.type !== 'chunk') this.lastReg = 'skip';
          this.warn(err);
        }
      },
      { layer: i.digest },
    );
    if (header.version !== undefined && header.version !== 1 && header.version !== 2) {
      throw new TocFormatError(`unsupported TOC version ${header.version}`, { layer: i.digest });
    }
    this.flushPending(i.dataEnd);

    for (let k = 0; k < this.isDir.length; k++) {
      const id = this.baseId + k;
      const nlink = this.isDir[k] ? 2 + (this.subdirs[k] ?? 0) : Math.max(1, this.names[k] ?? 0);
      if (nlink !== (this.isDir[k] ? 2 : 1)) this.sNlink.run(nlink, id);
    }
    this.db
      .prepare(
        'UPDATE layers SET root_id = ?, entry_count = ?, chunk_count = ?, node_count = ?, landmark = ?, prefetch_size = ?, warning_count = ? WHERE id = ?',
      )
      .run(this.rootId, entryCount, this.chunkCount, this.isDir.length, this.landmark, this.prefetchSize, this.warningCount, this.layerId);
    return this.db.prepare('SELECT * FROM layers WHERE id = ?').get(this.layerId) as LayerRow;
  }

  private warn(err: unknown): void {
    this.warningCount++;
    if (this.warningCount > MAX_STORED_WARNINGS) return;
    if (!(err instanceof StargzfsError)) throw err;
    this.sWarn.run(this.layerId, this.warningCount, err.code, err.path ?? null, err.message);
  }

  private entryError(e: TocEntry, message: string): TocEntryError {
    return new TocEntryError(message, { layer: this.input.digest, path: e.name });
  }

  private newNode(
    mode: number, uid: number, gid: number, size: number, mtime: number | null, nsec: number,
    major: number, minor: number, link: string | null, digest: string | null, flags: number,
  ): number {
    const id = this.nextId++;
    const dir = (mode & 0o170000) === S_IFDIR;
    this.sNode.run(id, this.layerId, mode, uid, gid, size, mtime, nsec, dir ? 2 : 1, major, minor, link, digest, flags);
    this.isDir.push(dir ? 1 : 0);
    this.names.push(0);
    this.subdirs.push(0);
    return id;
  }

  private dir(id: number): boolean {
    return this.isDir[id - this.baseId] === 1;
  }

  private bind(path: string, parent: number, node: number): void {
    const old = this.paths.get(path);
    if (old === node) return;
    this.sDirent.run(parent, basename(path), node);
    const p = parent - this.baseId;
    if (old !== undefined) {
      (this.names[old - this.baseId] as number)--;
      if (this.dir(old)) {
        (this.subdirs[p] as number)--;
        if (!this.dir(node)) this.dropSubtree(path);
      }
    }
    (this.names[node - this.baseId] as number)++;
    if (this.dir(node)) (this.subdirs[p] as number)++;
    this.paths.set(path, node);
  }

  // A directory replaced by a non-directory takes its subtree with it (tar semantics).
  private dropSubtree(path: string): void {
    const prefix = `${path}/`;
    for (const k of this.paths.keys()) if (k.startsWith(prefix)) this.paths.delete(k);
  }

  private ensureDir(path: string, forEntry: TocEntry): number {
    if (path === '') return this.rootId;
    const id = this.paths.get(path);
    if (id !== undefined && this.dir(id)) return id;
    const parent = this.ensureDir(dirname(path), forEntry);
    if (id !== undefined) {
      this.warn(this.entryError(forEntry, `parent ${JSON.stringify(path)} is not a directory; replaced by an implicit directory`));
    }
    const dir = this.newNode(S_IFDIR | 0o755, 0, 0, 0, null, 0, 0, 0, null, null, NODE_IMPLICIT);
    this.bind(path, parent, dir);
    return dir;
  }

  private entry(e: TocEntry): void {
    if (e.type === 'chunk') {
      this.chunkEntry(e);
      return;
    }
    this.lastReg = undefined;
    const path = cleanName(e.name);
    if (path === PREFETCH_LANDMARK) {
      this.landmark = 'prefetch';
      this.prefetchSize = e.offset;
    } else if (path === NO_PREFETCH_LANDMARK && this.landmark === null) {
      this.landmark = 'no-prefetch';
    }

    if (e.type === 'hardlink') {
      if (path === '') throw this.entryError(e, 'a hard link cannot be the root');
      const target = cleanName(e.linkName);
      const node = this.paths.get(target);
      if (node === undefined) throw this.entryError(e, `hard link target ${JSON.stringify(target)} is not in this layer (before it)`);
      if (this.dir(node)) throw this.entryError(e, `hard link to directory ${JSON.stringify(target)} is not allowed`);
      if (target === path) return;
      this.bind(path, this.ensureDir(dirname(path), e), node);
      return;
    }

    const flags = e.xattrs.length > 0 ? NODE_HAS_XATTRS : 0;
    if (e.type === 'dir') {
      const existing = path === '' ? this.rootId : this.paths.get(path);
      if (existing !== undefined && this.dir(existing)) {
        // An explicit entry replaces the attributes of an implicit (or earlier) one and keeps the children.
        this.sUpdDir.run(S_IFDIR | e.perm, e.uid, e.gid, e.mtime, e.mtimeNsec, flags, existing);
        this.sDelXattrs.run(existing);
        this.xattrs(existing, e);
        return;
      }
    } else if (path === '') {
      throw this.entryError(e, `the root must be a directory, not ${e.type}`);
    }

    const parent = this.ensureDir(dirname(path), e);
    let node: number;
    switch (e.type) {
      case 'dir':
        node = this.newNode(S_IFDIR | e.perm, e.uid, e.gid, 0, e.mtime, e.mtimeNsec, 0, 0, null, null, flags);
        break;
      case 'symlink':
        // Linux shows every symlink as 0777 whatever the tar mode says.
        node = this.newNode(S_IFLNK | 0o777, e.uid, e.gid, Buffer.byteLength(e.linkName), e.mtime, e.mtimeNsec, 0, 0,
          e.linkName, null, flags);
        break;
      case 'reg':
        node = this.newNode(S_IFREG | e.perm, e.uid, e.gid, e.size, e.mtime, e.mtimeNsec, 0, 0, null, e.digest || null, flags);
        this.regChunks(e, node, path);
        break;
      default: {
        const dev = e.type === 'char' || e.type === 'block';
        node = this.newNode((TYPE_BITS[e.type] as number) | e.perm, e.uid, e.gid, 0, e.mtime, e.mtimeNsec,
          dev ? e.devMajor : 0, dev ? e.devMinor : 0, null, null, flags);
      }
    }
    this.xattrs(node, e);
    this.bind(path, parent, node);
  }

  private xattrs(node: number, e: TocEntry): void {
    for (const [k, v] of e.xattrs) this.sXattr.run(node, k, v);
  }

  private regChunks(e: TocEntry, node: number, path: string): void {
    this.lastReg = { node, path, size: e.size, next: 0 };
    if (e.size === 0) return;
    const chunkSize = e.chunkSize === 0 ? e.size - e.chunkOffset : e.chunkSize;
    // A non-chunked file's chunk digest is its file digest (legacy stargz has only that).
    const digest = e.chunkDigest || (e.chunkOffset === 0 && chunkSize === e.size ? e.digest : '');
    this.addChunk(e, node, e.chunkOffset, chunkSize, digest);
  }

  private chunkEntry(e: TocEntry): void {
    const last = this.lastReg;
    if (last === 'skip') return; // its file was already reported
    if (last === undefined) throw this.entryError(e, 'chunk entry does not follow a regular file');
    const chunkSize = e.chunkSize === 0 ? last.size - e.chunkOffset : e.chunkSize;
    this.addChunk({ ...e, name: last.path }, last.node, e.chunkOffset, chunkSize, e.chunkDigest);
  }

  private addChunk(e: TocEntry, node: number, chunkOffset: number, chunkSize: number, digest: string): void {
    const last = this.lastReg as { node: number; size: number; next: number };
    if (chunkOffset !== last.next) {
      throw this.entryError(e, `chunk at file offset ${chunkOffset} does not continue the previous one (expected ${last.next})`);
    }
    if (chunkSize <= 0 || chunkOffset + chunkSize > last.size) {
      throw this.entryError(e, `chunk [${chunkOffset}, +${chunkSize}) lies outside the file of ${last.size} bytes`);
    }
    last.next = chunkOffset + chunkSize;
    this.chunkCount++;
    if (e.zeros) {
      this.sChunk.run(node, chunkOffset, chunkSize, 0, 0, 0, null, 1);
      return;
    }
    const dataEnd = this.input.dataEnd;
    if (e.offset <= 0 || e.offset >= dataEnd) {
      throw this.entryError(e, `chunk offset ${e.offset} lies outside the data region [0, ${dataEnd}) of the blob`);
    }
    if (e.endOffset > 0) {
      if (e.endOffset <= e.offset || e.endOffset > dataEnd) {
        throw this.entryError(e, `chunk end offset ${e.endOffset} is not within (${e.offset}, ${dataEnd}]`);
      }
      this.sChunk.run(node, chunkOffset, chunkSize, e.offset, e.endOffset, e.innerOffset, digest || null, 0);
      return;
    }
    if (this.pending.length > 0 && e.offset !== this.pendingOffset) {
      // Members are written in TOC order, so the next member start ends the pending extent;
      // an offset going backwards (never written by the reference) falls back to the data end.
      this.flushPending(e.offset > this.pendingOffset ? e.offset : dataEnd);
    }
    this.pendingOffset = e.offset;
    this.pending.push({ node, chunkOffset, chunkSize, offset: e.offset, inner: e.innerOffset, digest: digest || null });
  }

  private flushPending(end: number): void {
    for (const c of this.pending) {
      this.sChunk.run(c.node, c.chunkOffset, c.chunkSize, c.offset, end, c.inner, c.digest, 0);
    }
    this.pending = [];
  }
}
