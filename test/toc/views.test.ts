// The merged view (OCI whiteout rules) and the overlayfs-encoded layer view.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MergedView } from '../../src/toc/merged-view.js';
import { LayerView } from '../../src/toc/layer-view.js';
import { resolvePath } from '../../src/toc/view.js';
import { S_IFCHR, S_IFDIR } from '../../src/toc/inode-db.js';
import { tocDb } from '../helpers/toc-db.js';

const lower = {
  entries: [
    { name: 'keep', type: 'reg' },
    { name: 'gone', type: 'reg' },
    { name: 'dir/', type: 'dir', mode: 0o700 },
    { name: 'dir/old', type: 'reg' },
    { name: 'opq/', type: 'dir' },
    { name: 'opq/hidden', type: 'reg' },
    { name: 'd2f/', type: 'dir' },
    { name: 'd2f/child', type: 'reg' },
    { name: 'f2d', type: 'reg' },
    { name: 'stargz.index.json', type: 'reg' },
    { name: 'sub/stargz.index.json', type: 'reg' },
  ],
};
const upper = {
  entries: [
    { name: '.wh.gone', type: 'reg' },
    { name: 'dir/', type: 'dir', mode: 0o755 },
    { name: 'dir/new', type: 'reg' },
    { name: 'opq/.wh..wh..opq', type: 'reg' },
    { name: 'opq/fresh', type: 'reg' },
    { name: 'd2f', type: 'reg' },
    { name: 'f2d/', type: 'dir' },
    { name: 'f2d/x', type: 'reg' },
    { name: 'same/.wh.back', type: 'reg' },
    { name: 'same/back', type: 'reg' },
    { name: '.prefetch.landmark', type: 'reg' },
  ],
};

describe('merged view', () => {
  const { table, layers } = tocDb([lower, upper]);
  const v = new MergedView(table, layers);

  it('applies whiteouts, merges directories, replaces across types, hides root metadata', () => {
    assert.deepEqual(v.readdir(v.root()), ['d2f', 'dir', 'f2d', 'keep', 'opq', 'same', 'sub']);
    assert.deepEqual(v.readdir(resolvePath(v, 'dir')), ['new', 'old']);
    assert.equal(resolvePath(v, 'dir').mode, S_IFDIR | 0o755, 'the upper directory’s attributes win');
    assert.deepEqual(v.readdir(resolvePath(v, 'opq')), ['fresh']);
    assert.equal(v.lookup(resolvePath(v, 'opq'), 'hidden'), undefined);
    assert.equal(resolvePath(v, 'd2f').mode & 0o170000, 0o100000);
    assert.deepEqual(v.readdir(resolvePath(v, 'f2d')), ['x']);
    assert.equal(v.lookup(v.root(), 'gone'), undefined);
    assert.equal(v.lookup(v.root(), '.wh.gone'), undefined);
    assert.equal(v.lookup(v.root(), 'stargz.index.json'), undefined);
    assert.deepEqual(v.readdir(resolvePath(v, 'sub')), ['stargz.index.json'], 'only the root’s are special');
  });

  it("a layer's whiteout never hides its own entry", () => {
    assert.deepEqual(v.readdir(resolvePath(v, 'same')), ['back']);
    assert.ok(resolvePath(v, 'same/back'));
  });

  it('merged directory nlink counts merged subdirectories; the root is the runtime’s', () => {
    assert.equal(v.root().nlink, 2 + 5);
    assert.equal(v.root().mtime, null);
    assert.equal(v.root().mode, S_IFDIR | 0o755);
  });
});

describe('layer view with overlayfs encoding', () => {
  const { table, layers } = tocDb([lower, upper]);
  const up = layers[1];
  assert.ok(up);

  it('raw: whiteout files are plain files', () => {
    const v = new LayerView(table, up);
    assert.deepEqual(v.readdir(v.root()), ['.wh.gone', 'd2f', 'dir', 'f2d', 'opq', 'same']);
    assert.deepEqual(v.readdir(resolvePath(v, 'opq')), ['.wh..wh..opq', 'fresh']);
  });

  for (const mode of ['trusted', 'user', 'both'] as const) {
    it(`${mode}: whiteouts as char 0/0, opaque directories by xattr`, () => {
      const v = new LayerView(table, up, mode);
      assert.deepEqual(v.readdir(v.root()), ['d2f', 'dir', 'f2d', 'gone', 'opq', 'same']);
      const gone = resolvePath(v, 'gone');
      assert.equal(gone.mode, S_IFCHR);
      assert.deepEqual([gone.rdevMajor, gone.rdevMinor, gone.uid, gone.size], [0, 0, 0, 0]);
      assert.deepEqual(v.readdir(resolvePath(v, 'same')), ['back'], 'a real entry wins over its whiteout');
      assert.equal(v.lookup(v.root(), '.wh.gone'), undefined);
      assert.deepEqual(v.readdir(resolvePath(v, 'opq')), ['fresh']);
      const names = v.xattrs(resolvePath(v, 'opq')).map((x) => `${x.name}=${x.value.toString()}`);
      const want = { trusted: ['trusted.overlay.opaque=y'], user: ['user.overlay.opaque=y'], both: ['trusted.overlay.opaque=y', 'user.overlay.opaque=y'] }[mode];
      assert.deepEqual(names, want);
      assert.deepEqual(v.xattrs(resolvePath(v, 'dir')), []);
    });
  }
});

describe('xattrs through the views', () => {
  // A directory's xattrs come from its explicit entry, which replaces the implicit one:
  // the importer's has-xattrs flag must follow that replacement, both ways.
  const { table, layers } = tocDb([
    {
      entries: [
        { name: 'd/f', type: 'reg', xattrs: { 'user.a': Buffer.from('1').toString('base64') } },
        { name: 'd/', type: 'dir', xattrs: { 'user.dir': Buffer.from('2').toString('base64') } },
        { name: 'plain', type: 'reg' },
        { name: 'e/', type: 'dir', xattrs: { 'user.gone': Buffer.from('3').toString('base64') } },
        { name: 'e/', type: 'dir' },
      ],
    },
  ]);
  const v = new MergedView(table, layers);
  const names = (p: string): string[] => v.xattrs(resolvePath(v, p)).map((x) => `${x.name}=${x.value.toString()}`);

  it('are read where the node has them, and known empty without a query where it has none', () => {
    assert.deepEqual(names('d/f'), ['user.a=1']);
    assert.deepEqual(names('d'), ['user.dir=2']);
    assert.deepEqual(names('plain'), []);
    assert.deepEqual(names('e'), [], 'a later entry without xattrs replaces them');
    assert.equal(resolvePath(v, 'plain').noXattrs, true);
    assert.equal(resolvePath(v, 'e').noXattrs, true);
    assert.equal(resolvePath(v, 'd').noXattrs, false);
    assert.equal(resolvePath(v, 'd/f').noXattrs, false);
  });
});
