// What a filesystem (FUSE, or the CLI's ls/stat/cat) sees of an image: nodes with
// attributes, looked up by name under a directory. Two implementations: one layer
// (raw, or overlayfs-encoded) and the merged image. Both are queries over meta.db.
import { NotADirectoryError, NotFoundError } from '../errors.js';
import { NODE_HAS_XATTRS, S_IFDIR, S_IFMT, type InodeTable, type LayerRow, type NodeRow } from './inode-db.js';

export interface ViewNode {
  /** Inode number: a node id from meta.db (stable across remounts; hard links share it). */
  readonly ino: number;
  /** The meta.db node holding this file's chunks and xattrs. */
  readonly dataId: number;
  readonly layerId: number;
  /** st_mode: type bits | 07777. */
  readonly mode: number;
  readonly uid: number;
  readonly gid: number;
  readonly size: number;
  /** Seconds since the epoch; null when no layer defines it (implicit dirs, the merged root). */
  readonly mtime: number | null;
  readonly mtimeNsec: number;
  readonly nlink: number;
  readonly rdevMajor: number;
  readonly rdevMinor: number;
  readonly link: string | null;
  /** Merged directories: the layer directory nodes that make it up, top layer first. */
  readonly dirs?: readonly number[];
  /** A whiteout shown as overlayfs's char 0/0 in the layer view. */
  readonly whiteout?: boolean;
  /**
   * Its meta.db node has no xattrs (the importer's flag): answered without a query, as
   * find + stat asks for every entry it looks up. Absent: not known, ask meta.db.
   */
  readonly noXattrs?: boolean;
}

export interface DirEntry {
  readonly name: string;
  readonly node: ViewNode;
}

export interface Xattr {
  readonly name: string;
  readonly value: Buffer;
}

export interface ImageView {
  root(): ViewNode;
  lookup(dir: ViewNode, name: string): ViewNode | undefined;
  /** Names in the directory, in byte order (no `.`/`..`). */
  readdir(dir: ViewNode): string[];
  /** The directory's entries with their nodes, in byte order: a listing in as few queries as the view can. */
  list(dir: ViewNode): DirEntry[];
  xattrs(node: ViewNode): Xattr[];
  /**
   * The path (from the view's root, '' for the root itself) at which this view shows the
   * node with inode number `ino`, worked out from meta.db alone; undefined if the view
   * shows no such node. For a server that took over a live mount (a restart, an upgrade):
   * the kernel still holds inode numbers the earlier server handed out.
   */
  locate(ino: number): string | undefined;
  /**
   * Whether any node can have an xattr. False lets the FUSE layer tell the kernel that
   * xattrs are not supported at all, so it stops asking (ls -l and exec ask per file).
   */
  anyXattrs(): boolean;
}

export const isDir = (n: { mode: number }): boolean => (n.mode & S_IFMT) === S_IFDIR;

export function fromRow(r: NodeRow): ViewNode {
  return {
    ino: r.id,
    dataId: r.id,
    layerId: r.layer_id,
    mode: r.mode,
    uid: r.uid,
    gid: r.gid,
    size: r.size,
    mtime: r.mtime,
    mtimeNsec: r.mtime_nsec,
    nlink: r.nlink,
    rdevMajor: r.rdev_major,
    rdevMinor: r.rdev_minor,
    link: r.link,
    noXattrs: (r.flags & NODE_HAS_XATTRS) === 0,
  };
}

/** UTF-8 byte order, as directory listings are sorted (JS compares UTF-16 units). */
export function compareNames(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Resolves a slash-separated path without following symlinks (lstat semantics). */
export function resolvePath(view: ImageView, path: string): ViewNode {
  let node = view.root();
  const parts = path.split('/').filter((p) => p !== '' && p !== '.');
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i] as string;
    if (!isDir(node)) throw new NotADirectoryError({ path: parts.slice(0, i).join('/') });
    if (part === '..') throw new NotFoundError({ path: parts.slice(0, i + 1).join('/') });
    const next = view.lookup(node, part);
    if (next === undefined) throw new NotFoundError({ path: parts.slice(0, i + 1).join('/') });
    node = next;
  }
  return node;
}

/** A listing by a lookup per name: for directories whose entries need more than their own rows. */
export function listByLookup(view: ImageView, dir: ViewNode): DirEntry[] {
  const out: DirEntry[] = [];
  for (const name of view.readdir(dir)) {
    const node = view.lookup(dir, name);
    if (node !== undefined) out.push({ name, node });
  }
  return out;
}

/**
 * A layer's nodes' names up to its root, read once per layer when first asked (a range
 * scan of its entries) and kept: only a server that took over a live mount asks, about
 * the inodes the kernel held across the hand-over. Hard links: any one of the names.
 */
export class NodeNames {
  private readonly byLayer = new Map<number, Map<number, { parent: number; name: string }>>();

  constructor(private readonly table: InodeTable) {}

  /** The names from the layer's root down to node `id`; [] for the root; undefined if the layer has no such node. */
  of(layer: LayerRow, id: number): string[] | undefined {
    if (id === layer.root_id) return [];
    if (id < layer.root_id || id >= layer.root_id + layer.node_count) return undefined;
    let up = this.byLayer.get(layer.id);
    if (up === undefined) {
      up = new Map();
      for (const [node, parent, name] of this.table.layerEntries(layer)) if (!up.has(node)) up.set(node, { parent, name });
      this.byLayer.set(layer.id, up);
    }
    const names: string[] = [];
    for (let cur = id; cur !== layer.root_id; ) {
      const e = up.get(cur);
      if (e === undefined || names.length > 4096) return undefined;
      names.push(e.name);
      cur = e.parent;
    }
    return names.reverse();
  }
}
