// The merged image: all layers applied in order, as a container sees its rootfs and as
// the OCI image spec defines it. Per layer, its whiteouts (`D/.wh.X`) and opaque markers
// (`D/.wh..wh..opq`) hide only *lower* layers — never the layer's own entries, whatever
// their tar order; a directory over a directory merges (the upper's attributes win);
// anything else replaces the lower subtree. Nothing is copied: a merged directory is
// the list of layer directory nodes that make it up, resolved per lookup.
import { HIDDEN_ROOT_NAMES, OPAQUE_MARKER, WHITEOUT_PREFIX } from './names.js';
import { S_IFDIR, type InodeTable, type LayerRow, type NodeRow } from './inode-db.js';
import { compareNames, fromRow, isDir, listByLookup, NodeNames, type DirEntry, type ImageView, type ViewNode, type Xattr } from './view.js';

export class MergedView implements ImageView {
  /** Layer rows, top layer first. */
  private readonly top: readonly LayerRow[];
  private readonly nlinks = new Map<number, number>();
  private readonly names: NodeNames;

  /** `layers` bottom (base) first, as in the manifest. */
  constructor(private readonly table: InodeTable, layers: readonly LayerRow[]) {
    if (layers.length === 0) throw new Error('a merged view needs at least one layer');
    this.top = [...layers].reverse();
    this.names = new NodeNames(table);
  }

  locate(ino: number): string | undefined {
    for (const l of this.top) {
      const names = this.names.of(l, ino);
      if (names !== undefined) return names.join('/');
    }
    return undefined;
  }

  root(): ViewNode {
    const dirs: number[] = [];
    for (const l of this.top) {
      dirs.push(l.root_id);
      if (this.table.child(l.root_id, OPAQUE_MARKER) !== undefined) break;
    }
    const topRoot = this.row(dirs[0] as number);
    // The rootfs directory itself is made by the runtime (a snapshot's mount point), not
    // by any layer: 0755 root:root with no image-defined mtime.
    return this.dirNode({ ...topRoot, mode: S_IFDIR | 0o755, uid: 0, gid: 0, mtime: null, mtime_nsec: 0 }, dirs);
  }

  lookup(dir: ViewNode, name: string): ViewNode | undefined {
    const found = this.find(dir, name);
    if (found === undefined) return undefined;
    const [row, dirs] = found;
    return dirs === undefined ? fromRow(row) : this.dirNode(row, dirs);
  }

  readdir(dir: ViewNode): string[] {
    const dirs = dir.dirs ?? [dir.ino];
    const atRoot = this.isRoot(dir);
    const seen = new Set<string>();
    const hidden = new Set<string>();
    for (const d of dirs) {
      const whiteouts: string[] = [];
      for (const { name } of this.table.allChildren(d)) {
        if (name.startsWith(WHITEOUT_PREFIX)) {
          if (name !== OPAQUE_MARKER) whiteouts.push(name.slice(WHITEOUT_PREFIX.length));
          continue;
        }
        if (atRoot && HIDDEN_ROOT_NAMES.has(name)) continue;
        if (!hidden.has(name)) seen.add(name);
      }
      for (const w of whiteouts) hidden.add(w);
    }
    return [...seen].sort(compareNames);
  }

  list(dir: ViewNode): DirEntry[] {
    const dirs = dir.dirs ?? [dir.ino];
    // Entries of more than one layer need whiteouts and merges resolved per name.
    if (dirs.length !== 1) return listByLookup(this, dir);
    // One layer's directory: its own whiteouts hide only lower layers, so every entry but
    // the markers is shown as it is, and a subdirectory is that layer's alone too.
    const atRoot = this.isRoot(dir);
    const out: DirEntry[] = [];
    for (const r of this.table.childNodes(dirs[0] as number)) {
      if (r.name.startsWith(WHITEOUT_PREFIX) || (atRoot && HIDDEN_ROOT_NAMES.has(r.name))) continue;
      out.push({ name: r.name, node: isDir(r) ? this.dirNode(r, [r.id]) : fromRow(r) });
    }
    return out;
  }

  anyXattrs(): boolean {
    return this.top.some((l) => this.table.layerHasXattrs(l));
  }

  xattrs(node: ViewNode): Xattr[] {
    return node.noXattrs === true ? [] : this.table.xattrs(node.dataId);
  }

  private isRoot(dir: ViewNode): boolean {
    return dir.ino === (this.top[0] as LayerRow).root_id;
  }

  private row(id: number): NodeRow {
    const r = this.table.node(id);
    if (r === undefined) throw new Error(`meta.db: node ${id} is missing`);
    return r;
  }

  /** The topmost entry for `name` and, for a directory, the layer dirs it merges. */
  private find(dir: ViewNode, name: string): [NodeRow, number[] | undefined] | undefined {
    if (name.startsWith(WHITEOUT_PREFIX)) return undefined;
    if (this.isRoot(dir) && HIDDEN_ROOT_NAMES.has(name)) return undefined;
    let top: NodeRow | undefined;
    const dirs: number[] = [];
    for (const d of dir.dirs ?? [dir.ino]) {
      const id = this.table.child(d, name);
      if (id !== undefined) {
        const r = this.row(id);
        if (!isDir(r)) {
          if (top === undefined) return [r, undefined];
          break; // a non-directory below a directory is replaced by it
        }
        top ??= r;
        dirs.push(id);
        if (this.table.child(id, OPAQUE_MARKER) !== undefined) break;
      }
      // This layer's whiteout hides `name` in every layer below it.
      if (this.table.child(d, WHITEOUT_PREFIX + name) !== undefined) break;
    }
    return top === undefined ? undefined : [top, dirs];
  }

  private dirNode(row: NodeRow, dirs: number[]): ViewNode {
    const node = fromRow(row);
    if (dirs.length === 1) return { ...node, dirs };
    // A merged directory's link count depends on the merged children: computed when asked.
    const nlinkOf = (n: ViewNode): number => this.mergedNlink(n);
    return {
      ...node,
      dirs,
      get nlink(): number {
        return nlinkOf(this);
      },
    };
  }

  private mergedNlink(dir: ViewNode): number {
    let n = this.nlinks.get(dir.ino);
    if (n === undefined) {
      n = 2;
      for (const name of this.readdir(dir)) {
        const f = this.find(dir, name);
        if (f !== undefined && f[1] !== undefined) n++;
      }
      this.nlinks.set(dir.ino, n);
    }
    return n;
  }
}
