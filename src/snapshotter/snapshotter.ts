// containerd's snapshotter semantics (those of its overlayfs snapshotter and
// storage/bolt.go) over SQLite metadata and directories `<root>/snapshots/<id>/{fs,work}`,
// with remote snapshots: a Prepare that names its target (`containerd.io/snapshot.ref`)
// and whose labels say which image layer it is gets that layer mounted lazily by the
// provider, committed under the target and answered AlreadyExists, so containerd neither
// downloads nor unpacks it.
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { SnapshotError } from '../errors.js';
import { KIND, SnapshotMetadata, type Kind, type SnapshotRow } from './metadata.js';
import { mountsUnder, unmountTree } from '../service/mountpoint.js';

export interface RemoteLayerProvider {
  /** Mounts the layer that `labels` describe lazily at `dir` (an existing empty directory). */
  mount(dir: string, labels: Readonly<Record<string, string>>): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Unmounts what mount() put at `dir` (nothing mounted there is no error). */
  unmount(dir: string): Promise<void>;
}

export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: string[];
}

export interface Info {
  readonly name: string;
  readonly parent: string;
  readonly kind: Kind;
  readonly created: number;
  readonly updated: number;
  readonly labels: Record<string, string>;
}

export const TARGET_LABEL = 'containerd.io/snapshot.ref';
export const REMOTE_LABEL = 'containerd.io/snapshot/remote';
/** The value the reference snapshotter gives it. */
const REMOTE_VALUE = 'remote snapshot';
/** Remote snapshots mounted again at once after a restart. */
const RESTORE_PARALLEL = 8;

const notFound = (what: string): SnapshotError => new SnapshotError('SGZ_SNAPSHOT_NOT_FOUND', `${what}: not found`);
const exists = (what: string): SnapshotError => new SnapshotError('SGZ_SNAPSHOT_EXISTS', `${what}: already exists`);
const precondition = (why: string): SnapshotError => new SnapshotError('SGZ_SNAPSHOT_PRECONDITION', why);
const invalid = (why: string): SnapshotError => new SnapshotError('SGZ_SNAPSHOT_ARGUMENT', why);

export const infoOf = (r: SnapshotRow): Info => ({ name: r.key, parent: r.parent, kind: r.kind, created: r.created, updated: r.updated, labels: r.labels });

/** Disk use of a directory tree the way containerd counts it: 512-byte blocks of each inode once, and the inodes. */
async function diskUsage(dir: string): Promise<{ size: number; inodes: number }> {
  const seen = new Set<number>();
  let size = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path, { bigint: false });
    } catch {
      return;
    }
    if (!seen.has(st.ino)) {
      seen.add(st.ino);
      size += st.blocks * 512;
    }
    if (!st.isDirectory()) return;
    for (const name of await readdir(path).catch(() => [] as string[])) await walk(join(path, name));
  };
  await walk(dir);
  return { size, inodes: seen.size };
}

export class Snapshotter {
  private readonly meta: SnapshotMetadata;
  private readonly log: Logger;
  private readonly snapshots: string;

  /** `root`: the snapshotter's own directory (created). */
  static async open(root: string, remote: RemoteLayerProvider, log: Logger): Promise<Snapshotter> {
    await mkdir(join(root, 'snapshots'), { recursive: true });
    return new Snapshotter(root, remote, log);
  }

  private constructor(readonly root: string, private readonly remote: RemoteLayerProvider, log: Logger) {
    this.log = log.child({ mod: 'snapshotter' });
    this.snapshots = join(root, 'snapshots');
    this.meta = new SnapshotMetadata(join(root, 'metadata.db'));
  }

  private dir(id: number): string {
    return join(this.snapshots, String(id));
  }

  fsDir(id: number): string {
    return join(this.dir(id), 'fs');
  }

  private row(key: string): SnapshotRow {
    const r = this.meta.get(key);
    if (r === undefined) throw notFound(`snapshot ${key}`);
    return r;
  }

  /** The parents of a snapshot, nearest first. */
  private parents(r: SnapshotRow): SnapshotRow[] {
    const out: SnapshotRow[] = [];
    for (let p = r.parent; p !== ''; ) {
      const row = this.meta.get(p);
      if (row === undefined) throw notFound(`parent ${p} of ${r.key}`);
      out.push(row);
      p = row.parent;
    }
    return out;
  }

