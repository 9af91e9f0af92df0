// Several processes indexing the same image into one state root at the same time: every
// one succeeds, and each layer is imported exactly once (BEGIN IMMEDIATE + re-check).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { runCli } from '../helpers/cli.js';
import { fixturesDir } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

describe('a state root shared by concurrent processes', () => {
  it('four processes, one import per layer, all answers identical', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const ref = `oci:${join(fixturesDir(), 'esgz-chunk64k', 'oci')}`;
      const runs = await Promise.all(Array.from({ length: 4 }, () => runCli(['ls', '--root', dir, '-R', '-l', '--json', ref, '/'])));
      for (const r of runs) assert.equal(r.code, 0, r.stderr);
      const outputs = new Set(runs.map((r) => r.stdout.toString()));
      assert.equal(outputs.size, 1, 'every process sees the same tree');
      const db = new Database(join(dir, 'meta.db'), { readonly: true });
      try {
        const layers = db.prepare('SELECT count(*) AS n, sum(node_count) AS nodes FROM layers').get() as { n: number; nodes: number };
        const nodes = (db.prepare('SELECT count(*) AS n FROM nodes').get() as { n: number }).n;
        assert.equal(layers.n, 3);
        assert.equal(nodes, layers.nodes, 'no layer was imported twice');
      } finally {
        db.close();
      }
    } finally {
      cleanup();
    }
  });
});
