// The learned access profile in meta.db (layer/profile.ts): chunks in the order first
// read, files for the converter, and a file-level profile of an earlier version kept.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import type { ChunkRow } from '../../src/toc/inode-db.js';
import { MAX_ENTRIES, ProfileRecorder, ProfileStore } from '../../src/layer/profile.js';

const chunk = (at: number, chunkOffset = 0): ChunkRow => ({
  chunk_offset: chunkOffset, chunk_size: 4096, blob_offset: at, blob_end: at + 100, inner_offset: 0, digest: Buffer.alloc(32, at % 256), zeros: 0,
});

describe('access profile', () => {
  it('records each chunk once, in the order first read, and lists files in that order', () => {
    const db = new Database(':memory:');
    const store = new ProfileStore(db);
    const rec = new ProfileRecorder(store, 'img', (err) => assert.fail(String(err)));
    rec.record('L', 'bin/app', [chunk(1000, 4096)]);
    rec.record('L', 'lib/a.so', [chunk(50)]);
    rec.record('L', './bin/app', [chunk(1000, 4096), chunk(900, 0)]);
    rec.flush();
    rec.record('L', 'bin/app', [chunk(900, 0)]);
    rec.flush();
    assert.deepEqual(store.list('img').map((e) => [e.path, e.chunk?.chunk_offset, e.chunk?.blob_offset]), [
      ['bin/app', 4096, 1000], ['lib/a.so', 0, 50], ['bin/app', 0, 900],
    ]);
    assert.deepEqual(store.list('img')[0]?.chunk, chunk(1000, 4096), 'the chunk as read, digest included');
    assert.deepEqual(store.files('img'), [{ layer: 'L', path: 'bin/app' }, { layer: 'L', path: 'lib/a.so' }]);
    // Another process appending the same chunks adds nothing.
    assert.equal(store.append('img', store.list('img')), 0);
    assert.equal(store.clear('img'), 3);
    db.close();
  });

  it('stops at MAX_ENTRIES chunks', () => {
    const db = new Database(':memory:');
    const store = new ProfileStore(db);
    const rec = new ProfileRecorder(store, 'img', (err) => assert.fail(String(err)));
    for (let i = 0; i < MAX_ENTRIES + 50; i++) rec.record('L', `f${i}`, [chunk(i)]);
    rec.flush();
    assert.equal(store.list('img').length, MAX_ENTRIES);
    db.close();
  });

  it('takes over the file-level profile of an earlier version as whole-file rows', () => {
    const db = new Database(':memory:');
    db.exec(`CREATE TABLE access_profile (image TEXT NOT NULL, seq INTEGER NOT NULL, layer TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (image, seq)) WITHOUT ROWID;
      INSERT INTO access_profile VALUES ('img', 0, 'L', 'usr/bin/python3'), ('img', 1, 'L', 'usr/lib/libc.so.6');`);
    const store = new ProfileStore(db);
    assert.deepEqual(store.list('img'), [{ layer: 'L', path: 'usr/bin/python3' }, { layer: 'L', path: 'usr/lib/libc.so.6' }]);
    assert.equal(db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'access_profile'").pluck().get(), 0);
    // New chunks follow the old rows.
    store.append('img', [{ layer: 'L', path: 'usr/bin/python3', chunk: chunk(7) }]);
    assert.deepEqual(store.files('img').map((f) => f.path), ['usr/bin/python3', 'usr/lib/libc.so.6']);
    assert.equal(store.list('img').length, 3);
    db.close();
  });
});
