// Learned prefetch: the order in which files of an image were first read, kept in meta.db
// per image (manifest digest), so the next mount of that image prefetches them first even
// when the image has no landmark; and exported for the converter's prioritized list.
//
//   access_profile  (image, seq) → layer digest and the file's path in that layer. A file
//                   appears once per image (first access wins); at most MAX_ENTRIES rows
//                   per image. Rows are added in batches, never one write per read.
import type Database from 'better-sqlite3';

export interface ProfileEntry {
  readonly layer: string;
  readonly path: string;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS access_profile (
  image TEXT NOT NULL,
  seq INTEGER NOT NULL,
  layer TEXT NOT NULL,
  path TEXT NOT NULL,
  PRIMARY KEY (image, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS access_profile_file ON access_profile(image, layer, path);
`;

/** A profile longer than this stops growing: start-up sets are hundreds of files, not tens of thousands. */
export const MAX_ENTRIES = 10_000;
const FLUSH_MS = 1000;

export class ProfileStore {
  private readonly sList;
  private readonly sCount;
  private readonly sNext;
  private readonly sAdd;
  private readonly sClear;

  constructor(private readonly db: Database.Database) {
    db.exec(SCHEMA);
    this.sList = db.prepare('SELECT layer, path FROM access_profile WHERE image = ? ORDER BY seq');
    this.sCount = db.prepare('SELECT count(*) FROM access_profile WHERE image = ?').pluck();
    this.sNext = db.prepare('SELECT coalesce(max(seq), -1) + 1 FROM access_profile WHERE image = ?').pluck();
    this.sAdd = db.prepare('INSERT OR IGNORE INTO access_profile (image, seq, layer, path) VALUES (?, ?, ?, ?)');
    this.sClear = db.prepare('DELETE FROM access_profile WHERE image = ?');
  }

  list(image: string): ProfileEntry[] {
    return this.sList.all(image) as ProfileEntry[];
  }

  /** Appends the entries not yet in the image's profile, in order, up to MAX_ENTRIES. Safe across processes. */
  append(image: string, entries: readonly ProfileEntry[]): number {
    return this.db.transaction(() => {
      let count = this.sCount.get(image) as number;
      let seq = this.sNext.get(image) as number;
      let added = 0;
      for (const e of entries) {
        if (count >= MAX_ENTRIES) break;
        if (this.sAdd.run(image, seq, e.layer, e.path).changes === 1) {
          seq++;
          count++;
          added++;
        }
      }
      return added;
    }).immediate();
  }

  clear(image: string): number {
    return this.sClear.run(image).changes;
  }
}

/** Collects first reads in memory and appends them in batches. */
export class ProfileRecorder {
  private readonly seen = new Set<string>();
  private pending: ProfileEntry[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly store: ProfileStore,
    private readonly image: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  record(layer: string, path: string): void {
    const key = `${layer}\0${path}`;
    if (this.seen.has(key) || this.seen.size >= MAX_ENTRIES) return;
    this.seen.add(key);
    this.pending.push({ layer, path });
    this.timer ??= setTimeout(() => this.flush(), FLUSH_MS).unref();
  }

  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.pending.length === 0) return;
    const batch = this.pending;
    this.pending = [];
    try {
      this.store.append(this.image, batch);
    } catch (err) {
      this.onError(err);
    }
  }
}
