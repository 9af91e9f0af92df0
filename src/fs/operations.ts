// FUSE operations over an image view: inode numbers are meta.db node ids (the view's root
// answers as FUSE's root, 1), attributes as the reference reports them, file bytes from
// the FileReader, and a hidden status directory /.stargzfs/ reachable by path only.
// Every request is answered exactly once; errors become errno in fs/errno.ts and are
// logged once with the operation and path.
import { constants } from 'node:os';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import type { FileReader } from '../layer/file-reader.js';
import { S_IFDIR, S_IFLNK, S_IFMT, S_IFREG } from '../toc/inode-db.js';
import { resolvePath, type DirEntry, type ImageView, type ViewNode } from '../toc/view.js';
import { errnoOf } from './errno.js';
import { StaleInodeError } from '../errors.js';
import { ATTR_SLOTS, FuseOp, type Attr, type CachedWhy, type FuseHandler, type FuseNoticeCall, type FuseRequestCall, type FuseSession, type Req } from './fuse-binding.js';
import { OpTimer, type OpObserver } from './op-timer.js';

const E = constants.errno;
const ROOT = 1;
/** The image never changes under a mount: entries and attributes may be cached long. */
const TTL = 24 * 3600;
/**
 * The lookup count of an inode found again after a hand-over: the kernel's count is not
 * known, so it is never forgotten (a small integer keeps the field unboxed).
 */
const PINNED = 2 ** 30;
/** Nodes kept by inode number for requests in a row on the same inodes. */
const RECENT_NODES = 16384;
/** How long an open waits for a file whose every chunk is in, being written into its plain file (passthrough then). */
const FINISHING_WAIT_MS = 300;
/**
 * Synthetic inodes of the status directory, far above any meta.db node id: an image
 * cannot make an entry with these numbers, so `stargzfs status` checks them.
 */
export const STATUS_DIR_INO = 2 ** 52;
export const STATUS_FILE_INO = 2 ** 52 + 1;
export const STATUS_DIR = '.stargzfs';
export const STATUS_FILE = 'status.json';

/**
 * An inode the kernel holds, as little as can be kept for 200k of them: its name under
 * the directory it was first found in. Its node is looked up again from there when
 * asked for (a small cache keeps the recent ones), and its path is the names up to the root.
 */
interface Known {
  lookups: number;
  parent: number;
  name: string;
  /** A file with other names (hard links): kept, as the directory it was found in may be forgotten first. */
  node?: ViewNode;
}

/** An inode's node, and its path (worked out when read). */
interface Resolved {
  readonly node: ViewNode;
  readonly path: string;
}

interface DirHandle {
  node: ViewNode;
  /** `.`, `..`, then the listing as of opendir, nodes included (one query, not one per name). */
  entries: DirEntry[];
}

interface FileHandle {
  node: ViewNode;
  path: string;
  /** The status file's bytes as of open. */
  snapshot?: Buffer;
}

function makedev(major: number, minor: number): number {
  // glibc's encoding, in floating point: the values fit well within 2^53.
  return (minor & 0xff) + (major & 0xfff) * 256 + Math.floor(minor / 256) * 2 ** 20 + Math.floor(major / 4096) * 2 ** 32;
}

export function attrOf(n: ViewNode): Attr {
  const a = new Float64Array(ATTR_SLOTS);
  attrInto(n, a, 0);
  return a;
}

/** The node's Attr written into `out` at `at` (9 numbers). */
function attrInto(n: ViewNode, out: Float64Array, at: number): void {
  const type = n.mode & S_IFMT;
  const size = type === S_IFREG || type === S_IFLNK ? n.size : type === S_IFDIR ? 4096 : 0;
  out[at] = n.mode;
  out[at + 1] = n.nlink;
  out[at + 2] = n.uid;
  out[at + 3] = n.gid;
  out[at + 4] = makedev(n.rdevMajor, n.rdevMinor);
  out[at + 5] = size;
  out[at + 6] = Math.ceil(size / 512);
  out[at + 7] = n.mtime ?? 0;
  out[at + 8] = n.mtime === null ? 0 : n.mtimeNsec;
}

