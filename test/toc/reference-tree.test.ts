// The SQLite inode table against the in-memory reference (test/helpers/reference-tree.ts)
// on random TOCs full of collisions: duplicates, implicit parents, late directory entries,
// files replacing directories and back, hard links and chains, ./ and ../ names.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LayerView } from '../../src/toc/layer-view.js';
import { S_IFMT, S_IFDIR } from '../../src/toc/inode-db.js';
import { fileType } from '../../src/cli/entry-info.js';
import type { ViewNode } from '../../src/toc/view.js';
import { tocDb } from '../helpers/toc-db.js';
import { referenceLinks, referenceTree, type RefNode } from '../helpers/reference-tree.js';
import { int, pick, rng } from '../helpers/random.js';

function randomToc(seed: number): Array<Record<string, unknown>> {
  const r = rng(seed);
  const parts = ['a', 'b', 'c'];
  const path = (): string => Array.from({ length: int(r, 1, 3) }, () => pick(r, parts)).join('/');
  const decorate = (p: string, dir: boolean): string => pick(r, ['', '', './', '/', '../']) + p + (dir && r() < 0.7 ? '/' : '');
  const out: Array<Record<string, unknown>> = [];
  for (let i = 0; i < 50; i++) {
    const type = pick(r, ['dir', 'dir', 'reg', 'reg', 'symlink', 'hardlink', 'fifo']);
    const e: Record<string, unknown> = { name: decorate(path(), type === 'dir'), type, mode: pick(r, [0o755, 0o700, 0o4755, 0o100644]), uid: int(r, 0, 3) };
    if (type === 'symlink') e['linkName'] = path();
    if (type === 'hardlink') e['linkName'] = pick(r, ['./', '']) + path();
    out.push(e);
  }
  if (r() < 0.5) out.push({ name: './', type: 'dir', mode: 0o711 });
  return out;
}

describe('inode table ≡ reference tree', () => {
  for (let seed = 1; seed <= 150; seed++) {
    it(`random TOC, seed ${seed}`, () => {
      const entries = randomToc(seed);
      const { table, layers } = tocDb([{ entries }]);
      const view = new LayerView(table, layers[0] as never);
      const ref = referenceTree(entries);
      const links = referenceLinks(ref);
      // Inode identity must partition the paths the same way in both trees.
      const refIds = new Map<number, number>();
      const compare = (n: ViewNode, r: RefNode, path: string): void => {
        const type = fileType(n.mode);
        assert.equal(type, r.type, `seed ${seed} ${path}: type`);
        if (!r.implicit || r.children === null) assert.equal(n.mode & 0o7777, r.perm, `seed ${seed} ${path}: mode`);
        assert.equal(n.uid, r.uid, `seed ${seed} ${path}: uid`);
        assert.equal(n.link, r.link, `seed ${seed} ${path}: link`);
        assert.equal(n.nlink, links.get(r.id), `seed ${seed} ${path}: nlink`);
        const seen = refIds.get(r.id);
        if (seen === undefined) refIds.set(r.id, n.ino);
        else assert.equal(n.ino, seen, `seed ${seed} ${path}: hard link shares the inode`);
        if ((n.mode & S_IFMT) !== S_IFDIR) return;
        const names = view.readdir(n);
        assert.deepEqual(names, [...(r.children?.keys() ?? [])].sort(), `seed ${seed} ${path}: names`);
        for (const name of names) compare(view.lookup(n, name) as ViewNode, r.children?.get(name) as RefNode, `${path}/${name}`);
      };
      compare(view.root(), ref, '');
    });
  }
});
