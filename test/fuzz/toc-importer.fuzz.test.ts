// Fuzzing src/toc/importer.ts and the views over what it imports: arbitrary entries
// (hostile names, links, types, sizes, chunk tables) into a real in-memory meta.db, whose
// tree must then walk without error: every node reachable from the root, every listed
// name found. An input here is a whole two-layer image, so a run tries a tenth as many.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { LayerView } from '../../src/toc/layer-view.js';
import { MergedView } from '../../src/toc/merged-view.js';
import { isDir } from '../../src/toc/view.js';
import { tocDb } from '../helpers/toc-db.js';
import { fuzz, refusedOrValue, RUNS } from './harness.js';

const LAYERS = Math.max(1, Math.round(RUNS / 10));
const D = `sha256:${'a'.repeat(64)}`;

const names = fc.oneof(
  fc.constantFrom('a', 'a/b', 'a/b/c', '../x', '/abs', './a', 'a//b', 'a/./b', '.wh.a', 'a/.wh..wh..opq', '', '.', '..', 'a/', 'stargz.index.json', '.prefetch.landmark'),
  fc.string({ maxLength: 20 }),
  fc.array(fc.constantFrom('a', 'b', '..', '.', ''), { maxLength: 12 }).map((p) => p.join('/')),
);
const entryArb = fc.record({
  name: names,
  type: fc.constantFrom('dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk', 'bogus'),
  size: fc.oneof(fc.nat(100), fc.constantFrom(-1, 2 ** 53, 1.5)),
  offset: fc.oneof(fc.nat(1000), fc.constantFrom(-5, 2 ** 60)),
  chunkOffset: fc.nat(100),
  chunkSize: fc.nat(100),
  innerOffset: fc.nat(50),
  linkName: names,
  mode: fc.nat(0o7777),
  chunkDigest: fc.constantFrom(D, 'sha256:zz', ''),
}, { requiredKeys: ['name', 'type'] });

/** Every node reachable from the root, each directory read and each name looked up: no error. */
function walk(view: LayerView | MergedView): number {
  let n = 0;
  const stack = [view.root()];
  for (let dir = stack.pop(); dir !== undefined && n < 10_000; dir = stack.pop()) {
    for (const name of view.readdir(dir)) {
      const child = view.lookup(dir, name);
      assert.ok(child !== undefined, `${name} is listed and found`);
      n++;
      if (isDir(child)) stack.push(child);
    }
  }
  return n;
}

describe('fuzz: toc/importer.ts', () => {
  it(`arbitrary entries into a real meta.db, the trees walked: ${LAYERS} two-layer images`, async (t) => {
    await fuzz(t, LAYERS, fc.property(fc.array(entryArb, { maxLength: 25 }), fc.array(entryArb, { maxLength: 10 }), (lower, upper) => {
      const db = refusedOrValue(() => tocDb([{ entries: lower }, { entries: upper }]));
      if (db === undefined) return;
      for (const l of db.layers) walk(new LayerView(db.table, l));
      walk(new MergedView(db.table, db.layers));
    }));
  });
});