const synthetic = (ino: number, mode: number, size: number): ViewNode => ({
  ino, dataId: ino, layerId: 0, mode, uid: 0, gid: 0, size, mtime: null, mtimeNsec: 0, nlink: mode & S_IFDIR ? 2 : 1, rdevMajor: 0, rdevMinor: 0, link: null,
});

/** status.json's `passthrough`. */
export interface PassthroughStatus {
  readonly enabled: boolean;
  /** Why passthrough is off for the whole mount. */
  readonly off?: string;
  /** Opens since the mount began: passthrough, and through the page cache. */
  readonly opens: number;
  readonly cachedOpens: number;
  /** This server's opens through the page cache, by why (with passthrough on). */
  readonly cachedWhy?: CachedWhy;
  readonly backingErrno?: number;
}

export interface OperationsOptions {
  /** The status file's content, made when it is opened or looked up. */
  readonly status: () => unknown;
  /** The loop ended (unmounted, by us or from outside). */
  readonly onExit: (why: string) => void;
  /** The kernel and the session agreed on the protocol (INIT): what a hand-over carries is known from now on. */
  readonly onInit?: (() => void) | undefined;
  /** What statfs reports: the image's uncompressed bytes and its inodes (none free: read-only). */
  readonly size: { readonly bytes: number; readonly files: number };
  /** Called on every request from the kernel: someone is using the filesystem (background fetch waits). */
  readonly onRequest?: (() => void) | undefined;
  /** Called with each request's latency (metrics); off when absent. */
  readonly observeOp?: OpObserver | undefined;
  /** Files as one plain file each, for passthrough (layer/whole-file.ts); none when absent. */
  readonly wholeFiles?: WholeFileSource | undefined;
}

/** A regular file's bytes as one plain file in the cache: found now, or made from its cached chunks. */
export interface WholeFileSource {
  path(node: ViewNode): string | undefined;
  assemble(node: ViewNode): Promise<string | undefined>;
  grow(node: ViewNode): Promise<string | undefined> | undefined;
  /** The file being made whole that waits for no chunk any more, only for its writes. */
  finishing(node: ViewNode): Promise<string | undefined> | undefined;
}

export class FsOperations {
  private readonly nodes = new Map<number, Known>();
  /** Nodes of recently used inodes, so that a burst of requests on one does not look it up each time. */
  private readonly recent = new LRUCache<number, ViewNode>({ max: RECENT_NODES });
  private readonly rootNode: ViewNode;
  private readonly dirs = new Map<number, DirHandle>();
  private readonly files = new Map<number, FileHandle>();
  /** Handles in `files` by inode: a file is mapped whole, or assembled on a release, once none of it is open here. */
  private readonly openHere = new Map<number, number>();
  /**
   * File handles: numbers the kernel hands back with every request on an open file. An
   * earlier server of this mount handed out its own, which the kernel still holds, so each
   * server starts its numbers somewhere else (a handle is checked against its inode anyway).
   */
  private nextFh = (Date.now() % 2 ** 20) * 2 ** 30 + 1;
  private readonly rootIno: number;
  private session: FuseSession | undefined;
  private readonly timer: OpTimer | undefined;
  /** Reads still running in the reader (answered or not): the image must outlive them. */
  private readonly reading = new Set<Promise<void>>();
  /** Inodes whose verified parts the addon holds (unmapped when the kernel forgets them). */
  private readonly mapped = new Set<number>();
  /** Inodes the addon holds as one plain file (opens of them go passthrough). */
  private readonly whole = new Set<number>();
  /** The session ended: nothing new is started on the image. */
  private ended = false;
  /** Inodes the kernel held from an earlier server of this mount, found again by number. */
  private recovered = 0;
  /** The kernel reads files from backing files we name (negotiated at init, or handed over). */
  private passthrough = false;

