// The additional layer store as a filesystem: `<base64 ref>/<digest>/{diff,info,blob}`
// answered from StoreLayers. `diff` is a symlink to the layer's own mount (the kernel asks
// for its target every time, so a layer let go is mounted again when followed); `info`
// is the layer record podman decodes; `blob` the checked compressed bytes. Creating `use`
// and removing a layer directory count uses and answer ENOENT, as podman expects of a
// store that counts. Lookups that fail answer ENOENT, so podman pulls instead.
import { constants } from 'node:os';
import { open, type FileHandle } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { errnoOf } from '../fs/errno.js';
import { ATTR_SLOTS, FuseOp, type FuseHandler, type FuseRequestCall, type FuseSession, type Req } from '../fs/fuse-binding.js';
import { isLayerDigest, LAYER_FILES, nameOfRef, refOfName, USE_FILE, type LayerFile } from './names.js';
import type { StoreLayers } from './layers.js';

const E = constants.errno;
const ROOT = 1;
/** Names are checked again a second later: a tag that moves, a layer let go. */
const ENTRY_TTL = 1;
const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

type Node =
  | { readonly kind: 'root' }
  | { readonly kind: 'ref'; readonly ref: string; readonly name: string }
  | { readonly kind: 'layer'; readonly ref: string; readonly digest: string; readonly parent: number }
  | { readonly kind: LayerFile; readonly ref: string; readonly digest: string; size: number };

interface OpenFile {
  readonly node: Node;
  readonly bytes?: Buffer;
  readonly file?: FileHandle;
}

export class StoreFs {
  private readonly nodes = new Map<number, Node>([[ROOT, { kind: 'root' }]]);
  private readonly inos = new Map<string, number>();
  private nextIno = ROOT + 1;
  private readonly files = new Map<number, OpenFile>();
  private readonly dirs = new Map<number, { names: string[]; inos: number[] }>();
  private nextFh = 1;
  private session: FuseSession | undefined;
  private readonly started = Math.floor(Date.now() / 1000);
  private readonly log: Logger;

  constructor(private readonly layers: StoreLayers, log: Logger, private readonly onExit: (why: string) => void) {
    this.log = log.child({ mod: 'store-fs' });
  }

  attach(session: FuseSession): void {
    this.session = session;
    session.setNoXattrs(true);
  }

  readonly handle: FuseHandler = (...call) => {
    if (call[0] === FuseOp.Init) return void this.log.info({ negotiated: call[3] }, 'layer store FUSE session initialised');
    if (call[0] === FuseOp.Exit) return this.onExit(call[3]);
    // Answered by the addon already: the file's handle goes.
    if (call[0] === FuseOp.Release) return void this.release(call[3]).catch((err: unknown) => this.log.warn({ err }, 'layer store file not closed cleanly'));
    const s = this.session;
    if (s === undefined || call[1] === null) return;
    const [op, req, ino] = call;
    this.dispatch(s, call).catch((err: unknown) => {
      const node = this.nodes.get(ino);
      this.log.warn({ op, ino, node, err: (err as Error).message }, 'layer store request failed');
      s.replyErr(req, op === FuseOp.Lookup ? E.ENOENT : errnoOf(err));
    });
  };

  private ino(key: string, make: () => Node): number {
    let ino = this.inos.get(key);
    if (ino === undefined) {
      ino = this.nextIno++;
      this.inos.set(key, ino);
      this.nodes.set(ino, make());
    }
    return ino;
  }

  private attr(n: Node): Float64Array {
    const a = new Float64Array(ATTR_SLOTS);
    const dir = n.kind === 'root' || n.kind === 'ref' || n.kind === 'layer';
    a[0] = dir ? S_IFDIR | 0o755 : n.kind === 'diff' ? S_IFLNK | 0o777 : S_IFREG | 0o444;
    a[1] = dir ? 2 : 1;
    a[5] = dir ? 4096 : n.size;
    a[6] = Math.ceil(a[5] / 512);
    a[7] = this.started;
    return a;
  }

