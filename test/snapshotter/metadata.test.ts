// The snapshot metadata table on its own: rows that outlive the connection, ids that are
// never reused and survive a commit, parent chains (and a damaged one), the schema version.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { KIND, SnapshotMetadata } from '../../src/snapshotter/metadata.js';
import { tempDir } from '../helpers/tmp.js';

const base = { parent: '', labels: {}, created: 1, updated: 1, size: 0, inodes: 0, remote: false };

describe('snapshot metadata (SQLite)', () => {
  it('rows, commits and parent chains outlive the connection; ids are kept by a commit and never reused', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'metadata.db');
      const m = new SnapshotMetadata(file);
      const a = m.insert({ ...base, key: 'a', kind: KIND.ACTIVE, labels: { x: '1' } });
      m.commit('a', 'A', { y: '2' }, { size: 4096, inodes: 3 }, false, 1000);
      const b = m.insert({ ...base, key: 'b', kind: KIND.ACTIVE, parent: 'A' });
      m.commit('b', 'B', {}, { size: 0, inodes: 0 }, true, 2000);
      const c = m.insert({ ...base, key: 'c', kind: KIND.VIEW, parent: 'B' });
      m.remove('c');
      m.close();

      const again = new SnapshotMetadata(file);
      try {
        assert.deepEqual(again.get('A'), { id: a.id, key: 'A', kind: KIND.COMMITTED, parent: '', labels: { y: '2' }, created: 1000, updated: 1000, size: 4096, inodes: 3, remote: false });
        assert.equal(again.get('a'), undefined);
        assert.equal(again.get('B')?.remote, true);
        assert.equal(again.get('B')?.id, b.id);
        assert.deepEqual(again.parents('B').rows.map((r) => r.key), ['A']);
        assert.deepEqual(again.parents('A'), { rows: [], missing: undefined });
        assert.ok(again.hasChildren('A'));
        assert.ok(!again.hasChildren('B'));
        assert.ok(again.hasId(a.id) && !again.hasId(c.id));
        const d = again.insert({ ...base, key: 'd', kind: KIND.VIEW, parent: 'B' });
        assert.ok(d.id > c.id, 'AUTOINCREMENT: a removed id is not handed out again (its directory may still be there)');
        assert.deepEqual(again.parents('d').rows.map((r) => r.key), ['B', 'A'], 'nearest first');
        assert.deepEqual(again.all().map((r) => r.key), ['A', 'B', 'd']);
        assert.throws(() => again.insert({ ...base, key: 'd', kind: KIND.VIEW }), /UNIQUE/);
      } finally {
        again.close();
      }
    } finally {
      cleanup();
    }
  });

  it('a parent without a row is reported with the rows before it', () => {
    const { dir, cleanup } = tempDir();
    try {
      const m = new SnapshotMetadata(join(dir, 'metadata.db'));
      try {
        m.insert({ ...base, key: 'top', kind: KIND.COMMITTED, parent: 'mid' });
        m.insert({ ...base, key: 'mid', kind: KIND.COMMITTED, parent: 'gone' });
        m.insert({ ...base, key: 'leaf', kind: KIND.ACTIVE, parent: 'top' });
        const p = m.parents('leaf');
        assert.deepEqual(p.rows.map((r) => r.key), ['top', 'mid']);
        assert.equal(p.missing, 'gone');
        assert.deepEqual(m.parents('nope'), { rows: [], missing: undefined });
      } finally {
        m.close();
      }
    } finally {
      cleanup();
    }
  });

  it('WAL, schema version 1; a newer schema is refused by name', () => {
    const { dir, cleanup } = tempDir();
    try {
      const file = join(dir, 'metadata.db');
      new SnapshotMetadata(file).close();
      const db = new Database(file);
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), 1);
      db.pragma('user_version = 2');
      db.close();
      assert.throws(() => new SnapshotMetadata(file), /schema version 2, newer than this stargzfs understands/);
    } finally {
      cleanup();
    }
  });
});