  constructor(
    private readonly view: ImageView,
    private readonly reader: FileReader,
    private readonly log: Logger,
    private readonly opts: OperationsOptions,
  ) {
    const root = view.root();
    this.rootIno = root.ino;
    this.rootNode = root;
    // Never forgotten (forget skips it); a small integer, not Infinity, so that every Known
    // keeps `lookups` unboxed (one Infinity makes the field a heap number in all 200k).
    this.nodes.set(ROOT, { lookups: 2 ** 30, parent: 0, name: '' });
    this.timer = opts.observeOp !== undefined ? new OpTimer(opts.observeOp) : undefined;
  }

  attach(session: FuseSession): void {
    this.session = this.timer !== undefined ? this.timer.wrap(session) : session;
    this.passthrough = session.passthroughStats().enabled;
    // An image without xattrs: the kernel is told they are not supported and stops asking
    // (two round trips per file of ls -l, one per exec).
    if (!this.view.anyXattrs()) session.setNoXattrs(true);
    session.setHasXattrs(ROOT, this.view.xattrs(this.view.root()).length > 0);
    session.setHasXattrs(STATUS_DIR_INO, false);
    session.setHasXattrs(STATUS_FILE_INO, false);
  }

  /** The handler given to the native session: one call per request. */
  readonly handle: FuseHandler = (...call) => {
    const s = this.session;
    if (call[1] === null) return this.notice(call);
    if (s === undefined) return;
    const [op, req, ino] = call;
    this.opts.onRequest?.();
    // Queued before the session stopped, which has failed it already: this reply is dropped.
    if (this.ended) return s.replyErr(req, E.EIO);
    this.timer?.start(req, op);
    try {
      this.dispatch(s, call);
    } catch (err) {
      this.fail(s, req, op, ino, err);
    }
  };

  private notice(call: FuseNoticeCall): void {
    switch (call[0]) {
      case FuseOp.Init:
        this.passthrough = this.session?.passthroughStats().enabled ?? false;
        this.log.info({ negotiated: call[3] }, 'FUSE session initialised');
        this.opts.onInit?.();
        return;
      case FuseOp.Exit:
        return this.opts.onExit(call[3]);
      case FuseOp.Forget:
        return this.forget(call[2], call[3]);
      case FuseOp.ForgetMulti: {
        const a = call[3];
        for (let i = 0; i < a.length; i += 2) this.forget(a[i] as number, a[i + 1] as number);
        return;
      }
      case FuseOp.Release:
        return this.release(call[2], call[3]);
    }
  }

  /** A file closed (the addon has answered the kernel): its handle goes. */
  private release(ino: number, fh: number): void {
    // A handle an earlier server of this mount gave may have the number of one of ours:
    // only the handle of this very inode is this file's.
    const found = this.files.get(fh);
    const h = found !== undefined && (ino === STATUS_FILE_INO ? found.snapshot !== undefined : this.fuseIno(found.node) === ino) ? found : undefined;
    if (h === undefined) return;
    // Another handle of it still open here: its last release assembles it. Each release
    // of a file 32 readers kept open looked over all its chunks, hundreds of times a
    // second for a server just started (a CPU profile: most of its first second).
    if (this.dropHandle(fh, h) > 0) return;
    // Read through here, and perhaps cached whole by now: one plain file from its chunks, for the next open.
    const s = this.session;
    if (s !== undefined && !this.ended && this.passthrough && !this.whole.has(ino) && (h.node.mode & S_IFMT) === S_IFREG) this.assembleLater(s, ino, h.node);
  }

