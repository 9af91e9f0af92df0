// The content-addressed chunk cache: uncompressed chunks stored once per machine by their
// chunkDigest, under <root>/chunks/<2 hex>/<64 hex>, shared by every layer, image and
// mount process on the state root. Files are written to <root>/tmp and renamed into
// place, so a reader sees a whole chunk or none; a file that is torn or corrupt anyway
// (disk trouble, someone's hand) fails its size check or its sha256 on first use in this
// process, is deleted, and counts as a miss. Hot chunks stay in a memory LRU bounded in
// bytes. The index in meta.db (cache_chunks) holds size and last use, both written in
// batches: a transaction per chunk was the largest single cost of a cold read of many
// small files. A row can therefore trail its file by up to INDEX_FLUSH_MS (a crash in
// between leaves a file gc() adopts). A size quota evicts least recently used chunks.
// Whole files assembled from chunk files for FUSE passthrough (whole-files.ts) live beside
// them under <root>/files, indexed in cache_files, and share the quota and the LRU.
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rename as renameCb, statSync, statfsSync, writeFile as writeFileCb } from 'node:fs';
import { mkdir, open, readdir, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { dirname, join, resolve } from 'node:path';
import type Database from 'better-sqlite3';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import { CACHE_INDEX_SCHEMA, CACHED_SQL } from './cache-index.js';
import { GrowingFile, WHOLE_FILES_SCHEMA, wholeFileDigest, wholeFileSize, type FilePiece, type PieceSource } from './whole-files.js';

export type { FilePiece } from './whole-files.js';

export interface ChunkCacheConfig {
  /** State root; chunks live in <root>/chunks. */
  readonly root: string;
  /** Disk quota for chunk files, bytes. */
  readonly quotaBytes: number;
  /** Memory LRU for hot chunks, bytes. Default 64 MiB. */
  readonly memoryBytes: number;
  /** put() returns before the file is written (see put). Default false. */
  readonly writeBehind?: boolean;
}

/** A large chunk's file being written (ChunkStore.createWriter). */
export interface ChunkWriter {
  /** The chunk's next bytes, in order. */
  write(piece: Buffer): Promise<void>;
  /** All bytes are in and matched the digest: the file goes into place. */
  commit(): Promise<void>;
  /** Given up: the temporary file is removed. */
  abort(): Promise<void>;
}

export interface CacheUsage {
  readonly chunks: number;
  /** Bytes of chunks and assembled whole files together (what the quota holds). */
  readonly bytes: number;
  /** Assembled whole files (growFile), and their bytes (part of `bytes`). */
  readonly files: number;
  readonly fileBytes: number;
  readonly quotaBytes: number;
}

/** How writing chunk files goes (a mount's status.json shows it). */
export interface CacheHealth {
  /** Chunk files that could not be written since the store opened. */
  readonly writeErrors: number;
  /** The errno code of the last chunk not written (ENOSPC also when statfs showed no room before a write was tried), or null. */
  readonly lastWriteError: string | null;
  /**
   * The disk is full (a write failed for want of space, or others took the room the cache
   * leaves): the quota follows the free space down, and a chunk that does not fit stays in
   * memory only, until the free space is back.
   */
  readonly diskFull: boolean;
  /** Chunks kept in memory only because their file could not be written. */
  readonly memoryOnlyChunks: number;
  /** The quota in effect: the configured one, lowered to what the disk can hold (bytes). */
  readonly quotaBytes: number;
  readonly configuredQuotaBytes: number;
  /** Chunk and assembled file bytes on disk, as this process last counted them. */
  readonly usedBytes: number;
}


// The callback forms: fs/promises makes a FileHandle per file written, which a profile of
// a cold read of many small files put among its larger main-thread costs.
const writeFileAsync = promisify(writeFileCb);
const renameAsync = promisify(renameCb);

const LAST_USE_FLUSH_MS = 5000;
/** New chunks' index rows wait at most this long, for one transaction with the others. */
const INDEX_FLUSH_MS = 50;
/** Chunk files kept open for reads. */
const MAX_OPEN_CHUNK_FILES = 256;
/** Chunk bytes written behind reads before put() makes its caller wait. */
const WRITE_BEHIND_BYTES = 64 << 20;
/**
 * With write-behind, chunk files are written once puts have paused this long (or after
 * WRITE_MAX_DELAY_MS): a burst of reads (a program starting) does not share the two
 * cores with the writes. python3's start from a landmark region took 0.07 s less.
 */
const WRITE_QUIET_MS = 250;
const WRITE_MAX_DELAY_MS = 2000;
/** Queued bytes past which writing starts at once: a long stream (a large file, background fetch) is written as it comes. */
const WRITE_DEFER_BYTES = 32 << 20;
/** Pieces a chunk file is hashed in when checked for a range read. */
const CHECK_PIECE_BYTES = 4 << 20;
/**
 * Room the cache leaves free on its filesystem: a sixteenth of it, at least 4 MiB (but no
 * more than a quarter), at most 64 MiB. The state root's logs and meta.db live there too,
 * and meta.db grows after the cache opens (a TOC indexed, a WAL of up to some 4 MiB).
 */
const DISK_RESERVE_MAX_BYTES = 64 << 20;
const DISK_RESERVE_MIN_BYTES = 4 << 20;
/** How often, at most, the free space is looked at again (statfs) to raise a lowered quota. */
const SPACE_CHECK_MS = 1000;
/** Write errors that mean the disk (or the user's disk quota) is full; SQLite says it too. */
const DISK_FULL_CODES = new Set(['ENOSPC', 'EDQUOT', 'SQLITE_FULL']);
const errnoCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? 'EIO';
const ZEROS = Buffer.alloc(1 << 20);
/** When a process sweeps tmp/ of dead writers' files. */
const TMP_SWEEP_AFTER_MS = 5000;
/** The writer's pid in a temporary file's name: chunks' `<hex>.<pid>.<random>`, convert's `layer-<pid>-…`. */
const TMP_WRITER = /^(?:[0-9a-f]{64}\.|layer-)(\d+)[.-]/;

/** A file growing from its chunks (growFile), and who waits for it. */
interface Growing {
  readonly hex: string;
  readonly digest: Buffer;
  readonly file: GrowingFile;
  readonly done: Promise<string | undefined>;
  readonly settle: (path: string | undefined) => void;
  /** Its bytes written or being written, counted in assemblingBytes until it is placed or given up. */
  counted: number;
  /** Placed or given up. */
  over: boolean;
}
/** A growing file no chunk came for in this long is given up (its file was read in part, and closed). */
const GROW_IDLE_MS = 60_000;
const IDLE = Symbol('idle');

/** Whether a process with this pid exists (EPERM: it does, someone else's). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Whether a buffer holds only zero bytes (written as a hole). */
function isZeros(b: Buffer): boolean {
  for (let at = 0; at < b.length; at += ZEROS.length) {
    const end = Math.min(b.length, at + ZEROS.length);
    if (!b.subarray(at, end).equals(ZEROS.subarray(0, end - at))) return false;
  }
  return true;
}

/** Removes a file; one gone already is no error. */
async function unlinkIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}

