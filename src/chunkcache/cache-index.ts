// The chunk cache's index in meta.db, apart from the store: a mount's first request
// (layer/early-fetch.ts, before the CLI loads) asks it which chunks are cached already.
export const CACHE_INDEX_SCHEMA = `
CREATE TABLE IF NOT EXISTS cache_chunks (
  digest BLOB PRIMARY KEY,
  size INTEGER NOT NULL,
  last_use INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS cache_chunks_lru ON cache_chunks(last_use);
`;

/** One row, or none, for a chunk's raw sha256. */
export const CACHED_SQL = 'SELECT 1 FROM cache_chunks WHERE digest = ?';