  private dispatch(s: FuseSession, call: FuseRequestCall): void {
    const [op, req, ino] = call;
    switch (call[0]) {
      case FuseOp.Lookup: return this.lookup(s, req, ino, call[3]);
      case FuseOp.Getattr: {
        const k = this.known(ino);
        return s.replyAttr(req, ino, attrOf(k.node), ino === STATUS_FILE_INO ? 0 : TTL);
      }
      case FuseOp.Opendir: {
        const k = this.known(ino);
        if ((k.node.mode & S_IFMT) !== S_IFDIR) return s.replyErr(req, E.ENOTDIR);
        const fh = this.nextFh++;
        this.dirs.set(fh, this.dirHandle(ino, k.node));
        return s.replyOpen(req, fh, ino !== STATUS_DIR_INO, false);
      }
      case FuseOp.Readdir:
      case FuseOp.Readdirplus:
        return this.readdir(s, req, ino, op === FuseOp.Readdirplus, call[3], call[4], call[5]);
      case FuseOp.Releasedir: {
        const d = this.dirs.get(call[3]);
        if (d !== undefined && this.fuseIno(d.node) === ino) this.dirs.delete(call[3]);
        return s.replyErr(req, 0);
      }
      case FuseOp.Open: return this.open(s, req, ino);
      case FuseOp.Read: return this.read(s, req, ino, call[3], call[4], call[5]);
      case FuseOp.Readlink: {
        const k = this.known(ino);
        if ((k.node.mode & S_IFMT) !== S_IFLNK) return s.replyErr(req, E.EINVAL);
        return s.replyReadlink(req, k.node.link ?? '');
      }
      case FuseOp.Getxattr: return this.getxattr(s, req, ino, call[3], call[4]);
      case FuseOp.Listxattr: return this.listxattr(s, req, ino, call[3]);
      case FuseOp.Statfs:
        return s.replyStatfs(req, Float64Array.of(4096, Math.ceil(this.opts.size.bytes / 4096), 0, 0, this.opts.size.files, 0, 255));
      case FuseOp.Access:
        return s.replyErr(req, 0);
      case FuseOp.Create:
      case FuseOp.Rmdir:
        return s.replyErr(req, E.EROFS);
      default:
        return s.replyErr(req, E.ENOSYS);
    }
  }

  /** `.`, `..` and the listing; the root's leaves out an image entry named like the status directory (readdirplus would hand the kernel that entry, and its dentry would then hide ours). */
  private dirHandle(ino: number, node: ViewNode): DirHandle {
    const entries = ino === STATUS_DIR_INO
      ? [{ name: STATUS_FILE, node: this.statusNode(STATUS_FILE_INO).node }]
      : this.view.list(node).filter((e) => ino !== ROOT || e.name !== STATUS_DIR);
    return { node, entries: [{ name: '.', node }, { name: '..', node }, ...entries] };
  }

  private fileHandle(ino: number, k: Resolved): FileHandle {
    return ino === STATUS_FILE_INO ? { node: k.node, path: k.path, snapshot: this.statusBytes() } : { node: k.node, path: k.path };
  }

  /**
   * An inode the kernel holds but this process never handed out: an earlier server of
   * this mount did (a restart after a crash, an upgrade). Found again from its number
   * alone (meta.db knows its path), and pinned: the kernel's lookup count is not known.
   */
  private recover(ino: number): Known {
    const path = this.view.locate(ino);
    if (path === undefined || path === '') throw this.stale(ino);
    let node: ViewNode;
    try {
      node = resolvePath(this.view, path);
    } catch {
      throw this.stale(ino);
    }
    if (this.fuseIno(node) !== ino) throw this.stale(ino);
    const slash = path.lastIndexOf('/');
    const parent = slash < 0 ? ROOT : this.fuseIno(resolvePath(this.view, path.slice(0, slash)));
    if (!this.nodes.has(parent)) this.recover(parent);
    const linked = (node.mode & S_IFMT) !== S_IFDIR && node.nlink > 1;
    const k: Known = linked ? { lookups: PINNED, parent, name: path.slice(slash + 1), node } : { lookups: PINNED, parent, name: path.slice(slash + 1) };
    this.nodes.set(ino, k);
    this.recent.set(ino, node);
    if (this.recovered++ === 0) this.log.info({ ino, path }, 'serving inodes an earlier server of this mount handed out (found again by number)');
    return k;
  }

