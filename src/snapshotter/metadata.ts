// The snapshotter's metadata: one SQLite file (`<root>/snapshotter/metadata.db`, WAL), one
// row per snapshot by its key (a committed snapshot's key is its name). The row id names
// the snapshot's directory and never changes, also across a commit. Survives restarts:
// the service mounts remote snapshots again from it.
import Database from 'better-sqlite3';

export const KIND = { VIEW: 1, ACTIVE: 2, COMMITTED: 3 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];

export interface SnapshotRow {
  readonly id: number;
  readonly key: string;
  readonly kind: Kind;
  /** The parent's key ('' for none). */
  readonly parent: string;
  readonly labels: Record<string, string>;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly updated: number;
  readonly size: number;
  readonly inodes: number;
  /** Mounted lazily by the service (a remote snapshot). */
  readonly remote: boolean;
}

interface RawRow {
  id: number;
  key: string;
  kind: number;
  parent: string;
  labels: string;
  created: number;
  updated: number;
  size: number;
  inodes: number;
  remote: number;
}

const toRow = (r: RawRow): SnapshotRow => ({
  id: r.id, key: r.key, kind: r.kind as Kind, parent: r.parent, labels: JSON.parse(r.labels) as Record<string, string>,
  created: r.created, updated: r.updated, size: r.size, inodes: r.inodes, remote: r.remote === 1,
});

export class SnapshotMetadata {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS snapshots (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        key TEXT NOT NULL UNIQUE,
        kind INTEGER NOT NULL,
        parent TEXT NOT NULL DEFAULT '',
        labels TEXT NOT NULL DEFAULT '{}',
        created INTEGER NOT NULL,
        updated INTEGER NOT NULL,
        size INTEGER NOT NULL DEFAULT 0,
        inodes INTEGER NOT NULL DEFAULT 0,
        remote INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX IF NOT EXISTS snapshots_parent ON snapshots(parent);
    `);
  }

  get(key: string): SnapshotRow | undefined {
    const r = this.db.prepare('SELECT * FROM snapshots WHERE key = ?').get(key) as RawRow | undefined;
    return r !== undefined ? toRow(r) : undefined;
  }

  all(): SnapshotRow[] {
    return (this.db.prepare('SELECT * FROM snapshots ORDER BY id').all() as RawRow[]).map(toRow);
  }

  ids(): Set<number> {
    return new Set((this.db.prepare('SELECT id FROM snapshots').all() as Array<{ id: number }>).map((r) => r.id));
  }

  hasChildren(key: string): boolean {
    return this.db.prepare('SELECT 1 FROM snapshots WHERE parent = ? LIMIT 1').get(key) !== undefined;
  }

  insert(row: Omit<SnapshotRow, 'id'>): SnapshotRow {
    const info = this.db
      .prepare('INSERT INTO snapshots (key, kind, parent, labels, created, updated, size, inodes, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)')
      .run(row.key, row.kind, row.parent, JSON.stringify(row.labels), row.created, row.updated, row.size, row.inodes, row.remote ? 1 : 0);
    return { ...row, id: Number(info.lastInsertRowid) };
  }

  /** An active snapshot becomes committed under `name`: same id, same directory. */
  commit(key: string, name: string, labels: Record<string, string>, usage: { size: number; inodes: number }, remote: boolean, now: number): void {
    this.db
      .prepare('UPDATE snapshots SET key = ?, kind = ?, labels = ?, size = ?, inodes = ?, remote = ?, updated = ? WHERE key = ?')
      .run(name, KIND.COMMITTED, JSON.stringify(labels), usage.size, usage.inodes, remote ? 1 : 0, now, key);
  }

  setLabels(key: string, labels: Record<string, string>, now: number): void {
    this.db.prepare('UPDATE snapshots SET labels = ?, updated = ? WHERE key = ?').run(JSON.stringify(labels), now, key);
  }

  remove(key: string): void {
    this.db.prepare('DELETE FROM snapshots WHERE key = ?').run(key);
  }

  close(): void {
    this.db.close();
  }
}
