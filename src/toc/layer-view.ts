// One layer's tree. Raw: exactly the layer's entries (whiteout files are plain empty
// files), which is what `--layer` shows a person. Overlay-encoded (ESTARGZ.md §9): what
// a snapshotter stacks with overlayfs: `.wh.X` appears as X, a char device 0/0 (unless
// the layer also has a real X), `.wh..wh..opq` disappears and its directory carries the
// opaque xattr. Both hide the root's stargz.index.json and landmarks.
import { HIDDEN_ROOT_NAMES, OPAQUE_MARKER, WHITEOUT_PREFIX } from './names.js';
import { S_IFCHR, S_IFDIR, S_IFMT, type InodeTable, type LayerRow } from './inode-db.js';
import { compareNames, fromRow, listByLookup, NodeNames, type DirEntry, type ImageView, type ViewNode, type Xattr } from './view.js';

/** Which opaque xattr(s) to show: overlayfs reads trusted.*, or user.* with `userxattr`. */
export type OverlayEncoding = 'none' | 'trusted' | 'user' | 'both';

const OPAQUE_VALUE = Buffer.from('y');

export class LayerView implements ImageView {
  private readonly names: NodeNames;

  constructor(
    private readonly table: InodeTable,
    readonly layer: LayerRow,
    private readonly overlay: OverlayEncoding = 'none',
  ) {
    this.names = new NodeNames(table);
  }

  locate(ino: number): string | undefined {
    const names = this.names.of(this.layer, ino);
    if (names === undefined) return undefined;
    // A whiteout shows under the name it hides.
    const last = names[names.length - 1];
    if (this.overlay !== 'none' && last?.startsWith(WHITEOUT_PREFIX) === true) names[names.length - 1] = last.slice(WHITEOUT_PREFIX.length);
    return names.join('/');
  }

  root(): ViewNode {
    const r = this.table.node(this.layer.root_id);
    if (r === undefined) throw new Error(`meta.db: root node ${this.layer.root_id} of layer ${this.layer.digest} is missing`);
    return fromRow(r);
  }

  lookup(dir: ViewNode, name: string): ViewNode | undefined {
    if (dir.ino === this.layer.root_id && HIDDEN_ROOT_NAMES.has(name)) return undefined;
    if (this.overlay !== 'none' && name.startsWith(WHITEOUT_PREFIX)) return undefined;
    const id = this.table.child(dir.ino, name);
    if (id !== undefined) {
      const r = this.table.node(id);
      return r === undefined ? undefined : fromRow(r);
    }
    if (this.overlay === 'none') return undefined;
    const wh = this.table.child(dir.ino, WHITEOUT_PREFIX + name);
    if (wh === undefined) return undefined;
    const r = this.table.node(wh);
    return r === undefined ? undefined : whiteoutNode(fromRow(r));
  }

  readdir(dir: ViewNode): string[] {
    const atRoot = dir.ino === this.layer.root_id;
    const names: string[] = [];
    const real = new Set<string>();
    const whiteouts: string[] = [];
    for (const { name } of this.table.allChildren(dir.ino)) {
      if (atRoot && HIDDEN_ROOT_NAMES.has(name)) continue;
      if (this.overlay !== 'none' && name.startsWith(WHITEOUT_PREFIX)) {
        if (name !== OPAQUE_MARKER) whiteouts.push(name.slice(WHITEOUT_PREFIX.length));
        continue;
      }
      names.push(name);
      real.add(name);
    }
    if (whiteouts.length === 0) return names;
    for (const w of whiteouts) if (!real.has(w) && w !== '') names.push(w);
    return [...new Set(names)].sort(compareNames);
  }

  list(dir: ViewNode): DirEntry[] {
    const atRoot = dir.ino === this.layer.root_id;
    const rows = this.table.childNodes(dir.ino);
    // Overlay-encoded whiteouts show under other names: resolved per name.
    if (this.overlay !== 'none' && rows.some((r) => r.name.startsWith(WHITEOUT_PREFIX))) return listByLookup(this, dir);
    return rows.filter((r) => !(atRoot && HIDDEN_ROOT_NAMES.has(r.name))).map((r) => ({ name: r.name, node: fromRow(r) }));
  }

  anyXattrs(): boolean {
    // Overlay encoding shows an opaque marker as an xattr of its directory.
    return this.table.layerHasXattrs(this.layer) || (this.overlay !== 'none' && this.table.layerHasName(this.layer, OPAQUE_MARKER));
  }

  xattrs(node: ViewNode): Xattr[] {
    if (node.whiteout === true) return [];
    const own = node.noXattrs === true ? [] : this.table.xattrs(node.dataId);
    // Only a directory can hold an opaque marker: no query for the others (readdirplus asks per entry).
    if (this.overlay === 'none' || (node.mode & S_IFMT) !== S_IFDIR || this.table.child(node.ino, OPAQUE_MARKER) === undefined) return own;
    const extra: Xattr[] = [];
    if (this.overlay === 'trusted' || this.overlay === 'both') extra.push({ name: 'trusted.overlay.opaque', value: OPAQUE_VALUE });
    if (this.overlay === 'user' || this.overlay === 'both') extra.push({ name: 'user.overlay.opaque', value: OPAQUE_VALUE });
    return [...own.filter((x) => !extra.some((e) => e.name === x.name)), ...extra].sort((a, b) => compareNames(a.name, b.name));
  }
}

/** overlayfs's whiteout: char 0/0, no permission bits, owned by root, mtime of the whiteout file. */
function whiteoutNode(wh: ViewNode): ViewNode {
  return { ...wh, mode: S_IFCHR, uid: 0, gid: 0, size: 0, nlink: 1, rdevMajor: 0, rdevMinor: 0, link: null, whiteout: true };
}