  /** How many inodes were found again by number (see recover). */
  recoveredInodes(): number {
    return this.recovered;
  }

  private known(ino: number): Resolved {
    if (ino === STATUS_DIR_INO || ino === STATUS_FILE_INO) return this.statusNode(ino);
    const node = this.nodeOf(ino);
    const pathOf = (): string => this.pathOf(ino);
    return {
      node,
      get path(): string {
        return pathOf();
      },
    };
  }

  private stale(ino: number): Error {
    // The kernel asks only about inodes this mount gave it (this server or an earlier one).
    return new StaleInodeError(ino);
  }

  /** The inode's node: cached, kept, or looked up again under its parent (no recursion: the depth is the image's). */
  private nodeOf(ino: number): ViewNode {
    const chain: number[] = [];
    let base: ViewNode | undefined;
    for (let cur = ino; base === undefined; ) {
      if (cur === ROOT) {
        base = this.rootNode;
        break;
      }
      const k = this.nodes.get(cur) ?? this.recover(cur);
      base = this.recent.get(cur) ?? k.node;
      if (base !== undefined) break;
      chain.push(cur);
      cur = k.parent;
    }
    for (let i = chain.length - 1; i >= 0; i--) {
      const c = chain[i] as number;
      const next = this.view.lookup(base, (this.nodes.get(c) as Known).name);
      if (next === undefined) throw this.stale(c);
      this.recent.set(c, next);
      base = next;
    }
    return base;
  }

  /** The inode's path in the image, from its names up to the root. */
  private pathOf(ino: number): string {
    const names: string[] = [];
    for (let cur = ino; cur !== ROOT; ) {
      const k = this.nodes.get(cur) ?? this.recover(cur);
      names.push(k.name);
      cur = k.parent;
    }
    return names.reverse().join('/');
  }

  private statusNode(ino: number): Resolved {
    if (ino === STATUS_DIR_INO) return { node: synthetic(STATUS_DIR_INO, S_IFDIR | 0o555, 0), path: STATUS_DIR };
    return { node: synthetic(STATUS_FILE_INO, S_IFREG | 0o444, this.statusBytes().length), path: `${STATUS_DIR}/${STATUS_FILE}` };
  }

  private statusBytes(): Buffer {
    return Buffer.from(`${JSON.stringify(this.opts.status(), null, 2)}\n`);
  }

  private fuseIno(n: ViewNode): number {
    return n.ino === this.rootIno ? ROOT : n.ino;
  }

  /** The kernel holds one more lookup of `n`, found as `name` in the directory `parent` (a FUSE inode). */
  private remember(n: ViewNode, parent: number, name: string, count = 1): number {
    const ino = this.fuseIno(n);
    const k = this.nodes.get(ino);
    if (k === undefined) {
      const linked = (n.mode & S_IFMT) !== S_IFDIR && n.nlink > 1;
      this.nodes.set(ino, linked ? { lookups: count, parent, name, node: n } : { lookups: count, parent, name });
    } else {
      k.lookups += count;
      // Another name of a hard link: the one the kernel used last is the one known alive.
      if (k.parent !== parent && ino !== ROOT) {
        k.parent = parent;
        k.name = name;
      }
    }
    this.recent.set(ino, n);
    return ino;
  }

  private forget(ino: number, n: number): void {
    const k = this.nodes.get(ino);
    if (k === undefined || ino === ROOT) return;
    k.lookups -= n;
    if (k.lookups <= 0) {
      this.nodes.delete(ino);
      this.recent.delete(ino);
      this.whole.delete(ino);
      if (this.mapped.delete(ino)) this.session?.unmapFile(ino);
    }
  }