  /** A layer file's node with its size known (info and diff need the layer resolved). */
  private async fileNode(parent: Extract<Node, { kind: 'layer' }>, kind: LayerFile): Promise<number> {
    const ino = this.ino(`${parent.ref}\0${parent.digest}\0${kind}`, () => ({ kind, ref: parent.ref, digest: parent.digest, size: 0 }));
    const n = this.nodes.get(ino) as Extract<Node, { kind: LayerFile }>;
    if (kind === 'diff') n.size = Buffer.byteLength(await this.layers.diffTarget(n.ref, n.digest));
    else if (kind === 'info') n.size = (await this.layers.info(n.ref, n.digest)).length;
    else {
      const l = await this.layers.layer(n.ref, n.digest);
      if (l === undefined) throw new Error('layer not lazily mountable');
      n.size = l.desc.size;
    }
    return ino;
  }

  private async lookup(parent: Node | undefined, name: string): Promise<number | undefined> {
    switch (parent?.kind) {
      case 'root': {
        const r = refOfName(name);
        if ('why' in r) {
          this.log.info({ name: name.slice(0, 200), why: r.why }, 'not an image reference: ENOENT');
          return undefined;
        }
        await this.layers.image(r.ref);
        return this.ino(name, () => ({ kind: 'ref', ref: r.ref, name }));
      }
      case 'ref': {
        if (!isLayerDigest(name)) return undefined;
        if ((await this.layers.layer(parent.ref, name)) === undefined) return undefined;
        const parentIno = this.inos.get(parent.name) as number;
        return this.ino(`${parent.ref}\0${name}`, () => ({ kind: 'layer', ref: parent.ref, digest: name, parent: parentIno }));
      }
      case 'layer':
        return (LAYER_FILES as readonly string[]).includes(name) ? this.fileNode(parent, name as LayerFile) : undefined;
      default:
        return undefined;
    }
  }

  private async release(fh: number): Promise<void> {
    const f = this.files.get(fh);
    this.files.delete(fh);
    if (f?.file !== undefined) {
      await f.file.close();
      if (f.node.kind === 'blob') this.layers.blobClosed(f.node.digest);
    }
  }

