// The snapshotter's metadata: one SQLite file (`<dir>/metadata.db`, WAL) that outlives the
// process (the remote snapshots are mounted again from it after a restart).
//
// Schema (PRAGMA user_version = 1):
//   snapshots(
//     id      INTEGER PRIMARY KEY AUTOINCREMENT  -- names the directory snapshots/<id>; never reused,
//                                               -- kept across a commit
//     key     TEXT UNIQUE     -- the key of an active/view snapshot, the name of a committed one
//     kind    INTEGER         -- VIEW=1, ACTIVE=2, COMMITTED=3 (containerd's Kind numbers)
//     parent  TEXT            -- the parent's key, '' for none; always a committed snapshot
//     labels  TEXT            -- JSON object of strings
//     created, updated INTEGER  -- ms since the epoch
//     size, inodes INTEGER    -- usage recorded at commit (0 for remote snapshots)
//     remote  INTEGER         -- 1: mounted lazily by the provider (a remote snapshot)
//   )
// One connection, synchronous calls: a check and the write that depends on it run with no
// await between them, which is all the serialization the snapshotter needs.
import Database from 'better-sqlite3';

export const KIND = { VIEW: 1, ACTIVE: 2, COMMITTED: 3 } as const;
export type Kind = (typeof KIND)[keyof typeof KIND];

const SCHEMA_VERSION = 1;
/** Longer parent chains than this mean a damaged table (a cycle), not an image. */
const MAX_DEPTH = 10_000;

export interface SnapshotRow {
  readonly id: number;
  readonly key: string;
  readonly kind: Kind;
  /** The parent's key ('' for none). */
  readonly parent: string;
  readonly labels: Readonly<Record<string, string>>;
  /** Milliseconds since the epoch. */
  readonly created: number;
  readonly updated: number;
  /** Bytes and inodes recorded at commit. */
  readonly size: number;
  readonly inodes: number;
  /** Mounted lazily by the remote layer provider (a remote snapshot). */
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

/** A row of the parent chain: all NULL but the key where the parent has no row. */
type ChainRow = Omit<RawRow, 'id'> & { id: number | null; depth: number };

const toRow = (r: RawRow): SnapshotRow => ({
  id: r.id, key: r.key, kind: r.kind as Kind, parent: r.parent, labels: JSON.parse(r.labels) as Record<string, string>,
  created: r.created, updated: r.updated, size: r.size, inodes: r.inodes, remote: r.remote === 1,
});

export class SnapshotMetadata {
  private readonly db: Database.Database;
  private readonly getStmt: Database.Statement<[string], RawRow>;
  private readonly allStmt: Database.Statement<[], RawRow>;
  private readonly hasIdStmt: Database.Statement<[number], { one: number }>;
  private readonly childStmt: Database.Statement<[string], { one: number }>;
  private readonly chainStmt: Database.Statement<[string, number], ChainRow>;
  private readonly insertStmt: Database.Statement<[string, number, string, string, number, number, number, number, number]>;
  private readonly commitStmt: Database.Statement<[string, number, string, number, number, number, number, number, string]>;
  private readonly labelsStmt: Database.Statement<[string, number, string]>;
  private readonly removeStmt: Database.Statement<[string]>;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('busy_timeout = 5000');
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      this.db.close();
      throw new Error(`${file}: snapshot metadata of schema version ${version}, newer than this stargzfs understands (${SCHEMA_VERSION})`);
    }
    // Version 0 files (written before the version was recorded) have this very table.
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
      PRAGMA user_version = ${SCHEMA_VERSION};
    `);
    this.getStmt = this.db.prepare('SELECT * FROM snapshots WHERE key = ?');
    this.allStmt = this.db.prepare('SELECT * FROM snapshots ORDER BY id');
    this.hasIdStmt = this.db.prepare('SELECT 1 AS one FROM snapshots WHERE id = ?');
    this.childStmt = this.db.prepare('SELECT 1 AS one FROM snapshots WHERE parent = ? LIMIT 1');
    this.chainStmt = this.db.prepare(`
      WITH RECURSIVE chain(key, depth) AS (
        SELECT parent, 1 FROM snapshots WHERE key = ? AND parent != ''
        UNION ALL
        SELECT s.parent, c.depth + 1 FROM snapshots s JOIN chain c ON s.key = c.key WHERE s.parent != '' AND c.depth < ?
      )
      SELECT c.key, s.id, s.kind, s.parent, s.labels, s.created, s.updated, s.size, s.inodes, s.remote, c.depth
      FROM chain c LEFT JOIN snapshots s ON s.key = c.key ORDER BY c.depth`);
    this.insertStmt = this.db.prepare('INSERT INTO snapshots (key, kind, parent, labels, created, updated, size, inodes, remote) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)');
    this.commitStmt = this.db.prepare('UPDATE snapshots SET key = ?, kind = ?, labels = ?, created = ?, updated = ?, size = ?, inodes = ?, remote = ? WHERE key = ?');
    this.labelsStmt = this.db.prepare('UPDATE snapshots SET labels = ?, updated = ? WHERE key = ?');
    this.removeStmt = this.db.prepare('DELETE FROM snapshots WHERE key = ?');
  }

  get(key: string): SnapshotRow | undefined {
    const r = this.getStmt.get(key);
    return r !== undefined ? toRow(r) : undefined;
  }

  all(): SnapshotRow[] {
    return this.allStmt.all().map(toRow);
  }

  /** Whether a snapshot owns the directory snapshots/<id>. */
  hasId(id: number): boolean {
    return this.hasIdStmt.get(id) !== undefined;
  }

  hasChildren(key: string): boolean {
    return this.childStmt.get(key) !== undefined;
  }

  /**
   * The parents of `key`, nearest first, down to the base layer. `missing` names the first
   * parent that has no row (a damaged chain); the rows before it are returned.
   */
  parents(key: string): { rows: SnapshotRow[]; missing: string | undefined } {
    const rows: SnapshotRow[] = [];
    for (const r of this.chainStmt.all(key, MAX_DEPTH)) {
      // The LEFT JOIN gives a row of NULLs (but the key) for a parent that is not there.
      if (r.id === null) return { rows, missing: r.key };
      rows.push(toRow({ ...r, id: r.id }));
    }
    return { rows, missing: undefined };
  }

  insert(row: Omit<SnapshotRow, 'id'>): SnapshotRow {
    const info = this.insertStmt.run(row.key, row.kind, row.parent, JSON.stringify(row.labels), row.created, row.updated, row.size, row.inodes, row.remote ? 1 : 0);
    return { ...row, id: Number(info.lastInsertRowid) };
  }

  /** An active snapshot becomes committed under `name`: same id, same directory, the labels given (not inherited). */
  commit(key: string, name: string, labels: Readonly<Record<string, string>>, usage: { size: number; inodes: number }, remote: boolean, now: number): void {
    this.commitStmt.run(name, KIND.COMMITTED, JSON.stringify(labels), now, now, usage.size, usage.inodes, remote ? 1 : 0, key);
  }

  setLabels(key: string, labels: Readonly<Record<string, string>>, now: number): void {
    this.labelsStmt.run(JSON.stringify(labels), now, key);
  }

  remove(key: string): void {
    this.removeStmt.run(key);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