  private lookup(s: FuseSession, req: Req, parent: number, name: string): void {
    // Ours whatever the image holds under that name (a directory, a file, a symlink).
    if (parent === ROOT && name === STATUS_DIR) {
      return s.replyEntry(req, STATUS_DIR_INO, attrOf(this.statusNode(STATUS_DIR_INO).node), 0, false);
    }
    if (parent === STATUS_DIR_INO) {
      if (name !== STATUS_FILE) return s.replyErr(req, E.ENOENT);
      return s.replyEntry(req, STATUS_FILE_INO, attrOf(this.statusNode(STATUS_FILE_INO).node), 0, false);
    }
    const p = this.known(parent);
    if ((p.node.mode & S_IFMT) !== S_IFDIR) return s.replyErr(req, E.ENOTDIR);
    const child = this.view.lookup(p.node, name);
    if (child === undefined) return s.replyEntry(req, 0, new Float64Array(ATTR_SLOTS), TTL, false);
    const ino = this.remember(child, parent, name);
    s.replyEntry(req, ino, attrOf(child), TTL, this.view.xattrs(child).length > 0);
  }

  private readdir(s: FuseSession, req: Req, ino: number, plus: boolean, size: number, off: number, fh: number): void {
    let d = this.dirs.get(fh);
    // Opened through an earlier server of this mount: the listing is the same (the image
    // does not change), so offsets into it still mean the same entries.
    if (d === undefined || this.fuseIno(d.node) !== ino) {
      if (ino === STATUS_DIR_INO) d = this.dirHandle(ino, this.statusNode(ino).node);
      else d = this.dirHandle(ino, this.known(ino).node);
      this.dirs.set(fh, d);
    }
    // Each entry takes at least 24 bytes (readdirplus about 150): build no more than can fit.
    const n = Math.max(0, Math.min(d.entries.length - off, Math.ceil(size / (plus ? 140 : 24)) + 1));
    let names = '';
    const inos = new Float64Array(n);
    const attrs = new Float64Array(n * ATTR_SLOTS);
    const offs = new Float64Array(n);
    const xattrs = new Uint8Array(n);
    for (let k = 0; k < n; k++) {
      const { name, node } = d.entries[off + k] as DirEntry;
      const dot = name === '.' || name === '..';
      names += `${name}\0`;
      inos[k] = dot ? ino : this.fuseIno(node);
      attrInto(node, attrs, k * ATTR_SLOTS);
      offs[k] = off + k + 1;
      xattrs[k] = plus && !dot && ino !== STATUS_DIR_INO && this.view.xattrs(node).length > 0 ? 1 : 0;
    }
    const taken = s.replyDir(req, size, plus, names, inos, attrs, offs, xattrs, TTL);
    if (!plus || ino === STATUS_DIR_INO) return;
    // The kernel holds a lookup on every entry readdirplus returned (not . and ..).
    for (let k = 0; k < taken; k++) {
      const { name, node } = d.entries[off + k] as DirEntry;
      if (name !== '.' && name !== '..') this.remember(node, ino, name);
    }
  }

  private read(s: FuseSession, req: Req, ino: number, size: number, off: number, fh: number): void {
    let h = this.files.get(fh);
    // Opened through an earlier server of this mount: the handle holds nothing the inode does not say.
    if (h === undefined || (ino === STATUS_FILE_INO ? h.snapshot === undefined : this.fuseIno(h.node) !== ino)) {
      if (h !== undefined) this.dropHandle(fh, h);
      h = this.fileHandle(ino, this.known(ino));
      this.addHandle(fh, h);
    }
    if (h.snapshot !== undefined) return s.replyBuf(req, h.snapshot.subarray(off, off + size));
    const done = this.reader.read(h.node, h.path, off, size).then(
      (data) => {
        this.log.trace({ ino, off, size, replied: data.length }, 'read');
        s.replyBuf(req, data);
        this.mapVerified(s, ino, h.node, off, off + size);
      },
      (err: unknown) => this.fail(s, req, FuseOp.Read, ino, err, h.path),
    );
    this.reading.add(done);
    void done.finally(() => this.reading.delete(done));
  }