  private async dispatch(s: FuseSession, call: FuseRequestCall): Promise<void> {
    const [op, req, ino] = call;
    const node = this.nodes.get(ino);
    switch (call[0]) {
      case FuseOp.Lookup: {
        const child = await this.lookup(node, call[3]);
        if (child === undefined) return s.replyErr(req, E.ENOENT);
        return s.replyEntry(req, child, this.attr(this.nodes.get(child) as Node), ENTRY_TTL, false);
      }
      case FuseOp.Getattr:
        if (node === undefined) return s.replyErr(req, E.ENOENT);
        return s.replyAttr(req, ino, this.attr(node), ENTRY_TTL);
      case FuseOp.Readlink:
        if (node?.kind !== 'diff') return s.replyErr(req, E.EINVAL);
        return s.replyReadlink(req, await this.layers.diffTarget(node.ref, node.digest));
      case FuseOp.Open: {
        if (node === undefined) return s.replyErr(req, E.ENOENT);
        const fh = this.nextFh++;
        if (node.kind === 'info') {
          this.files.set(fh, { node, bytes: await this.layers.info(node.ref, node.digest) });
        } else if (node.kind === 'blob') {
          const path = await this.layers.blobOpened(node.ref, node.digest);
          try {
            this.files.set(fh, { node, file: await open(path, 'r') });
          } catch (err) {
            this.layers.blobClosed(node.digest);
            throw err;
          }
        } else {
          return s.replyErr(req, E.EISDIR);
        }
        return s.replyOpen(req, fh, node.kind === 'blob', node.kind === 'info');
      }
      case FuseOp.Read: {
        const [, , , size, off, fh] = call;
        const f = this.files.get(fh);
        if (f === undefined) return s.replyErr(req, E.EBADF);
        if (f.bytes !== undefined) return s.replyBuf(req, f.bytes.subarray(off, off + size));
        const buf = Buffer.allocUnsafe(size);
        const { bytesRead } = await (f.file as FileHandle).read(buf, 0, size, off);
        return s.replyBuf(req, buf.subarray(0, bytesRead));
      }
      case FuseOp.Opendir: {
        if (node === undefined) return s.replyErr(req, E.ENOENT);
        const fh = this.nextFh++;
        this.dirs.set(fh, await this.listing(ino, node));
        return s.replyOpen(req, fh, false, false);
      }
      case FuseOp.Readdir:
      case FuseOp.Readdirplus:
        return this.readdir(s, req, op === FuseOp.Readdirplus, [call[3], call[4], call[5]]);
      case FuseOp.Releasedir:
        this.dirs.delete(call[3]);
        return s.replyErr(req, 0);
      case FuseOp.Create: {
        // podman's `use`: one more use of the layer; ENOENT tells it the store counts.
        if (node?.kind === 'layer' && call[3] === USE_FILE) {
          this.layers.use(node.ref, node.digest);
          return s.replyErr(req, E.ENOENT);
        }
        return s.replyErr(req, E.EROFS);
      }
      case FuseOp.Rmdir: {
        // podman's release of a layer it looked up or stored: one use fewer, ENOENT again.
        const name = call[3];
        if (node?.kind === 'ref' && isLayerDigest(name)) {
          this.layers.release(name);
          return s.replyErr(req, E.ENOENT);
        }
        return s.replyErr(req, E.EROFS);
      }
      case FuseOp.Statfs:
        return s.replyStatfs(req, Float64Array.of(4096, 0, 0, 0, 0, 0, 255));
      case FuseOp.Access:
        return s.replyErr(req, 0);
      default:
        return s.replyErr(req, E.ENOSYS);
    }
  }

  /** What a directory lists: the images and layers looked up so far, a layer's three files. */
  private async listing(ino: number, node: Node): Promise<{ names: string[]; inos: number[] }> {
    const names = ['.', '..'];
    const inos = [ino, ino];
    if (node.kind === 'root' || node.kind === 'ref') {
      for (const [i, n] of this.nodes) {
        if ((node.kind === 'root' && n.kind === 'ref') || (node.kind === 'ref' && n.kind === 'layer' && n.ref === node.ref)) {
          names.push(n.kind === 'ref' ? nameOfRef(n.ref) : (n as { digest: string }).digest);
          inos.push(i);
        }
      }
    } else if (node.kind === 'layer') {
      for (const f of LAYER_FILES) {
        names.push(f);
        inos.push(await this.fileNode(node, f));
      }
    }
    return { names, inos };
  }

  private readdir(s: FuseSession, req: Req, plus: boolean, [size, off, fh]: [number, number, number]): void {
    const d = this.dirs.get(fh);
    if (d === undefined) return s.replyErr(req, E.EBADF);
    const n = Math.max(0, d.names.length - off);
    const inos = new Float64Array(n);
    const attrs = new Float64Array(n * ATTR_SLOTS);
    const offs = new Float64Array(n);
    let names = '';
    for (let k = 0; k < n; k++) {
      names += `${d.names[off + k]}\0`;
      inos[k] = d.inos[off + k] as number;
      attrs.set(this.attr(this.nodes.get(inos[k] as number) as Node), k * ATTR_SLOTS);
      offs[k] = off + k + 1;
    }
    s.replyDir(req, size, plus, names, inos, attrs, offs, new Uint8Array(n), ENTRY_TTL);
  }

  /** Files still open (blob readers hold a copy of the blob). */
  openFiles(): number {
    return this.files.size;
  }
}
