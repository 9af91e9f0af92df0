// Paths inside an image as the CLI resolves them (issue 22, item 9): a symlink in the
// middle is followed, the last one only for cat, `..` stops at the image's root, and a
// link cycle or a chain longer than Linux allows is ELOOP (its own error and exit code),
// never "not found" and never deep recursion.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MergedView } from '../../src/toc/merged-view.js';
import { NotADirectoryError, NotFoundError, SymlinkLoopError } from '../../src/errors.js';
import { exitCodeFor } from '../../src/cli/exit-codes.js';
import { errnoOf } from '../../src/fs/errno.js';
import { constants } from 'node:os';
import { MAX_SYMLINK_HOPS, resolveInImage } from '../../src/cli/resolve-path.js';
import { tocDb } from '../helpers/toc-db.js';

const chain = Array.from({ length: 60 }, (_, i) => ({ name: `chain/l${i}`, type: 'symlink', linkName: `l${i + 1}` }));
const toc = {
  entries: [
    { name: 'usr/', type: 'dir' },
    { name: 'usr/lib/', type: 'dir' },
    { name: 'usr/lib/os-release', type: 'reg' },
    { name: 'lib', type: 'symlink', linkName: 'usr/lib' },
    { name: 'abs', type: 'symlink', linkName: '/usr' },
    { name: 'up', type: 'symlink', linkName: '../../../../usr/lib' },
    { name: 'etc/', type: 'dir' },
    { name: 'etc/os-release', type: 'symlink', linkName: '../lib/os-release' },
    { name: 'file', type: 'reg' },
    { name: 'loop/', type: 'dir' },
    { name: 'loop/a', type: 'symlink', linkName: 'b' },
    { name: 'loop/b', type: 'symlink', linkName: 'a' },
    { name: 'self', type: 'symlink', linkName: 'self/x' },
    { name: 'chain/', type: 'dir' },
    ...chain,
    { name: 'chain/l60', type: 'reg' },
  ],
};

function view(): MergedView {
  const { table, layers } = tocDb([toc]);
  return new MergedView(table, layers);
}

describe('resolveInImage', () => {
  const v = view();

  it('follows a symlink in the middle of the path (relative, absolute, .. above the root)', () => {
    for (const p of ['lib/os-release', 'abs/lib/os-release', 'up/os-release', '/lib/./os-release', 'lib/../lib/os-release']) {
      const r = resolveInImage(v, p, false);
      assert.equal(r.path, 'usr/lib/os-release', p);
    }
  });

  it('the last link: kept for stat/ls, followed for cat', () => {
    assert.equal(resolveInImage(v, 'etc/os-release', false).path, 'etc/os-release');
    assert.equal(resolveInImage(v, 'etc/os-release', true).path, 'usr/lib/os-release');
    assert.equal(resolveInImage(v, 'lib', false).path, 'lib');
    assert.equal(resolveInImage(v, 'lib/', true).path, 'usr/lib');
    assert.equal(resolveInImage(v, '/', true).path, '.');
  });

  it('not found and not a directory as before', () => {
    assert.throws(() => resolveInImage(v, 'lib/nope', true), NotFoundError);
    assert.throws(() => resolveInImage(v, 'file/x', true), NotADirectoryError);
  });

  it('a cycle, a link into itself, and a chain longer than 40 are ELOOP, exit 3', () => {
    for (const p of ['loop/a', 'loop/a/x', 'self', 'chain/l0']) {
      assert.throws(() => resolveInImage(v, p, true), (err: unknown) => {
        assert.ok(err instanceof SymlinkLoopError, `${p}: ${String(err)}`);
        assert.match(err.message, /too many levels of symbolic links/);
        assert.equal(exitCodeFor(err.code), 3);
        assert.equal(errnoOf(err), constants.errno.ELOOP);
        return true;
      });
    }
    // As many hops as Linux allows still resolve.
    assert.equal(resolveInImage(v, `chain/l${60 - MAX_SYMLINK_HOPS}`, true).path, 'chain/l60');
    // Not followed at the end: the link itself, whatever it points at.
    assert.equal(resolveInImage(v, 'loop/a', false).path, 'loop/a');
  });
});