  private open(s: FuseSession, req: Req, ino: number): void {
    const k = this.known(ino);
    const type = k.node.mode & S_IFMT;
    if (type === S_IFDIR) return s.replyErr(req, E.EISDIR);
    const fh = this.nextFh++;
    const h = this.fileHandle(ino, k);
    this.addHandle(fh, h);
    if (h.snapshot !== undefined) return s.replyOpen(req, fh, false, true);
    if (!this.passthrough || type !== S_IFREG) return s.replyOpen(req, fh, true, false);
    const answer = (): void => {
      // A file the cache holds as one plain file: mapped now, the addon answers this open
      // with it as the passthrough backing, and later opens without asking here.
      if (this.mapWhole(s, ino, k.node)) this.reader.noteHandedOver(k.node, k.path);
      // Not whole yet: written whole beside the reads, so that its next open is the kernel's.
      else this.whenWhole(s, ino, k.node, this.opts.wholeFiles?.grow(k.node));
      s.replyOpen(req, fh, true, false);
    };
    // Read through just now (`cat f; cat f`): its last chunks are being written into its
    // plain file. Worth a short wait: the kernel then reads it at disk speed.
    const finishing = this.whole.has(ino) ? undefined : this.opts.wholeFiles?.finishing(k.node);
    if (finishing === undefined) return answer();
    void Promise.race([finishing, new Promise((r) => setTimeout(r, FINISHING_WAIT_MS))]).then(() => {
      if (this.ended) return s.replyErr(req, E.EIO);
      answer();
    });
  }

  /** Opens answered passthrough and cached, and why not passthrough (status.json). */
  passthroughStatus(): PassthroughStatus {
    const p = this.session?.passthroughStats();
    return {
      enabled: p?.enabled ?? false,
      ...(p !== undefined && p.reason !== '' ? { off: p.reason } : {}),
      opens: p?.opens ?? 0,
      cachedOpens: p?.cachedOpens ?? 0,
      ...(p?.enabled === true ? { cachedWhy: p.cachedWhy } : {}),
      ...(p !== undefined && p.backingErrno !== 0 ? { backingErrno: p.backingErrno } : {}),
    };
  }

  private handleIno(h: FileHandle): number {
    return h.snapshot !== undefined ? STATUS_FILE_INO : this.fuseIno(h.node);
  }

  private addHandle(fh: number, h: FileHandle): void {
    this.files.set(fh, h);
    const ino = this.handleIno(h);
    this.openHere.set(ino, (this.openHere.get(ino) ?? 0) + 1);
  }

  /** Forgets a handle; returns how many of its inode are still open here. */
  private dropHandle(fh: number, h: FileHandle): number {
    this.files.delete(fh);
    const ino = this.handleIno(h);
    const left = (this.openHere.get(ino) ?? 1) - 1;
    if (left > 0) this.openHere.set(ino, left);
    else this.openHere.delete(ino);
    return left;
  }

  /** Hands the addon the file as one plain file, if the cache has one (true: it did, now or before). */
  private mapWhole(s: FuseSession, ino: number, node: ViewNode): boolean {
    if (this.whole.has(ino)) return true;
    if (node.size === 0 || this.opts.wholeFiles === undefined) return false;
    const path = this.opts.wholeFiles.path(node);
    if (path === undefined) return false;
    s.mapWhole(ino, node.size, path);
    this.whole.add(ino);
    this.mapped.add(ino);
    return true;
  }

  /** Makes the file one plain file from its cached chunks in the background (a no-op unless all are there). */
  private assembleLater(s: FuseSession, ino: number, node: ViewNode): void {
    if (node.size === 0 || this.opts.wholeFiles === undefined) return;
    if (this.mapWhole(s, ino, node)) return;
    this.whenWhole(s, ino, node, this.opts.wholeFiles.assemble(node));
  }