export class ChunkStore {
  private readonly memory: LRUCache<string, Buffer>;
  /** Open chunk files, closed when they fall out (close waits for reads in progress). */
  private readonly fds = new LRUCache<string, { fh: FileHandle; size: number }>({
    max: MAX_OPEN_CHUNK_FILES,
    dispose: (v) => void v.fh.close().catch(() => undefined),
  });
  private readonly verified = new Set<string>();
  /** Chunk files being checked (readRange), so concurrent reads hash a file once. */
  private readonly checking = new Map<string, Promise<boolean>>();
  private readonly touched = new Map<string, number>();
  /** Chunks in place on disk, not yet in the index: hex → [digest, size, stored at]. */
  private readonly unindexed = new Map<string, [Buffer, number, number]>();
  private indexTimer: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  private readonly sPut;
  private readonly sTouch;
  private readonly sDel;
  private readonly sUsage;
  private readonly sOldest;
  private readonly sHas;
  private readonly sSize;
  private used: number;
  private flushTimer: NodeJS.Timeout | undefined;
  private evicting: Promise<unknown> = Promise.resolve();
  private readonly pending = new Set<Promise<void>>();
  /** Chunks put but not yet being written (write-behind), by hex digest. */
  private readonly queued = new Map<string, { digest: Buffer; data: Buffer }>();
  /** Chunks being written, served from here if the memory LRU has dropped them. */
  private readonly writing = new Map<string, Buffer>();
  private queueTimer: NodeJS.Timeout | undefined;
  private queuedSince = 0;
  private queuedBytes = 0;
  /** Directories known to exist (clear() forgets them). */
  private readonly dirs = new Set<string>();
  private pendingBytes = 0;
  /** The quota in effect: cfg.quotaBytes, lowered to what the disk can hold (see capacity). */
  private quota: number;
  private nextSpaceCheck = 0;
  private writeErrors = 0;
  private lastWriteError: string | undefined;
  private memoryOnly = 0;
  /**
   * The errno code chunk files are failing to be written with (other than a full disk),
   * until one is written again: warned about once, not per chunk.
   */
  private failing: string | undefined;
  /**
   * The disk is full: a write failed for want of space, or others took the free space the
   * cache leaves (below half the reserve). One condition, warned about once (not per chunk:
   * a full disk made that thousands of lines), until the free space is back to the reserve.
   */
  private full = false;
  /** The disk was full before in this process (later times are logged at info). */
  private wasFull = false;
  /** Index rows are failing to be written (warned once). */
  private indexFailing = false;
  /** When the quota may be lowered again: writes in flight together fail together, and lower it once. */
  private lowerAfter = 0;
  /** Bytes of chunk files being written now (counted against the quota before they land). */
  private writingBytes = 0;
  /** Writes waiting for writingBytes to fall (see writeSlot), in order. */
  private readonly slotWaiters: Array<{ size: number; go: () => void }> = [];
  /**
   * Chunks evicted whose index row could not be deleted (a full disk fails SQLite's writes
   * too): their files are gone, and the rows go with the next batch. hex → size.
   */
  private readonly forgotten = new Map<string, number>();
  private readonly sFilePut;
  private readonly sFileTouch;
  private readonly sFileDel;
  private readonly sFileSize;
  /** Assembled files used, last use batched like chunks': hex → when. */
  private readonly touchedFiles = new Map<string, number>();
  /** Assembled files evicted whose index row could not be deleted (as `forgotten`): hex → size. */
  private readonly forgottenFiles = new Map<string, number>();
  /** Assembled files whose size on disk this process has checked (wholeFile). */
  private readonly checkedFiles = new Set<string>();
  /**
   * Assembled files in place but not yet on disk for sure (their index row waits for the
   * sync, makeDurable): this process serves them (it wrote every byte; its page cache holds
   * them), no other process finds them, and a crash before the row leaves an unindexed file
   * that gc removes.
   */
  private readonly unsynced = new Map<string, number>();
  /** Assembled files of earlier processes being checked (checkWhole). */
  private readonly checkingFiles = new Map<string, Promise<void>>();
  /** makeDurable()s running: drain() waits for them. */
  private readonly syncing = new Set<Promise<void>>();
  /** Whole files being written as their chunks arrive (growFile), by file hex. */
  private readonly growing = new Map<string, Growing>();
  /** Chunks growing files wait for: chunk hex → those files. */
  private readonly wanted = new Map<string, Set<Growing>>();
  private growTimer: NodeJS.Timeout | undefined;
  /** Chunks being copied from their files into a growing file: eviction passes them by. hex → copies. */
  private readonly pinned = new Map<string, number>();
  /** Bytes being written into growing files, counted against the quota like writingBytes. */
  private assemblingBytes = 0;

  constructor(private readonly db: Database.Database, private readonly cfg: ChunkCacheConfig, log: Logger) {
    this.log = log.child({ mod: 'chunkcache' });
    db.exec(CACHE_INDEX_SCHEMA);
    db.exec(WHOLE_FILES_SCHEMA);
    this.memory = new LRUCache<string, Buffer>({ maxSize: Math.max(1, cfg.memoryBytes), sizeCalculation: (b) => Math.max(1, b.length) });
    this.sPut = db.prepare('INSERT OR REPLACE INTO cache_chunks (digest, size, last_use) VALUES (?, ?, ?)');
    this.sTouch = db.prepare('UPDATE cache_chunks SET last_use = max(last_use, ?) WHERE digest = ?');
    this.sDel = db.prepare('DELETE FROM cache_chunks WHERE digest = ?');
    this.sUsage = db.prepare(
      'SELECT c.chunks, c.bytes + f.bytes AS bytes, f.files, f.bytes AS fileBytes FROM ' +
        '(SELECT count(*) AS chunks, coalesce(sum(size), 0) AS bytes FROM cache_chunks) c, ' +
        '(SELECT count(*) AS files, coalesce(sum(size), 0) AS bytes FROM cache_files) f',
    );
    // Chunks and assembled files in one LRU: each side walked by its last_use index, merged.
    this.sOldest = db.prepare(
      'SELECT digest, size, last_use, 0 AS file FROM cache_chunks UNION ALL SELECT digest, size, last_use, 1 AS file FROM cache_files ORDER BY last_use LIMIT ?',
    );
    this.sHas = db.prepare(CACHED_SQL).pluck();
    this.sSize = db.prepare('SELECT size FROM cache_chunks WHERE digest = ?').pluck();
    this.sFilePut = db.prepare('INSERT OR REPLACE INTO cache_files (digest, size, last_use) VALUES (?, ?, ?)');
    this.sFileTouch = db.prepare('UPDATE cache_files SET last_use = max(last_use, ?) WHERE digest = ?');
    this.sFileDel = db.prepare('DELETE FROM cache_files WHERE digest = ?');
    this.sFileSize = db.prepare('SELECT size FROM cache_files WHERE digest = ?').pluck();
    this.used = (this.sUsage.get() as CacheUsage).bytes;
    this.quota = Math.min(cfg.quotaBytes, this.capacity() ?? Infinity);
    // What killed writers left in tmp/ goes once a process has been up a while (a mount):
    // not on a short command's path.
    setTimeout(() => void this.sweepTmp().catch(() => undefined), TMP_SWEEP_AFTER_MS).unref();
  }

  /**
   * Chunk bytes the disk can hold: what the cache holds plus the free space, less a reserve.
   * The default quota (a fifth of the free space, at least 512 MiB) can be larger than the
   * filesystem, and then it never evicted: past the full disk every chunk was kept in
   * memory only and fetched again once it left. Undefined when statfs fails.
   */
  private capacity(): number | undefined {
    return this.space()?.capacity;
  }

