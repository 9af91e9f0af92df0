// Fuzzing the TOC: the streaming JSON parser fed mutated TOCs cut anywhere, and the
// importer fed arbitrary entries (hostile names, links, types, sizes, chunk tables) into a
// real in-memory meta.db, whose tree must then walk without error: every node reachable
// from the root, every lookup answered.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { TocJsonParser } from '../../src/toc/json-entries.js';
import { LayerView } from '../../src/toc/layer-view.js';
import { MergedView } from '../../src/toc/merged-view.js';
import { isDir } from '../../src/toc/view.js';
import { tocDb } from '../helpers/toc-db.js';
import { mutated, params, pieces, refusedOrValue, RUNS } from './harness.js';

const D = `sha256:${'a'.repeat(64)}`;
const valid = Buffer.from(JSON.stringify({
  version: 1,
  entries: [
    { name: 'etc/', type: 'dir', mode: 493, modtime: '2020-01-01T00:00:00Z' },
    { name: 'etc/hosts', type: 'reg', size: 10, offset: 100, digest: D, chunkDigest: D, xattrs: { 'user.a': 'Yg==' } },
    { name: 'big', type: 'reg', size: 20, offset: 200, chunkSize: 10, chunkDigest: D },
    { name: 'big', type: 'chunk', offset: 300, chunkOffset: 10, chunkSize: 10, chunkDigest: D },
    { name: 'l', type: 'symlink', linkName: '../etc/hosts' },
    { name: 'h', type: 'hardlink', linkName: 'etc/hosts' },
    { name: 'dev', type: 'char', devMajor: 1, devMinor: 3 },
  ],
}));

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

describe('fuzz: TOC', () => {
  it(`the streaming parser, mutated TOCs cut anywhere: ${RUNS} inputs`, () => {
    fc.assert(
      fc.property(mutated(valid), fc.array(fc.nat(), { maxLength: 12 }), (json, cuts) => {
        refusedOrValue(() => {
          const p = new TocJsonParser(() => undefined);
          for (const piece of pieces(json, cuts)) p.push(piece);
          return p.end();
        });
      }),
      params(),
    );
  });

  it(`the importer and views, arbitrary entries into a real meta.db: ${Math.max(1, Math.round(RUNS / 10))} layers`, () => {
    fc.assert(
      fc.property(fc.array(entryArb, { maxLength: 25 }), fc.array(entryArb, { maxLength: 10 }), (lower, upper) => {
        const db = refusedOrValue(() => tocDb([{ entries: lower }, { entries: upper }]));
        if (db === undefined) return;
        for (const l of db.layers) walk(new LayerView(db.table, l));
        walk(new MergedView(db.table, db.layers));
      }),
      params(Math.max(1, Math.round(RUNS / 10))),
    );
  });
});