  /**
   * Maps the file once `made` gives its plain file: passthrough from its next open. Not
   * while a file of it is open here: the addon would then answer its reads itself, and the
   * learned profile (layer/profile.ts) would miss what they read; its next open maps it.
   */
  private whenWhole(s: FuseSession, ino: number, node: ViewNode, made: Promise<string | undefined> | undefined): void {
    void made?.then(
      (path) => {
        if (path === undefined || this.ended || !this.nodes.has(ino)) return;
        if (this.openHere.has(ino)) return;
        s.mapWhole(ino, node.size, path);
        this.whole.add(ino);
        this.mapped.add(ino);
        this.log.debug({ ino, size: node.size, path }, 'file assembled whole: passthrough from its next open');
      },
      (err: unknown) => this.log.debug({ err, ino }, 'file not assembled'),
    );
  }

  /** Reads the addon answered from verified chunk files without JavaScript, and what it has mapped. */
  addonReads(): { reads: number; bytes: number; mappedParts: number } {
    const a = this.session?.nativeReads();
    return { reads: a?.[0] ?? 0, bytes: a?.[1] ?? 0, mappedParts: a?.[2] ?? 0 };
  }

  /**
   * Hands the addon the parts of a read JavaScript just served that are in verified chunk
   * files, so later reads of them are answered without JavaScript (native/read_map.h).
   * Only the read's own chunks: a chunk cached by other means is mapped the first time a
   * read of it comes here, which costs one round trip, not a query over the file per read.
   */
  private mapVerified(s: FuseSession, ino: number, node: ViewNode, off: number, end: number): void {
    if (this.ended || this.whole.has(ino)) return;
    const p = this.reader.verifiedParts(node, off, end);
    if (p.offs.length === 0) return;
    s.mapFile(ino, node.size, Float64Array.from(p.offs), Float64Array.from(p.lens), p.paths);
    this.mapped.add(ino);
  }

  /**
   * The session has ended (its unanswered requests failed): starts nothing new, and
   * resolves once the reads still running have settled, or after `ms`, with how many
   * had not. The image (and meta.db under it) is closed after this, so a read that
   * settled later would find it closed.
   */
  async drain(ms: number): Promise<number> {
    this.ended = true;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); });
    await Promise.race([Promise.allSettled([...this.reading]), late]);
    clearTimeout(timer);
    return this.reading.size;
  }

  private getxattr(s: FuseSession, req: Req, ino: number, name: string, size: number): void {
    const k = this.known(ino);
    const x = this.view.xattrs(k.node).find((e) => e.name === name);
    if (x === undefined) return s.replyErr(req, E.ENODATA);
    if (size === 0) return s.replyXattrSize(req, x.value.length);
    if (x.value.length > size) return s.replyErr(req, E.ERANGE);
    s.replyBuf(req, x.value);
  }

  private listxattr(s: FuseSession, req: Req, ino: number, size: number): void {
    const k = this.known(ino);
    const list = Buffer.from(this.view.xattrs(k.node).map((e) => `${e.name}\0`).join(''));
    if (size === 0) return s.replyXattrSize(req, list.length);
    if (list.length > size) return s.replyErr(req, E.ERANGE);
    s.replyBuf(req, list);
  }

  private fail(s: FuseSession, req: Req, op: FuseOp, ino: number, err: unknown, path?: string): void {
    const errno = errnoOf(err);
    if (errno === E.EIO || errno === E.ESTALE) {
      const opName = Object.entries(FuseOp).find(([, v]) => v === op)?.[0] ?? String(op);
      let where = path;
      try {
        where ??= this.nodes.has(ino) ? this.pathOf(ino) : undefined;
      } catch {
        // a parent forgotten already: the inode number says enough
      }
      this.log.warn({ op: opName, ino, path: where, err }, `${opName} failed`);
    }
    s.replyErr(req, errno);
  }
}