  /** The free space where the root is, the reserve the cache leaves, and so its capacity. */
  private space(): { free: number; reserve: number; capacity: number } | undefined {
    for (let p = resolve(this.cfg.root); ; p = dirname(p)) {
      try {
        const s = statfsSync(p);
        const size = s.blocks * s.bsize;
        const free = s.bavail * s.bsize;
        const reserve = Math.min(DISK_RESERVE_MAX_BYTES, Math.floor(Math.max(size / 16, Math.min(DISK_RESERVE_MIN_BYTES, size / 4))));
        return { free, reserve, capacity: Math.max(0, this.used + free - reserve) };
      } catch {
        // The root is made on first write: its nearest existing parent is on the same disk.
        if (p === dirname(p)) return undefined;
      }
    }
  }

  /**
   * The quota in effect, following the disk at most once a second: it falls as others
   * (meta.db, logs, other programs) take the free space, and rises again as they give it back.
   */
  private quotaNow(): number {
    if (Date.now() >= this.nextSpaceCheck) {
      this.nextSpaceCheck = Date.now() + SPACE_CHECK_MS;
      const sp = this.space();
      if (sp !== undefined) {
        this.quota = Math.min(this.cfg.quotaBytes, sp.capacity);
        // Between half the reserve and all of it nothing changes: the cache's own writes
        // and meta.db's growth move the free space there without a line each time.
        if (sp.free < sp.reserve / 2) this.diskIsFull({ freeBytes: sp.free });
        else if (sp.free >= sp.reserve) this.diskHasRoom();
      }
    }
    return this.quota;
  }

  private get diskFull(): boolean {
    return this.full;
  }

  private diskIsFull(detail: object): void {
    if (this.full) return;
    this.full = true;
    this.log[this.wasFull ? 'info' : 'warn'](
      { ...detail, quotaBytes: this.quota, usedBytes: this.used },
      'cache disk full, chunks kept in memory only: the quota follows the free space down, least recently used chunks are evicted for new ones, and a chunk that does not fit stays in memory only',
    );
    this.wasFull = true;
  }

  private diskHasRoom(): void {
    if (!this.full) return;
    this.full = false;
    this.log.info({ memoryOnlyChunks: this.memoryOnly, quotaBytes: this.quota }, 'cache writable again');
  }

  /** What the cache can hold now: the quota in effect, bytes. */
  capacityBytes(): number {
    return this.quotaNow();
  }

  health(): CacheHealth {
    return {
      writeErrors: this.writeErrors,
      lastWriteError: this.lastWriteError ?? null,
      diskFull: this.diskFull,
      memoryOnlyChunks: this.memoryOnly,
      quotaBytes: this.quota,
      configuredQuotaBytes: this.cfg.quotaBytes,
      usedBytes: this.used,
    };
  }

  /**
   * Whether the chunk is stored, by this or another process, without reading it. The
   * index row is written after the file is renamed into place, so a row means a file
   * (unless a torn file is found on read, which then counts as a miss).
   */
  has(digest: Buffer): boolean {
    const hex = digest.toString('hex');
    return this.memory.has(hex) || this.queued.has(hex) || this.writing.has(hex) || this.unindexed.has(hex) || (!this.forgotten.has(hex) && this.sHas.get(digest) !== undefined);
  }

  private path(hex: string): string {
    return join(this.cfg.root, 'chunks', hex.slice(0, 2), hex);
  }

