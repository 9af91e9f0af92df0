// containerd's snapshotter semantics (those of its overlayfs snapshotter over
// CD/snapshots/storage/bolt.go) on SQLite metadata and directories
// `<dir>/snapshots/<id>/{fs,work}`, plus remote snapshots: a Prepare that names its target
// (`containerd.io/snapshot.ref`) and whose layer the provider can mount lazily is committed
// under the target and answered AlreadyExists, so containerd neither downloads nor
// unpacks that layer (RUNTIMES.md A2).
//
// Metadata calls are synchronous (better-sqlite3), so a check and the write it guards run
// with no await between them. Provider calls and disk walks do await: what they were
// started for is checked again after them.
import { lstat, mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';
import { ClosedError, SnapshotArgumentError, SnapshotExistsError, SnapshotNotFoundError, SnapshotPreconditionError } from '../errors.js';
import { listFilter } from './list-filter.js';
import { KIND, SnapshotMetadata, type Kind, type SnapshotRow } from './metadata.js';
import { mountsUnder } from '../service/mountpoint.js';

export { KIND, type Kind } from './metadata.js';

export interface RemoteLayerProvider {
  /** Mount the layer that `labels` describe lazily at `dir` (an existing empty directory). */
  mount(dir: string, labels: Readonly<Record<string, string>>): Promise<{ ok: true } | { ok: false; reason: string }>;
  /** Unmount what mount() put at `dir` (no error if nothing is mounted). */
  unmount(dir: string): Promise<void>;
}

/** containerd's Mount: what to pass to mount(2) (or `mount -t TYPE -o OPTIONS SOURCE TARGET`). */
export interface Mount {
  readonly type: string;
  readonly source: string;
  readonly target?: string;
  readonly options: readonly string[];
}

export interface Info {
  readonly name: string;
  /** The parent's name, '' for none. */
  readonly parent: string;
  readonly kind: Kind;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly updated: number;
  readonly labels: Readonly<Record<string, string>>;
}

export interface Usage {
  /** Bytes on disk (512-byte blocks of each inode, hard links once). */
  readonly size: number;
  readonly inodes: number;
}

/** The Prepare label naming the committed snapshot a layer will become (the unpacker's chain ID). */
export const TARGET_LABEL = 'containerd.io/snapshot.ref';
/** Marks a snapshot mounted lazily; restore() mounts these again after a restart. */
export const REMOTE_LABEL = 'containerd.io/snapshot/remote';
/** The value the reference snapshotter gives REMOTE_LABEL. */
export const REMOTE_VALUE = 'remote snapshot';
/** Remote snapshots mounted again at once after a restart: each may fetch a TOC. */
const RESTORE_PARALLEL = 8;

export const infoOf = (r: SnapshotRow): Info => ({ name: r.key, parent: r.parent, kind: r.kind, created: r.created, updated: r.updated, labels: r.labels });

/** Disk use of a tree the way containerd's fs.DiskUsage counts it: blocks of each inode once, and the inodes. */
async function diskUsage(dir: string): Promise<Usage> {
  const seen = new Set<string>();
  let size = 0;
  const walk = async (path: string): Promise<void> => {
    let st;
    try {
      st = await lstat(path);
    } catch {
      return; // removed meanwhile: a container writing while containerd commits
    }
    const id = `${st.dev}:${st.ino}`;
    if (!seen.has(id)) {
      seen.add(id);
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
  private closed = false;

  /**
   * The snapshotter kept in `dir` (created if new; `<state root>/snapshotter` in the
   * service): `dir/metadata.db` and `dir/snapshots/<id>/`. Remote snapshots are not
   * mounted yet: restore() does that.
   */
  static async open(dir: string, remote: RemoteLayerProvider, log: Logger): Promise<Snapshotter> {
    await mkdir(join(dir, 'snapshots'), { recursive: true });
    return new Snapshotter(dir, remote, log);
  }

  constructor(readonly dir: string, private readonly remote: RemoteLayerProvider, log: Logger) {
    this.log = log.child({ mod: 'snapshotter' });
    this.snapshots = join(dir, 'snapshots');
    this.meta = new SnapshotMetadata(join(dir, 'metadata.db'));
  }

  private dirOf(id: number): string {
    return join(this.snapshots, String(id));
  }

  /** Where snapshot `id`'s files are (the upper dir of an active one; the lazy mount of a remote one). */
  fsDir(id: number): string {
    return join(this.dirOf(id), 'fs');
  }

  private open(): SnapshotMetadata {
    if (this.closed) throw new ClosedError('snapshotter');
    return this.meta;
  }

  private row(key: string): SnapshotRow {
    const r = this.open().get(key);
    if (r === undefined) throw new SnapshotNotFoundError(key);
    return r;
  }

  /** The parents of a snapshot, nearest first (the base layer last). */
  private parents(r: SnapshotRow): SnapshotRow[] {
    const { rows, missing } = this.open().parents(r.key);
    if (missing !== undefined) throw new SnapshotNotFoundError(missing, 'parent');
    return rows;
  }

  /** Mounts every committed remote snapshot again (after a restart); a failure is logged, and the others go on. */
  async restore(): Promise<{ mounted: number; failed: number }> {
    const rows = this.open().all().filter((r) => r.remote && r.kind === KIND.COMMITTED);
    let mounted = 0;
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let r = rows[next++]; r !== undefined; r = rows[next++]) if (await this.restoreOne(r)) mounted++;
    };
    await Promise.all(Array.from({ length: Math.min(RESTORE_PARALLEL, rows.length) }, worker));
    return { mounted, failed: rows.length - mounted };
  }

  private async restoreOne(r: SnapshotRow): Promise<boolean> {
    const why = 'remote snapshot not mounted again: containers using it see an empty layer until it is';
    try {
      // A dead FUSE mount left by a killed process answers ENOTCONN; the provider replaces it.
      await mkdir(this.fsDir(r.id), { recursive: true }).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOTCONN') throw err;
      });
      const res = await this.remote.mount(this.fsDir(r.id), r.labels);
      if (!res.ok) this.log.error({ key: r.key, id: r.id, reason: res.reason }, why);
      return res.ok;
    } catch (err) {
      this.log.error({ key: r.key, id: r.id, err }, why);
      return false;
    }
  }

  /** A new active or view snapshot: its row, then its directories (bolt's CreateSnapshot order of checks). */
  private async create(kind: Kind, key: string, parent: string, labels: Readonly<Record<string, string>>): Promise<SnapshotRow> {
    const meta = this.open();
    if (key === '') throw new SnapshotArgumentError(key, 'a snapshot needs a key');
    if (parent !== '') {
      const p = meta.get(parent);
      if (p === undefined) throw new SnapshotNotFoundError(parent, 'parent');
      if (p.kind !== KIND.COMMITTED) throw new SnapshotArgumentError(key, `parent ${JSON.stringify(parent)} is not a committed snapshot`);
    }
    if (meta.get(key) !== undefined) throw new SnapshotExistsError(key);
    const now = Date.now();
    const row = meta.insert({ key, kind, parent, labels: { ...labels }, created: now, updated: now, size: 0, inodes: 0, remote: false });
    try {
      // Never into an existing directory: one left from a metadata.db that was deleted would bring old files.
      await mkdir(this.snapshots, { recursive: true });
      await mkdir(this.dirOf(row.id));
      await mkdir(this.fsDir(row.id));
      if (kind === KIND.ACTIVE) await mkdir(join(this.dirOf(row.id), 'work'));
    } catch (err) {
      if (this.meta.get(key)?.id === row.id) this.meta.remove(key);
      throw err;
    }
    return row;
  }

  /**
   * A new active snapshot on `parent` and how to mount it read-write. With TARGET_LABEL it
   * may instead become the committed snapshot of that name, mounted lazily: then it
   * throws SnapshotExistsError, which containerd takes as "done, no need to unpack".
   */
  async prepare(key: string, parent: string, labels: Readonly<Record<string, string>>): Promise<Mount[]> {
    const target = labels[TARGET_LABEL] ?? '';
    // Pulled already (an earlier pull of the same layer): containerd finds it by the label.
    if (target !== '' && this.open().get(target)?.kind === KIND.COMMITTED) throw new SnapshotExistsError(target);
    const row = await this.create(KIND.ACTIVE, key, parent, labels);
    if (target !== '') {
      const res = await Promise.resolve()
        .then(() => this.remote.mount(this.fsDir(row.id), labels))
        .catch((err: unknown): { ok: false; reason: string } => ({ ok: false, reason: err instanceof Error ? err.message : String(err) }));
      if (res.ok) return this.commitRemote(row, target, labels);
      this.log.info({ key, target, reason: res.reason }, `NOT LAZY: ${res.reason}`);
    }
    return this.mountsOf(row);
  }

  /** The layer is mounted at the new snapshot's fs: it becomes `target`, and containerd is told that exists. */
  private async commitRemote(row: SnapshotRow, target: string, labels: Readonly<Record<string, string>>): Promise<never> {
    const meta = this.open();
    const still = meta.get(row.key);
    if (still?.id !== row.id || meta.get(target) !== undefined) {
      // Removed while mounting, or a concurrent pull of the same layer committed it first:
      // its snapshot is the one containerd will find; ours goes.
      if (still?.id === row.id) meta.remove(row.key);
      try {
        await this.remote.unmount(this.fsDir(row.id));
        await this.removeDir(this.dirOf(row.id));
      } catch (err) {
        this.log.warn({ key: row.key, id: row.id, err }, 'not unmounted; its directory is left for Cleanup');
      }
      if (still?.id !== row.id) throw new SnapshotNotFoundError(row.key);
      this.log.debug({ key: row.key, target }, 'committed by a concurrent Prepare meanwhile');
      throw new SnapshotExistsError(target);
    }
    meta.commit(row.key, target, { ...labels, [REMOTE_LABEL]: REMOTE_VALUE }, { size: 0, inodes: 0 }, true, Date.now());
    this.log.info({ key: row.key, target, id: row.id }, 'remote snapshot committed');
    throw new SnapshotExistsError(target);
  }

  /** A new view snapshot of `parent` and how to mount it read-only. */
  async view(key: string, parent: string, labels: Readonly<Record<string, string>>): Promise<Mount[]> {
    return this.mountsOf(await this.create(KIND.VIEW, key, parent, labels));
  }

  /** How to mount an active or view snapshot. */
  mounts(key: string): Mount[] {
    const r = this.row(key);
    if (r.kind !== KIND.ACTIVE && r.kind !== KIND.VIEW) throw new SnapshotPreconditionError(key, 'not an active or view snapshot');
    return this.mountsOf(r);
  }

  /** As containerd's overlayfs snapshotter mounts them (RUNTIMES.md "Mounts"): lowerdirs nearest parent first. */
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
      options: [`workdir=${join(this.dirOf(r.id), 'work')}`, `upperdir=${this.fsDir(r.id)}`, `lowerdir=${lower.join(':')}`],
    }];
  }

  /**
   * Active `key` becomes committed `name`, with `labels` (replacing its own, as bolt does):
   * same id, same directory, its disk usage recorded.
   */
  async commit(name: string, key: string, labels: Readonly<Record<string, string>>): Promise<void> {
    const meta = this.open();
    if (name === '') throw new SnapshotArgumentError(key, 'a committed snapshot needs a name');
    if (meta.get(name) !== undefined) throw new SnapshotExistsError(name);
    const r = this.row(key);
    if (r.kind !== KIND.ACTIVE) throw new SnapshotPreconditionError(key, 'not an active snapshot');
    const usage = await diskUsage(this.fsDir(r.id));
    // The walk awaited: the key may have been removed, or the name taken, meanwhile.
    if (meta.get(name) !== undefined) throw new SnapshotExistsError(name);
    if (meta.get(key)?.id !== r.id) throw new SnapshotNotFoundError(key);
    meta.commit(key, name, { ...labels }, usage, false, Date.now());
  }

  /**
   * Removes a snapshot that has no children. A remote one is unmounted before its
   * directory goes; a directory that cannot go now is left to Cleanup.
   */
  async remove(key: string): Promise<void> {
    const r = this.row(key);
    if (this.open().hasChildren(key)) throw new SnapshotPreconditionError(key, 'cannot remove a snapshot that has children');
    // The row goes first: nothing can be prepared on this snapshot once its unmount starts.
    this.open().remove(key);
    if (r.remote) {
      try {
        await this.remote.unmount(this.fsDir(r.id));
      } catch (err) {
        this.log.warn({ key, id: r.id, err }, 'remote snapshot not unmounted; its directory is left for Cleanup');
        return;
      }
    }
    await this.removeDir(this.dirOf(r.id));
  }

  /** A snapshot's directory, unless something is still mounted in it (a recursive delete never goes through a mount). */
  private async removeDir(dir: string): Promise<boolean> {
    const mounted = mountsUnder(dir);
    if (mounted.length > 0) {
      this.log.warn({ dir, mounted }, 'still mounted; the directory is left for Cleanup');
      return false;
    }
    await rm(dir, { recursive: true, force: true });
    return true;
  }

  stat(key: string): Info {
    return infoOf(this.row(key));
  }

  /**
   * Labels only, as containerd's metadata store does it: path `labels` replaces them all,
   * `labels.<k>` sets one (deletes it when `info` has no such label), no paths replaces them
   * all; any other path is InvalidArgument and changes nothing.
   */
  update(info: { readonly name: string; readonly labels: Readonly<Record<string, string>> }, paths: readonly string[]): Info {
    const r = this.row(info.name);
    let labels: Record<string, string> = paths.length === 0 ? { ...info.labels } : { ...r.labels };
    for (const p of paths) {
      if (p === 'labels') labels = { ...info.labels };
      else if (p.startsWith('labels.')) {
        const k = p.slice('labels.'.length);
        const v = info.labels[k];
        if (v === undefined) delete labels[k];
        else labels[k] = v;
      } else throw new SnapshotArgumentError(info.name, `cannot update field ${JSON.stringify(p)} (only labels)`);
    }
    this.open().setLabels(info.name, labels, Date.now());
    return this.stat(info.name);
  }

  /** Every snapshot, or those any of containerd's `filters` may match (see list-filter.ts). */
  list(filters: readonly string[] = []): Info[] {
    const match = listFilter(filters);
    return this.open().all().map(infoOf).filter(match);
  }

  /** Remote: 0 (nothing of theirs is on this disk); active: walked now; committed: what the commit recorded. */
  async usage(key: string): Promise<Usage> {
    const r = this.row(key);
    if (r.remote) return { size: 0, inodes: 0 };
    if (r.kind === KIND.ACTIVE) return diskUsage(this.fsDir(r.id));
    return { size: r.size, inodes: r.inodes };
  }

  /**
   * Deletes the directories no snapshot owns (a crash between a row and its directory, a
   * Remove that found a mount), taking the provider's mount off each first. Returns how
   * many went.
   */
  async cleanup(): Promise<number> {
    let removed = 0;
    const names = await readdir(this.snapshots).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return [] as string[];
      throw err;
    });
    for (const name of names) {
      // Asked for each directory, not once before the loop: a Prepare may add a row meanwhile.
      const owned = (): boolean => /^[1-9][0-9]*$/.test(name) && this.open().hasId(Number(name));
      if (owned()) continue;
      const dir = join(this.snapshots, name);
      try {
        await this.remote.unmount(join(dir, 'fs'));
      } catch (err) {
        this.log.warn({ dir, err }, 'not unmounted; left for the next Cleanup');
        continue;
      }
      if (owned()) continue;
      if (await this.removeDir(dir)) removed++;
    }
    return removed;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.meta.close();
  }
}