  /** Mounts every committed remote snapshot again (after a restart); a failure is logged, and the others go on. */
  async restore(): Promise<{ mounted: number; failed: number }> {
    const rows = this.meta.all().filter((r) => r.remote && r.kind === KIND.COMMITTED);
    let mounted = 0;
    let failed = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < rows.length) {
        const r = rows[next++] as SnapshotRow;
        await this.restoreOne(r).then((ok) => (ok ? mounted++ : failed++));
      }
    };
    await Promise.all(Array.from({ length: Math.min(RESTORE_PARALLEL, rows.length) }, worker));
    return { mounted, failed };
  }

  private async restoreOne(r: SnapshotRow): Promise<boolean> {
    const fs = this.fsDir(r.id);
    try {
      // A dead mount left by a killed service is there (ENOTCONN): the provider replaces it.
      await mkdir(fs, { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOTCONN') throw err;
      });
      const res = await this.remote.mount(fs, r.labels);
      if (!res.ok) this.log.error({ key: r.key, reason: res.reason }, 'remote snapshot not mounted again; containers using it see an empty layer until it is');
      return res.ok;
    } catch (err) {
      this.log.error({ key: r.key, err }, 'remote snapshot not mounted again; containers using it see an empty layer until it is');
      return false;
    }
  }

  private async create(kind: Kind, key: string, parent: string, labels: Record<string, string>): Promise<SnapshotRow> {
    if (key === '') throw invalid('a snapshot needs a key');
    if (this.meta.get(key) !== undefined) throw exists(`snapshot ${key}`);
    if (parent !== '') {
      const p = this.meta.get(parent);
      if (p === undefined) throw notFound(`parent ${parent}`);
      if (p.kind !== KIND.COMMITTED) throw invalid(`parent ${parent} is not a committed snapshot`);
    }
    const now = Date.now();
    const row = this.meta.insert({ key, kind, parent, labels, created: now, updated: now, size: 0, inodes: 0, remote: false });
    await mkdir(this.fsDir(row.id), { recursive: true });
    if (kind === KIND.ACTIVE) await mkdir(join(this.dir(row.id), 'work'), { recursive: true });
    return row;
  }

  async prepare(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    const target = labels[TARGET_LABEL];
    if (target !== undefined && target !== '') {
      // Pulled already (another pull of the same layer): containerd finds it by the label.
      const there = this.meta.get(target);
      if (there !== undefined && there.kind === KIND.COMMITTED) throw exists(`snapshot ${target}`);
    }
    const row = await this.create(KIND.ACTIVE, key, parent, labels);
    if (target !== undefined && target !== '') {
      const res = await this.remote.mount(this.fsDir(row.id), labels).catch((err: unknown) => ({ ok: false as const, reason: (err as Error).message }));
      if (res.ok) return this.commitRemote(row, target, labels);
      this.log.info({ key, target, reason: res.reason }, `NOT LAZY: ${res.reason}; containerd unpacks this layer`);
    }
    return this.mountsOf(row);
  }

  /** The remote layer is mounted at the new snapshot's fs: it becomes `target`, and containerd is told it exists. */
  private async commitRemote(row: SnapshotRow, target: string, labels: Record<string, string>): Promise<never> {
    const still = this.meta.get(row.key);
    if (still === undefined || this.meta.get(target) !== undefined) {
      // Removed meanwhile, or a concurrent pull of the same layer committed it first.
      await this.remote.unmount(this.fsDir(row.id));
      if (still !== undefined) await this.removeRow(still);
      throw exists(`snapshot ${target}`);
    }
    this.meta.commit(row.key, target, { ...labels, [REMOTE_LABEL]: REMOTE_VALUE }, { size: 0, inodes: 0 }, true, Date.now());
    this.log.info({ key: row.key, target, id: row.id }, 'remote snapshot committed');
    throw exists(`snapshot ${target}`);
  }

  async view(key: string, parent: string, labels: Record<string, string>): Promise<Mount[]> {
    return this.mountsOf(await this.create(KIND.VIEW, key, parent, labels));
  }

  mounts(key: string): Mount[] {
    const r = this.row(key);
    if (r.kind !== KIND.ACTIVE && r.kind !== KIND.VIEW) throw precondition(`snapshot ${key} is not active or a view`);
    return this.mountsOf(r);
  }

  /** As containerd's overlayfs snapshotter mounts them: lowerdirs nearest parent first. */
  private mountsOf(r: SnapshotRow): Mount[] {
    const parents = this.parents(r);
    if (parents.length === 0) {
      return [{ type: 'bind', source: this.fsDir(r.id), options: [r.kind === KIND.VIEW ? 'ro' : 'rw', 'rbind'] }];
    }
    const lower = parents.map((p) => this.fsDir(p.id));
    if (r.kind === KIND.VIEW) {
      if (lower.length === 1) return [{ type: 'bind', source: lower[0] as string, options: ['ro', 'rbind'] }];
      return [{ type: 'overlay', source: 'overlay', options: [`lowerdir=${lower.join(':')}`] }];
    }
    return [{
      type: 'overlay',
      source: 'overlay',
      options: [`workdir=${join(this.dir(r.id), 'work')}`, `upperdir=${this.fsDir(r.id)}`, `lowerdir=${lower.join(':')}`],
    }];
  }

  async commit(name: string, key: string, labels: Record<string, string>): Promise<void> {
    const r = this.row(key);
    if (r.kind !== KIND.ACTIVE) throw precondition(`snapshot ${key} is not active`);
    if (this.meta.get(name) !== undefined) throw exists(`snapshot ${name}`);
    const usage = await diskUsage(this.fsDir(r.id));
    // The walk awaited: the key may have been removed or the name taken meanwhile.
    if (this.meta.get(key)?.id !== r.id) throw notFound(`snapshot ${key}`);
    if (this.meta.get(name) !== undefined) throw exists(`snapshot ${name}`);
    this.meta.commit(key, name, Object.keys(labels).length > 0 ? labels : r.labels, usage, false, Date.now());
  }

  async remove(key: string): Promise<void> {
    const r = this.row(key);
    if (this.meta.hasChildren(key)) throw precondition(`cannot remove snapshot ${key}: it has children`);
    await this.removeRow(r);
  }

  private async removeRow(r: SnapshotRow): Promise<void> {
    this.meta.remove(r.key);
    if (r.remote) await this.remote.unmount(this.fsDir(r.id));
    await this.removeDir(r.id);
  }

  /** A snapshot's directory, after taking off whatever is still mounted in it (never deleting through a mount). */
  private async removeDir(id: number): Promise<void> {
    const dir = this.dir(id);
    if (mountsUnder(dir).length > 0) {
      await this.remote.unmount(this.fsDir(id));
      unmountTree(dir);
    }
    if (mountsUnder(dir).length > 0) {
      this.log.warn({ dir }, 'still mounted; its directory is left for Cleanup');
      return;
    }
    await rm(dir, { recursive: true, force: true });
  }

  stat(key: string): Info {
    return infoOf(this.row(key));
  }

  /** Labels only: paths `labels` (all) or `labels.<key>` (one; absent from `info` means delete); no paths: all labels. */
  update(info: { name: string; labels: Record<string, string> }, paths: readonly string[]): Info {
    const r = this.row(info.name);
    let labels: Record<string, string>;
    if (paths.length === 0) labels = { ...info.labels };
    else {
      labels = { ...r.labels };
      for (const p of paths) {
        if (p === 'labels') labels = { ...info.labels };
        else if (p.startsWith('labels.')) {
          const k = p.slice('labels.'.length);
          const v = info.labels[k];
          if (v === undefined) delete labels[k];
          else labels[k] = v;
        } else throw invalid(`cannot update field ${p} of snapshot ${info.name} (only labels)`);
      }
    }
    this.meta.setLabels(info.name, labels, Date.now());
    return this.stat(info.name);
  }

  list(): Info[] {
    return this.meta.all().map(infoOf);
  }

  async usage(key: string): Promise<{ size: number; inodes: number }> {
    const r = this.row(key);
    if (r.remote) return { size: 0, inodes: 0 };
    if (r.kind === KIND.ACTIVE) return diskUsage(this.fsDir(r.id));
    return { size: r.size, inodes: r.inodes };
  }

  /** Directories no snapshot owns any more (a crash between the row and the directory, a Remove that found a mount). */
  async cleanup(): Promise<number> {
    const ids = this.meta.ids();
    let removed = 0;
    for (const name of await readdir(this.snapshots).catch(() => [] as string[])) {
      const id = Number(name);
      if (String(id) === name && ids.has(id)) continue;
      const dir = join(this.snapshots, name);
      await this.remote.unmount(join(dir, 'fs'));
      unmountTree(dir);
      if (mountsUnder(dir).length > 0) continue;
      await rm(dir, { recursive: true, force: true });
      removed++;
    }
    return removed;
  }

  close(): void {
    this.meta.close();
  }
}