  /** The chunk with this sha256, or undefined (a miss, or a cached file that failed its check). */
  async get(digest: Buffer, size: number): Promise<Buffer | undefined> {
    const hex = digest.toString('hex');
    const hot = this.hot(hex);
    if (hot !== undefined) return hot;
    let data: Buffer;
    try {
      data = await this.readChunkFile(hex);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (data.length !== size || (!this.verified.has(hex) && !createHash('sha256').update(data).digest().equals(digest))) {
      this.log.warn({ digest: hex, size: data.length, expected: size }, 'cached chunk is torn or corrupt; dropped');
      await this.drop(hex, digest);
      return undefined;
    }
    this.verified.add(hex);
    this.memory.set(hex, data);
    this.touch(hex);
    this.feed(hex, data);
    return data;
  }

  /**
   * Bytes [from, to) of a chunk: from memory when it is hot, else from its file alone
   * (checked once per process, see readRange), never the whole chunk for a small read.
   * Undefined on a miss, or when the file failed its check (it is dropped).
   */
  async readPart(digest: Buffer, size: number, from: number, to: number): Promise<Buffer | undefined> {
    return this.hot(digest.toString('hex'))?.subarray(from, to) ?? this.readRange(digest, size, from, to);
  }

  /** The chunk from memory (the LRU, or waiting to be written), its use recorded; undefined if not there. */
  private hot(hex: string): Buffer | undefined {
    const data = this.memory.get(hex) ?? this.queued.get(hex)?.data ?? this.writing.get(hex);
    if (data !== undefined) this.touch(hex);
    return data;
  }

  /**
   * The chunk's file when this process has verified its bytes (it wrote them after they
   * matched, or hashed the file once) and the file is in place, not waiting to be
   * written: the FUSE addon may then read it without asking again.
   */
  verifiedFile(digest: Buffer): string | undefined {
    const hex = digest.toString('hex');
    if (!this.verified.has(hex) || this.queued.has(hex) || this.writing.has(hex) || this.forgotten.has(hex)) return undefined;
    return this.path(hex);
  }

  private filePath(hex: string): string {
    return join(this.cfg.root, 'files', hex.slice(0, 2), hex);
  }

  /**
   * The path of a plain file holding these pieces' bytes back to back, if one was assembled
   * and is still there (its last use recorded); undefined otherwise. An index lookup; the
   * first time in a process a file is served, its size on disk is checked too (one stat).
   */
  wholeFile(pieces: readonly FilePiece[]): string | undefined {
    const digest = wholeFileDigest(pieces);
    return digest === undefined ? undefined : this.foundFile(digest.toString('hex'), digest, wholeFileSize(pieces), pieces);
  }

  /**
   * An assembled file's path when this process made it, or when its row is in the index,
   * the file on disk has the pieces' size and this process has hashed it once against the
   * pieces' digests (checkWhole, in the background: undefined until then). A file is only
   * ever renamed into place after every piece was written into it from chunks this process
   * had verified (whole-files.ts GrowingFile), and indexed once synced; it is named by its
   * pieces' digests and sizes. One of the wrong size (or gone) is dropped.
   */
  private foundFile(hex: string, digest: Buffer, size: number, pieces: readonly FilePiece[]): string | undefined {
    if (this.forgottenFiles.has(hex) || !this.db.open) return undefined;
    if (this.unsynced.get(hex) === size) return this.filePath(hex);
    const row = this.sFileSize.get(digest) as number | undefined;
    if (row === undefined) {
      this.checkedFiles.delete(hex);
      return undefined;
    }
    const path = this.filePath(hex);
    if (!this.checkedFiles.has(hex)) {
      let onDisk: number | undefined;
      try {
        onDisk = statSync(path).size;
      } catch {
        onDisk = undefined;
      }
      if (row !== size || onDisk !== size) {
        this.log.warn({ file: hex, size: onDisk ?? null, expected: size }, 'assembled file is gone or of the wrong size; dropped');
        void this.dropFile(hex, digest, row).catch(() => undefined);
        return undefined;
      }
      // Made by an earlier process: checked against its chunk digests once (in the
      // background; until then the file is read through its chunks), as a chunk file is.
      this.checkWhole(hex, digest, row, pieces);
      return undefined;
    }
    this.touchedFiles.set(hex, Date.now());
    this.flushTimer ??= setTimeout(() => this.flush(), LAST_USE_FLUSH_MS).unref();
    return path;
  }

  /**
   * The file made of these pieces, now, from what the cache holds (memory or disk): its path
   * once written whole, or undefined when some chunk is not cached or it cannot be made (see
   * growFile). The same pieces asked again while being made share one file.
   */
  assembleFile(pieces: readonly FilePiece[]): Promise<string | undefined> {
    const growing = this.growingFor(pieces);
    if (growing !== undefined) return growing;
    // Made already, or an earlier process's file being checked: no look at each chunk (an
    // index query each, for every chunk of the file).
    const found = this.wholeFile(pieces);
    if (found !== undefined) return Promise.resolve(found);
    if (this.checkingFiles.has(wholeFileDigest(pieces)?.toString('hex') ?? '')) return this.growFile(pieces);
    for (const p of pieces) if (p.digest !== null && p.size > 0 && !this.has(p.digest)) return Promise.resolve(undefined);
    return this.growFile(pieces);
  }

  private growingFor(pieces: readonly FilePiece[]): Promise<string | undefined> | undefined {
    const digest = wholeFileDigest(pieces);
    return digest === undefined ? undefined : this.growing.get(digest.toString('hex'))?.done;
  }

  /** The growing file of these pieces when no chunk of it is missing any more (only its writes are left). */
  finishingFile(pieces: readonly FilePiece[]): Promise<string | undefined> | undefined {
    const digest = wholeFileDigest(pieces);
    const grow = digest === undefined ? undefined : this.growing.get(digest.toString('hex'));
    return grow !== undefined && grow.file.allIn ? grow.done : undefined;
  }

  /**
   * Starts the file made of these pieces (or joins the one started): a temporary file that
   * each chunk is written into as it is stored (put, a large chunk's commit), those cached
   * already at once. Resolves with its path when it is whole and renamed into place, or
   * with undefined when it cannot be made: larger than a quarter of the quota, too many
   * bytes growing already (half the quota), the disk full, a write failed, or no
   * chunk of it came for GROW_IDLE_MS (given up; logged at debug). Never rejects.
   */
  growFile(pieces: readonly FilePiece[]): Promise<string | undefined> {
    const digest = wholeFileDigest(pieces);
    if (digest === undefined) return Promise.resolve(undefined);
    const hex = digest.toString('hex');
    const size = wholeFileSize(pieces);
    const found = this.foundFile(hex, digest, size, pieces);
    if (found !== undefined) return Promise.resolve(found);
    const joined = this.growing.get(hex);
    if (joined !== undefined) return joined.done;
    // Made by an earlier process and being checked: that file, if it is good.
    const checking = this.checkingFiles.get(hex);
    if (checking !== undefined) return checking.then(() => (this.checkedFiles.has(hex) ? this.foundFile(hex, digest, size, pieces) : this.growFile(pieces)));
    const no = (why: string, detail: object = {}): Promise<undefined> => {
      this.log.debug({ file: hex, size, ...detail }, `whole file not made: ${why}`);
      return Promise.resolve(undefined);
    };
    if (size > this.quotaNow() / 4) return no('larger than a quarter of the quota', { quotaBytes: this.quota });
    this.giveUpIdle();
    let growingBytes = 0;
    for (const g of this.growing.values()) growingBytes += g.file.size;
    if (growingBytes + size > this.quotaNow() / 2) return no('half the quota is being made into whole files already', { growingBytes });
    const tmp = join(this.cfg.root, 'tmp', `${hex}.${process.pid}.${randomBytes(4).toString('hex')}`);
    if (!this.dirs.has(join(this.cfg.root, 'tmp'))) this.makeDirs(join(this.cfg.root, 'chunks'));
    let settle!: (path: string | undefined) => void;
    const done = new Promise<string | undefined>((r) => (settle = r));
    const grow: Growing = { hex, digest, file: new GrowingFile(tmp, pieces), done, settle, counted: 0, over: false };
    this.growing.set(hex, grow);
    this.growTimer ??= setInterval(() => this.giveUpIdle(), GROW_IDLE_MS / 4).unref();
    for (const [chunk, chunkSize] of grow.file.missing()) {
      const source = this.hot(chunk) ?? (this.verifiedFile(Buffer.from(chunk, 'hex')) !== undefined ? this.path(chunk) : undefined);
      if (source !== undefined) {
        void this.growWrite(grow, chunk, source);
        continue;
      }
      let wanting = this.wanted.get(chunk);
      if (wanting === undefined) this.wanted.set(chunk, (wanting = new Set()));
      wanting.add(grow);
      // On disk from an earlier process: checked once (get hashes it), then written.
      const d = Buffer.from(chunk, 'hex');
      if (this.has(d)) {
        void this.get(d, chunkSize).then(
          (data) => (data !== undefined ? this.growWrite(grow, chunk, data) : undefined),
          () => undefined,
        );
      }
    }
    if (grow.file.whole) void this.growWrite(grow, '', Buffer.alloc(0));
    return done;
  }

  /** A verified chunk stored: written into every file growing that wants it. */
  private feed(hex: string, source: PieceSource): void {
    const wanting = this.wanted.get(hex);
    if (wanting === undefined) return;
    this.wanted.delete(hex);
    for (const grow of wanting) void this.growWrite(grow, hex, source);
  }

  /** One chunk into a growing file, room made first; the file placed once whole, given up on any failure. */
  private async growWrite(grow: Growing, hex: string, source: PieceSource): Promise<void> {
    const bytes = grow.file.bytesFor(hex);
    // From its own chunk file: eviction passes that chunk by while it is copied.
    const pin = typeof source === 'string' && bytes > 0;
    if (pin) this.pinned.set(hex, (this.pinned.get(hex) ?? 0) + 1);
    // Counted against the quota from now until the file is placed (then in `used`) or given up.
    this.assemblingBytes += bytes;
    grow.counted += bytes;
    try {
      if (bytes > 0) {
        // As for a chunk file (writeFile): room made, then written; writes in flight together share the eviction.
        if (this.used + this.inFlight() > this.quotaNow()) await this.evict(Math.max(0, this.quota - this.inFlight()));
        if (grow.over) return;
        await grow.file.write(hex, source);
      }
      if (grow.file.whole && !grow.over) await this.place(grow);
    } catch (err) {
      await this.giveUp(grow, err);
    } finally {
      if (pin) {
        const n = (this.pinned.get(hex) ?? 1) - 1;
        if (n > 0) this.pinned.set(hex, n);
        else this.pinned.delete(hex);
      }
    }
  }

  /** A whole grown file renamed into place: served by this process at once, indexed once synced. */
  private async place(grow: Growing): Promise<void> {
    grow.over = true;
    // Still found as growing until it is in place: the same file asked meanwhile (its last
    // close, say) joins this one instead of starting it over.
    const dest = this.filePath(grow.hex);
    const size = grow.file.size;
    try {
      await grow.file.close();
      await mkdir(dirname(dest), { recursive: true });
      await renameAsync(grow.file.tmp, dest);
    } catch (err) {
      await this.dropGrowing(grow, err);
      return;
    }
    // Served by this process at once (its page cache holds what it wrote); indexed, and so
    // trusted by later processes, only once it is on disk (makeDurable): the caller opens
    // it next, and a 512 MiB sync would be in the way of that open.
    this.forgottenFiles.delete(grow.hex);
    this.used += size;
    this.assemblingBytes -= grow.counted;
    grow.counted = 0;
    this.checkedFiles.add(grow.hex);
    this.unsynced.set(grow.hex, size);
    if (this.growing.get(grow.hex) === grow) this.growing.delete(grow.hex);
    void this.makeDurable(grow.hex, grow.digest, size, dest);
    this.log.debug({ file: grow.hex, size }, 'whole file assembled');
    grow.settle(dest);
  }

  /** Gives a growing file up: its temporary file removed, its waiters told undefined. */
  private async giveUp(grow: Growing, why: unknown): Promise<void> {
    if (grow.over) return;
    grow.over = true;
    await this.dropGrowing(grow, why);
  }

  /** A growing file that is over (given up, or its placing failed): forgotten, its bytes uncounted, its temporary file removed. */
  private async dropGrowing(grow: Growing, why: unknown): Promise<void> {
    if (this.growing.get(grow.hex) === grow) this.growing.delete(grow.hex);
    this.assemblingBytes -= grow.counted;
    grow.counted = 0;
    for (const [hex] of grow.file.missing()) {
      const wanting = this.wanted.get(hex);
      wanting?.delete(grow);
      if (wanting?.size === 0) this.wanted.delete(hex);
    }
    grow.settle(undefined);
    await grow.file.discard();
    // A full disk, the cache cleared meanwhile (ENOENT), a chunk file gone or torn, or no
    // chunk for a while: no trouble worth a warning, the file is read the usual way.
    const code = errnoCode(why);
    const detail = { file: grow.hex, size: grow.file.size, written: grow.file.written };
    if (why === IDLE || DISK_FULL_CODES.has(code) || code === 'ENOENT' || code === 'SGZ_CACHE_CORRUPT') this.log.debug({ ...detail, why: why === IDLE ? 'idle' : code }, 'whole file given up');
    else this.log.warn({ ...detail, err: why }, 'whole file given up');
  }

  /** Gives up the files no chunk came for in GROW_IDLE_MS. */
  private giveUpIdle(): void {
    const before = Date.now() - GROW_IDLE_MS;
    for (const g of this.growing.values()) if (g.file.lastWrite < before) void this.giveUp(g, IDLE);
    if (this.growing.size === 0 && this.growTimer !== undefined) {
      clearInterval(this.growTimer);
      this.growTimer = undefined;
    }
  }

  /** Hashes an assembled file an earlier process made, piece by piece; served from then on if every piece matches, else dropped. */
  private checkWhole(hex: string, digest: Buffer, size: number, pieces: readonly FilePiece[]): void {
    if (this.checkingFiles.has(hex)) return;
    const check = (async () => {
      const fh = await open(this.filePath(hex), 'r');
      try {
        const buf = Buffer.allocUnsafe(Math.min(size, CHECK_PIECE_BYTES));
        let pos = 0;
        for (const p of pieces) {
          const h = createHash('sha256');
          for (let done = 0; done < p.size; ) {
            const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, p.size - done), pos + done);
            if (bytesRead === 0) return false;
            const got = buf.subarray(0, bytesRead);
            if (p.digest === null) {
              if (got.some((b) => b !== 0)) return false;
            } else {
              h.update(got);
            }
            done += bytesRead;
          }
          if (p.digest !== null && !h.digest().equals(p.digest)) return false;
          pos += p.size;
        }
        return true;
      } finally {
        await fh.close();
      }
    })().then(
      (ok) => {
        if (ok) this.checkedFiles.add(hex);
        else {
          this.log.warn({ file: hex, size }, 'assembled file does not hold its chunks\' bytes; dropped');
          void this.dropFile(hex, digest, size).catch(() => undefined);
        }
      },
      (err: unknown) => this.log.debug({ err, file: hex }, 'assembled file not checked'),
    ).finally(() => this.checkingFiles.delete(hex));
    this.checkingFiles.set(hex, check);
  }

  /**
   * Syncs an assembled file, then indexes it: a row means the bytes are on disk, so a later
   * process may trust the file by its size (foundFile). A crash before the row leaves a file
   * without one, which gc removes. A file that cannot be synced or indexed goes.
   */
  private makeDurable(hex: string, digest: Buffer, size: number, path: string): Promise<void> {
    const done = (async () => {
      try {
        const fh = await open(path, 'r');
        try {
          await fh.datasync();
        } finally {
          await fh.close();
        }
        if (!this.db.open || this.unsynced.get(hex) !== size) return;
        this.sFilePut.run(digest, size, Date.now());
        this.unsynced.delete(hex);
      } catch (err) {
        if (this.unsynced.delete(hex)) {
          this.used -= size;
          this.checkedFiles.delete(hex);
          await unlink(path).catch(() => undefined);
        }
        this.log.debug({ err, file: hex }, 'assembled file not synced; dropped');
      }
    })();
    this.syncing.add(done);
    void done.finally(() => this.syncing.delete(done));
    return done;
  }

  /** Removes an assembled file and its index row (see drop); true if the row was still there. */
  private async dropFile(hex: string, digest: Buffer, size: number): Promise<boolean> {
    this.touchedFiles.delete(hex);
    this.checkedFiles.delete(hex);
    let removed = false;
    if (!this.forgottenFiles.has(hex)) {
      try {
        removed = this.sFileDel.run(digest).changes === 1;
      } catch {
        this.forgottenFiles.set(hex, size);
        removed = true;
      }
    }
    // A process reading it keeps its descriptor, and the same bytes.
    await unlinkIfThere(this.filePath(hex));
    return removed;
  }

  /**
   * A chunk file's bytes through the descriptor LRU: a chunk read again after it left the
   * memory LRU costs a pread, not an open and a close. A descriptor of a file evicted
   * meanwhile still reads the same (content-addressed) bytes.
   */
  private async readChunkFile(hex: string): Promise<Buffer> {
    const fd = await this.chunkFile(hex);
    const data = Buffer.allocUnsafe(fd.size);
    try {
      const { bytesRead } = await fd.fh.read(data, 0, fd.size, 0);
      return data.subarray(0, bytesRead);
    } catch (err) {
      // Closed by the LRU between lookup and read: open it afresh.
      if (this.fds.get(hex) === fd || !['EBADF', 'EBUSY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      return this.readChunkFile(hex);
    }
  }

  /**
   * Bytes [from, to) of a stored chunk, read from its file alone: for chunks too large to
   * hold (large-chunk.ts). The file is checked once per process (its size, and its sha256
   * streamed in pieces) before any of it is served; a torn or corrupt file is dropped and
   * counts as a miss. Undefined on a miss.
   */
  async readRange(digest: Buffer, size: number, from: number, to: number): Promise<Buffer | undefined> {
    const hex = digest.toString('hex');
    let fd: { fh: FileHandle; size: number };
    try {
      fd = await this.chunkFile(hex);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
    if (!this.verified.has(hex)) {
      let check = this.checking.get(hex);
      if (check === undefined) {
        check = this.checkFile(fd, digest, size).finally(() => this.checking.delete(hex));
        this.checking.set(hex, check);
      }
      if (!(await check)) {
        this.log.warn({ digest: hex, size: fd.size, expected: size }, 'cached chunk is torn or corrupt; dropped');
        await this.drop(hex, digest);
        return undefined;
      }
      this.verified.add(hex);
      this.feed(hex, this.path(hex));
    }
    const out = Buffer.allocUnsafe(to - from);
    let got = 0;
    try {
      while (got < out.length) {
        const { bytesRead } = await fd.fh.read(out, got, out.length - got, from + got);
        if (bytesRead === 0) break;
        got += bytesRead;
      }
    } catch (err) {
      // Closed by the LRU between lookup and read: open it afresh.
      if (this.fds.get(hex) === fd || !['EBADF', 'EBUSY'].includes((err as NodeJS.ErrnoException).code ?? '')) throw err;
      return this.readRange(digest, size, from, to);
    }
    if (got < out.length) return undefined;
    this.touch(hex);
    return out;
  }

  /** Whether a chunk file has the size and sha256 it should, hashed in pieces (bounded memory). */
  private async checkFile(fd: { fh: FileHandle; size: number }, digest: Buffer, size: number): Promise<boolean> {
    if (fd.size !== size) return false;
    const h = createHash('sha256');
    const piece = Buffer.allocUnsafe(Math.min(size, CHECK_PIECE_BYTES));
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await fd.fh.read(piece, 0, Math.min(piece.length, size - pos), pos);
      if (bytesRead === 0) return false;
      h.update(piece.subarray(0, bytesRead));
      pos += bytesRead;
    }
    return h.digest().equals(digest);
  }

  /**
   * A writer for a chunk too large to hold in memory: the caller writes its bytes in
   * order, hashing them as it goes, and commits only once they matched the digest. Runs
   * of zeros become holes. Undefined when the chunk could never fit the quota.
   */
  createWriter(digest: Buffer, size: number): ChunkWriter | undefined {
    if (size > this.quotaNow()) return undefined;
    const hex = digest.toString('hex');
    const dir = join(this.cfg.root, 'chunks', hex.slice(0, 2));
    const tmp = join(this.cfg.root, 'tmp', `${hex}.${process.pid}.${randomBytes(4).toString('hex')}`);
    let fh: Promise<FileHandle> | undefined;
    let pos = 0;
    const handle = (): Promise<FileHandle> => {
      fh ??= (async () => {
        if (!this.dirs.has(dir)) this.makeDirs(dir);
        return open(tmp, 'w');
      })();
      return fh;
    };
    const close = async (): Promise<void> => {
      if (fh !== undefined) await (await fh.catch(() => undefined))?.close().catch(() => undefined);
    };
    return {
      write: async (piece) => {
        const f = await handle();
        if (!isZeros(piece)) {
          for (let done = 0; done < piece.length; ) done += (await f.write(piece, done, piece.length - done, pos + done)).bytesWritten;
        }
        pos += piece.length;
      },
      commit: async () => {
        const f = await handle();
        await f.truncate(pos);
        await close();
        await renameAsync(tmp, this.path(hex));
        this.verified.add(hex);
        this.feed(hex, this.path(hex));
        this.unindexed.set(hex, [digest, size, Date.now()]);
        this.indexTimer ??= setTimeout(() => this.flush(), INDEX_FLUSH_MS).unref();
        this.used += size;
        if (this.used + this.assemblingBytes > this.quotaNow()) await this.evict(Math.max(0, this.quota - this.assemblingBytes));
      },
      abort: async () => {
        await close();
        await unlink(tmp).catch(() => undefined);
      },
    };
  }

  /** An open chunk file through the descriptor LRU. */
  private async chunkFile(hex: string): Promise<{ fh: FileHandle; size: number }> {
    let fd = this.fds.get(hex);
    if (fd === undefined) {
      const fh = await open(this.path(hex), 'r');
      try {
        fd = { fh, size: (await fh.stat()).size };
      } catch (err) {
        await fh.close();
        throw err;
      }
      this.fds.set(hex, fd);
    }
    return fd;
  }

  /**
   * Stores a verified chunk (callers hash before calling). Safe to race with other
   * processes. The chunk is in the memory LRU at once. With `writeBehind` its file is
   * written later, once puts pause or WRITE_DEFER_BYTES are queued (a read never waits
   * for the disk), unless WRITE_BEHIND_BYTES are already waiting, when the caller waits:
   * a slow disk slows fetching instead of filling memory. Write errors are logged;
   * drain() writes and waits for everything.
   */
  async put(digest: Buffer, data: Buffer): Promise<void> {
    const hex = digest.toString('hex');
    this.memory.set(hex, data);
    this.verified.add(hex);
    this.feed(hex, data);
    if (this.cfg.writeBehind !== true) {
      this.pendingBytes += data.length;
      await this.track(hex, digest, data).written;
      return;
    }
    if (this.queued.has(hex) || this.writing.has(hex)) return;
    if (this.queued.size === 0) this.queuedSince = performance.now();
    this.queued.set(hex, { digest, data });
    this.queuedBytes += data.length;
    this.pendingBytes += data.length;
    if (this.queuedBytes > WRITE_DEFER_BYTES) {
      this.writeQueued();
    } else {
      if (this.queueTimer !== undefined) clearTimeout(this.queueTimer);
      const wait = Math.min(WRITE_QUIET_MS, Math.max(0, this.queuedSince + WRITE_MAX_DELAY_MS - performance.now()));
      this.queueTimer = setTimeout(() => this.writeQueued(), wait).unref();
    }
    if (this.pendingBytes > WRITE_BEHIND_BYTES) {
      this.writeQueued();
      await Promise.all([...this.pending]);
    }
  }

  /** Starts writing every queued chunk. */
  private writeQueued(): void {
    if (this.queueTimer !== undefined) clearTimeout(this.queueTimer);
    this.queueTimer = undefined;
    for (const [hex, { digest, data }] of this.queued) {
      this.writing.set(hex, data);
      void this.track(hex, digest, data).done.finally(() => {
        if (this.writing.get(hex) === data) this.writing.delete(hex);
      });
    }
    this.queued.clear();
    this.queuedBytes = 0;
  }

  /**
   * Writes one chunk's file (its bytes already counted in pendingBytes), tracked for
   * drain(): `written` rejects on failure, `done` logs it instead.
   */
  private track(hex: string, digest: Buffer, data: Buffer): { written: Promise<void>; done: Promise<void> } {
    const written = this.write(hex, digest, data);
    const done = written
      .catch(() => undefined) // write() has counted and reported it
      .finally(() => {
        this.pendingBytes -= data.length;
        this.pending.delete(done);
      });
    this.pending.add(done);
    return { written, done };
  }

  /** Writes every queued chunk, waits for every write in flight, and indexes them. */
  async drain(): Promise<void> {
    this.writeQueued();
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    await Promise.all([...this.syncing]);
    this.flush();
  }

  /**
   * Writes a chunk's file. A full disk is no error for the caller: the chunk stays in
   * memory, the quota is lowered so that eviction makes room, and while even that does not
   * help no file is tried until the disk has room again (warned about once). Other failures
   * are counted, warned about once per errno code, and thrown.
   */
  private async write(hex: string, digest: Buffer, data: Buffer): Promise<void> {
    let stored: boolean;
    try {
      stored = await this.writeOrRedo(hex, digest, data);
    } catch (err) {
      this.writeErrors++;
      this.lastWriteError = errnoCode(err);
      if (!DISK_FULL_CODES.has(errnoCode(err))) {
        this.writeFailed(err);
        throw err;
      }
      this.diskIsFull({ code: errnoCode(err) });
      stored = (await this.shrinkToDisk(data.length)) && (await this.writeOrRedo(hex, digest, data).catch(() => false));
    }
    if (!stored) {
      this.memoryOnly++;
      if (this.quota < data.length) {
        // The disk has no room for even this chunk (statfs said so before a write failed).
        this.lastWriteError = 'ENOSPC';
        this.diskIsFull({ code: 'ENOSPC' });
      }
      return;
    }
    if (this.failing !== undefined) {
      this.log.info({ after: this.failing, memoryOnlyChunks: this.memoryOnly, quotaBytes: this.quota }, 'cache writable again');
      this.failing = undefined;
    }
  }

  private async writeOrRedo(hex: string, digest: Buffer, data: Buffer): Promise<boolean> {
    try {
      return await this.writeFile(hex, digest, data);
    } catch (err) {
      // Another process may have cleared the cache, directories included: once more from scratch.
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      this.dirs.clear();
      return await this.writeFile(hex, digest, data);
    }
  }

  /** Warns once per errno code while chunk files keep failing to be written (a full disk aside). */
  private writeFailed(err: unknown): void {
    const code = errnoCode(err);
    if (this.failing === code) return;
    this.failing = code;
    this.log.warn({ err }, 'chunk files cannot be written to the cache; chunks kept in memory only');
  }

  /**
   * The disk filled before the quota did: the quota becomes what the cache held then, less
   * room for this chunk and the ones that follow (an eighth), so that writing does not fail
   * at every chunk; least recently used chunks are evicted down to it. Whether `size` more
   * bytes then fit.
   */
  private async shrinkToDisk(size: number): Promise<boolean> {
    const now = Date.now();
    if (now >= this.lowerAfter) {
      this.quota = Math.min(this.quota, Math.max(0, Math.floor(this.used - Math.max(size, this.used / 8))));
      this.lowerAfter = now + SPACE_CHECK_MS;
      this.nextSpaceCheck = now + SPACE_CHECK_MS;
    }
    if (this.quota < size) return false;
    await this.evict(this.quota - size);
    return true;
  }

  /**
   * Writes the file, room made first: the files being written count against the quota, so
   * that a burst written behind (up to WRITE_DEFER_BYTES at once) cannot fill a disk smaller
   * than the burst before eviction catches up. False when the chunk does not fit beside the
   * writes in flight even with everything else evicted (it stays in memory only).
   */
  private async writeFile(hex: string, digest: Buffer, data: Buffer): Promise<boolean> {
    const dir = join(this.cfg.root, 'chunks', hex.slice(0, 2));
    const tmpDir = join(this.cfg.root, 'tmp');
    const tmp = join(tmpDir, `${hex}.${process.pid}.${randomBytes(4).toString('hex')}`);
    if (data.length > this.quotaNow()) return false;
    await this.writeSlot(data.length);
    try {
      if (this.used + this.inFlight() > this.quota) await this.evict(Math.max(0, this.quota - this.inFlight()));
      if (!this.dirs.has(dir)) this.makeDirs(dir);
      try {
        await writeFileAsync(tmp, data);
        await renameAsync(tmp, this.path(hex));
      } catch (err) {
        // A write cut short by a full disk left its temporary file behind, one per chunk.
        await unlink(tmp).catch(() => undefined);
        throw err;
      }
      this.unindexed.set(hex, [digest, data.length, Date.now()]);
      this.forgotten.delete(hex);
      this.indexTimer ??= setTimeout(() => this.flush(), INDEX_FLUSH_MS).unref();
      this.used += data.length;
    } finally {
      this.releaseSlot(data.length);
    }
    return true;
  }

  /**
   * Waits until a file of `size` bytes may be written: at most a quarter of the quota is in
   * flight (or one file), so that eviction makes room for the files being written before they
   * land and still leaves the cache most of its quota. Unbounded, a burst written behind
   * (WRITE_DEFER_BYTES at once) on a small disk evicted the whole cache for every write.
   */
  private async writeSlot(size: number): Promise<void> {
    if (this.slotWaiters.length === 0 && this.fitsInFlight(size)) {
      this.writingBytes += size;
      return;
    }
    await new Promise<void>((go) => this.slotWaiters.push({ size, go }));
  }

  /** Bytes being written now and not yet counted in `used`: chunk files and the whole file being assembled. */
  private inFlight(): number {
    return this.writingBytes + this.assemblingBytes;
  }

  private fitsInFlight(size: number): boolean {
    return this.writingBytes === 0 || this.writingBytes + size <= this.quota / 4;
  }

  private releaseSlot(size: number): void {
    this.writingBytes -= size;
    for (let w = this.slotWaiters[0]; w !== undefined && this.fitsInFlight(w.size); w = this.slotWaiters[0]) {
      this.slotWaiters.shift();
      this.writingBytes += w.size;
      w.go();
    }
  }

  /**
   * `dir` (a fan-out directory) and the parents and tmp/ if not made yet, synchronously:
   * a `mkdir -p` through the thread pool per first chunk in each cost more main-thread
   * time, and all 256 at once (17 ms) sat on the first read's path.
   */
  private makeDirs(dir: string): void {
    const tmp = join(this.cfg.root, 'tmp');
    if (!this.dirs.has(tmp)) {
      mkdirSync(tmp, { recursive: true });
      mkdirSync(join(this.cfg.root, 'chunks'), { recursive: true });
      this.dirs.add(tmp);
    }
    try {
      mkdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    this.dirs.add(dir);
  }

  private touch(hex: string): void {
    this.touched.set(hex, Date.now());
    this.flushTimer ??= setTimeout(() => this.flush(), LAST_USE_FLUSH_MS).unref();
  }

  /** Writes the batched index rows of new chunks, then the batched last-use times (of assembled files too). */
  flush(): void {
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    if (this.indexTimer !== undefined) clearTimeout(this.indexTimer);
    this.flushTimer = undefined;
    this.indexTimer = undefined;
    if (this.touched.size === 0 && this.unindexed.size === 0 && this.forgotten.size === 0 && this.touchedFiles.size === 0 && this.forgottenFiles.size === 0) return;
    const rows = [...this.unindexed.values()];
    const forgotten = [...this.forgotten.keys()];
    const touched = [...this.touched];
    const forgottenFiles = [...this.forgottenFiles.keys()];
    const touchedFiles = [...this.touchedFiles];
    this.unindexed.clear();
    this.touched.clear();
    this.touchedFiles.clear();
    // A fetch decoded after close() still stores its chunks; their rows are left for gc()
    // to adopt. This also runs from a timer, where a throw would end the process.
    if (!this.db.open) return;
    try {
      this.db.transaction(() => {
        for (const hex of forgotten) this.sDel.run(Buffer.from(hex, 'hex'));
        for (const [digest, size, at] of rows) this.sPut.run(digest, size, at);
        for (const [hex, at] of touched) this.sTouch.run(at, Buffer.from(hex, 'hex'));
        for (const hex of forgottenFiles) this.sFileDel.run(Buffer.from(hex, 'hex'));
        for (const [hex, at] of touchedFiles) this.sFileTouch.run(at, Buffer.from(hex, 'hex'));
      })();
      this.indexFailing = false;
      for (const hex of forgotten) this.forgotten.delete(hex);
      for (const hex of forgottenFiles) this.forgottenFiles.delete(hex);
    } catch (err) {
      // Once per streak: a full disk fails every batch. The rows are tried again with the
      // next batch; until then eviction counts and removes their files from here.
      if (!this.indexFailing) this.log.warn({ err, chunks: rows.length }, 'chunk cache index not updated; tried again with the next batch');
      this.indexFailing = true;
      for (const row of rows) {
        const hex = row[0].toString('hex');
        if (!this.unindexed.has(hex)) this.unindexed.set(hex, row);
      }
    }
  }

  /**
   * Evicts least recently used chunks and assembled files until the cache holds at most
   * `target` bytes. The chunks an assembly is reading from are passed by.
   */
  evict(target: number): Promise<{ evicted: number; freed: number }> {
    // One eviction at a time: two walking the same oldest rows would count them twice.
    const run = this.evicting.then(() => this.evictNow(target));
    this.evicting = run.catch(() => undefined);
    return run;
  }

  private async evictNow(target: number): Promise<{ evicted: number; freed: number }> {
    this.flush();
    // Other processes add chunks too: start from the index, not from our running total
    // (plus the rows a failed index write left to the next batch).
    let unindexedBytes = 0;
    for (const [, size] of this.unindexed.values()) unindexedBytes += size;
    for (const size of this.forgotten.values()) unindexedBytes -= size;
    for (const size of this.forgottenFiles.values()) unindexedBytes -= size;
    this.used = (this.sUsage.get() as CacheUsage).bytes + unindexedBytes;
    let evicted = 0;
    let freed = 0;
    while (this.used > target) {
      // Enough rows that some are left once those passed by are: none left means none to evict.
      const skipped = this.forgotten.size + this.forgottenFiles.size + this.pinned.size;
      const rows = (this.sOldest.all(256 + skipped) as Array<{ digest: Buffer; size: number; file: 0 | 1 }>).filter((r) => {
        const hex = r.digest.toString('hex');
        return r.file === 1 ? !this.forgottenFiles.has(hex) : !this.forgotten.has(hex) && !this.pinned.has(hex);
      });
      if (rows.length === 0) {
        // Only files the index could not take are left: the oldest go first.
        const stray = [...this.unindexed].filter(([hex]) => !this.pinned.has(hex)).sort((a, b) => a[1][2] - b[1][2]);
        for (const [hex, [digest, size]] of stray) {
          if (this.used <= target) break;
          if (await this.drop(hex, digest, true)) {
            this.used -= size;
            freed += size;
            evicted++;
          }
        }
        break;
      }
      for (const r of rows) {
        if (this.used <= target) break;
        // Another process may have dropped it first; only what this call removed counts.
        const hex = r.digest.toString('hex');
        if (r.file === 1 ? await this.dropFile(hex, r.digest, r.size) : await this.drop(hex, r.digest, true)) {
          this.used -= r.size;
          freed += r.size;
          evicted++;
        }
      }
      if (evicted === 0 && freed === 0) this.used = (this.sUsage.get() as CacheUsage).bytes;
    }
    if (evicted > 0) this.log.debug({ evicted, freed }, 'chunk cache evicted');
    return { evicted, freed };
  }

  private sizeOf(digest: Buffer): number {
    return (this.sSize.get(digest) as number | undefined) ?? 0;
  }

  /**
   * Removes a chunk's file and index row; true if the row was still there. An evicted
   * chunk stays in the memory LRU (it was verified, and that LRU has its own bound):
   * dropping it there too made a cache shrinking on a full disk fetch it again.
   */
  private async drop(hex: string, digest: Buffer, evicting = false): Promise<boolean> {
    if (!evicting) this.memory.delete(hex);
    const q = this.queued.get(hex);
    if (q !== undefined) {
      this.queued.delete(hex);
      this.queuedBytes -= q.data.length;
      this.pendingBytes -= q.data.length;
    }
    this.fds.delete(hex);
    this.verified.delete(hex);
    this.touched.delete(hex);
    let removed = this.unindexed.delete(hex);
    if (!removed && !this.forgotten.has(hex)) {
      try {
        removed = this.sDel.run(digest).changes === 1;
      } catch {
        // The index cannot be written now (SQLITE_FULL on a full disk): the file still goes,
        // which is the space wanted, and the row with the next batch that can be written.
        this.forgotten.set(hex, this.sizeOf(digest));
        removed = true;
      }
    }
    await unlinkIfThere(this.path(hex));
    return removed;
  }

  usage(): CacheUsage {
    this.flush();
    const u = this.sUsage.get() as { chunks: number; bytes: number; files: number; fileBytes: number };
    return { chunks: u.chunks, bytes: u.bytes, files: u.files, fileBytes: u.fileBytes, quotaBytes: this.quotaNow() };
  }

  /** Removes every chunk and assembled file (and leftover temporary files). */
  async clear(): Promise<CacheUsage> {
    const before = this.usage();
    await Promise.all([...this.growing.values()].map((g) => this.giveUp(g, IDLE)));
    this.db.prepare('DELETE FROM cache_chunks').run();
    this.db.prepare('DELETE FROM cache_files').run();
    this.touchedFiles.clear();
    this.forgottenFiles.clear();
    this.checkedFiles.clear();
    if (this.queueTimer !== undefined) clearTimeout(this.queueTimer);
    this.queueTimer = undefined;
    for (const { data } of this.queued.values()) this.pendingBytes -= data.length;
    this.queued.clear();
    this.queuedBytes = 0;
    this.unindexed.clear();
    this.memory.clear();
    this.fds.clear();
    this.verified.clear();
    this.used = 0;
    this.dirs.clear();
    await rm(join(this.cfg.root, 'chunks'), { recursive: true, force: true });
    await rm(join(this.cfg.root, 'files'), { recursive: true, force: true });
    await rm(join(this.cfg.root, 'tmp'), { recursive: true, force: true });
    return before;
  }

  /**
   * Brings the cache back to its quota, indexes chunk files a killed process renamed into
   * place but never recorded, removes assembled files never indexed (not known to be on
   * disk whole: see makeDurable) and temporary files older than an hour.
   */
  async gc(): Promise<{ evicted: number; freed: number; adopted: number; tmpRemoved: number }> {
    let adopted = 0;
    let tmpRemoved = 0;
    const chunks = join(this.cfg.root, 'chunks');
    for (const sub of await readdir(chunks).catch(() => [] as string[])) {
      for (const name of await readdir(join(chunks, sub)).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const digest = Buffer.from(name, 'hex');
        if (this.sHas.get(digest) !== undefined) continue;
        const st = await stat(join(chunks, sub, name)).catch(() => undefined);
        if (st === undefined) continue;
        this.db.prepare('INSERT OR IGNORE INTO cache_chunks (digest, size, last_use) VALUES (?, ?, ?)').run(digest, st.size, st.mtimeMs);
        adopted++;
      }
    }
    const files = join(this.cfg.root, 'files');
    for (const sub of await readdir(files).catch(() => [] as string[])) {
      for (const name of await readdir(join(files, sub)).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}$/.test(name)) continue;
        const digest = Buffer.from(name, 'hex');
        if (this.sFileSize.get(digest) !== undefined || this.unsynced.has(name)) continue;
        // Never indexed: its process died before the sync that comes before the row, so
        // its bytes may never have reached the disk. Removed, not adopted.
        await unlink(join(files, sub, name)).catch(() => undefined);
        tmpRemoved++;
      }
    }
    tmpRemoved += await this.sweepTmp(true);
    const { evicted, freed } = await this.evict(this.quotaNow());
    return { evicted, freed, adopted, tmpRemoved };
  }

  /**
   * Removes the temporary files of writers that are gone (a process killed mid-write
   * leaves its file behind; the names carry the writer's pid) and, with `old`, any older
   * than an hour. How many were removed.
   */
  async sweepTmp(old = false): Promise<number> {
    const tmp = join(this.cfg.root, 'tmp');
    let removed = 0;
    for (const name of await readdir(tmp).catch(() => [] as string[])) {
      const pid = Number(TMP_WRITER.exec(name)?.[1] ?? 0);
      let gone = pid > 0 && pid !== process.pid && !alive(pid);
      if (!gone && old) {
        const st = await stat(join(tmp, name)).catch(() => undefined);
        gone = st !== undefined && Date.now() - st.mtimeMs > 3600_000;
      }
      if (gone) {
        await rm(join(tmp, name), { force: true, recursive: true });
        removed++;
      }
    }
    return removed;
  }

  close(): void {
    for (const g of this.growing.values()) void this.giveUp(g, IDLE);
    this.flush();
    this.fds.clear();
  }
}
