// An in-memory meta.db with TOCs imported straight from JSON: fast tree tests that need
// no blob (chunk extents are checked against a fake data region).
import { openMetaDb, InodeTable, type LayerRow } from '../../src/toc/inode-db.js';
import { importToc } from '../../src/toc/importer.js';

export interface TocDb {
  table: InodeTable;
  layers: LayerRow[];
}

let counter = 0;

export function tocDb(tocs: ReadonlyArray<{ entries: unknown[] | null } | string>, dataEnd = 1 << 30): TocDb {
  const db = openMetaDb(':memory:');
  const layers = tocs.map((t) =>
    importToc(
      db,
      {
        digest: `sha256:${(++counter).toString(16).padStart(64, '0')}`,
        tocCompressedDigest: undefined,
        verified: true,
        format: 'estargz',
        compression: 'gzip',
        blobSize: dataEnd + 100,
        footerSize: 51,
        tocOffset: dataEnd,
        tocCompressedSize: 50,
        dataEnd,
      },
      Buffer.from(typeof t === 'string' ? t : JSON.stringify({ version: 1, ...t })),
    ),
  );
  return { table: new InodeTable(db), layers };
}
