// How many times podman holds each layer of the store, kept in SQLite so that a restarted
// service knows which layers its runtime still uses (and mounts them again at once) and
// which it may let go.
import Database from 'better-sqlite3';

export interface UseRow {
  readonly digest: string;
  /** The reference it was last looked up under (to mount it again after a restart). */
  readonly ref: string;
  readonly uses: number;
}

export class LayerUses {
  private readonly db: Database.Database;

  constructor(file: string) {
    this.db = new Database(file);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.exec('CREATE TABLE IF NOT EXISTS uses (digest TEXT PRIMARY KEY, ref TEXT NOT NULL, uses INTEGER NOT NULL)');
  }

  get(digest: string): number {
    const r = this.db.prepare('SELECT uses FROM uses WHERE digest = ?').get(digest) as { uses: number } | undefined;
    return r?.uses ?? 0;
  }

  /** One more use; returns the count. */
  add(digest: string, ref: string): number {
    this.db.prepare('INSERT INTO uses (digest, ref, uses) VALUES (?, ?, 1) ON CONFLICT(digest) DO UPDATE SET uses = uses + 1, ref = excluded.ref').run(digest, ref);
    return this.get(digest);
  }

  /** One use fewer (never below 0); returns the count. */
  release(digest: string): number {
    this.db.prepare('UPDATE uses SET uses = MAX(uses - 1, 0) WHERE digest = ?').run(digest);
    const n = this.get(digest);
    if (n === 0) this.db.prepare('DELETE FROM uses WHERE digest = ?').run(digest);
    return n;
  }

  inUse(): UseRow[] {
    return this.db.prepare('SELECT digest, ref, uses FROM uses WHERE uses > 0 ORDER BY digest').all() as UseRow[];
  }

  close(): void {
    this.db.close();
  }
}
