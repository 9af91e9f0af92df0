// Every error class from one table: stable code, name, context in the message, exit code.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../src/errors.js';
import { exitCodeFor } from '../src/cli/exit-codes.js';
import { errnoOf } from '../src/fs/errno.js';
import { constants } from 'node:os';

const ctx = { layer: `sha256:${'ab'.repeat(32)}`, path: 'etc/passwd' };
const table: Array<[E.StargzfsError, E.ErrorCode, number]> = [
  [new E.TocFormatError('bad footer', ctx), 'SGZ_TOC_FORMAT', 5],
  [new E.TocEntryError('bad entry', ctx), 'SGZ_TOC_ENTRY', 5],
  [new E.TocTooLargeError(10, 5, ctx), 'SGZ_TOC_TOO_LARGE', 5],
  [new E.UnverifiedTocError(ctx), 'SGZ_TOC_UNVERIFIED', 5],
  [new E.ExternalTocError(ctx), 'SGZ_EXTERNAL_TOC', 6],
  [new E.NotEstargzError('plain gzip layer', ctx), 'SGZ_NOT_ESTARGZ', 6],
  [new E.DigestMismatchError('chunk', 'sha256:a', 'sha256:b', ctx), 'SGZ_DIGEST_MISMATCH', 5],
  [new E.DecodeError('corrupt', ctx), 'SGZ_DECODE', 5],
  [new E.BlobRangeError('short read', ctx), 'SGZ_RANGE', 5],
  [new E.RegistryError('unauthorized', 401, ctx), 'SGZ_REGISTRY', 7],
  [new E.RangeUnsupportedError('no ranges', ctx), 'SGZ_RANGE_UNSUPPORTED', 7],
  [new E.ReadTimeoutError('no bytes in time', 30_000, ctx), 'SGZ_READ_TIMEOUT', 7],
  [new E.CacheCorruptError('torn file', ctx), 'SGZ_CACHE_CORRUPT', 1],
  [new E.ImageError('no such platform', ctx), 'SGZ_IMAGE', 4],
  [new E.NotFoundError(ctx), 'SGZ_NOT_FOUND', 3],
  [new E.NotADirectoryError(ctx), 'SGZ_NOT_A_DIRECTORY', 3],
  [new E.IsADirectoryError(ctx), 'SGZ_IS_A_DIRECTORY', 3],
  [new E.SymlinkLoopError(ctx), 'SGZ_SYMLINK_LOOP', 3],
  [new E.TarError('truncated', ctx), 'SGZ_TAR', 1],
];

describe('errors', () => {
  for (const [err, code, exit] of table) {
    it(`${err.name}: ${code}, exit ${exit}, names layer and file`, () => {
      assert.ok(err instanceof E.StargzfsError);
      assert.equal(err.code, code);
      assert.equal(err.name, err.constructor.name);
      assert.match(err.message, /^layer sha256:abababababab, file "etc\/passwd": /);
      assert.equal(err.layer, ctx.layer);
      assert.equal(exitCodeFor(err.code), exit);
    });
  }
  it('StaleInodeError is ESTALE for the kernel and names the inode; SupervisorError has its code', () => {
    const stale = new E.StaleInodeError(7);
    assert.equal(stale.code, 'SGZ_STALE');
    assert.equal(stale.inode, 7);
    assert.equal(errnoOf(stale), constants.errno.ESTALE);
    assert.equal(new E.SupervisorError('no answer').code, 'SGZ_SUPERVISOR');
    assert.equal(exitCodeFor('SGZ_SUPERVISOR'), 1);
  });
  it('ConfigError names the option', () => {
    const e = new E.ConfigError('platform', 'bad');
    assert.equal(e.message, '--platform: bad');
    assert.equal(exitCodeFor(e.code), 2);
  });
});
