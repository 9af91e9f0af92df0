// A read's wait is bounded: a body that stalls is aborted and retried within the stall
// timeout, and a read that cannot get its bytes fails with a typed error (EIO at the
// FUSE boundary) by its deadline, instead of hanging for the registry's sake.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { constants } from 'node:os';
import { StargzfsError } from '../../src/errors.js';
import { errnoOf } from '../../src/fs/errno.js';
import { withServedReader } from '../helpers/served-reader.js';

const body = randomBytes(300 << 10);
const files = [{ name: 'a/data.bin', body }, { name: 'b/other.bin', body: randomBytes(10_000) }];
const blobs = /\/blobs\//;

describe('read deadline', () => {
  it('a body stalled on the first attempt only: aborted after the stall timeout, retried, the right bytes', async () => {
    await withServedReader(files, { readTimeoutMs: 5000, stallTimeoutMs: 500 }, async ({ served, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'stall', afterBytes: 1000 }, 1, blobs, { rangedOnly: true });
      const t0 = Date.now();
      const got = await read('a/data.bin');
      const ms = Date.now() - t0;
      assert.ok(got.equals(body), 'exact bytes');
      assert.equal(served.proxy.stats.faults, 1);
      assert.ok(ms >= 450 && ms < 3000, `waited ${ms} ms: one stall timeout and a retry`);
    });
  });

  it('a body that stalls on every attempt: a typed error (EIO) within the deadline, not a hang', async () => {
    const deadline = 2000;
    await withServedReader(files, { readTimeoutMs: deadline, stallTimeoutMs: 400 }, async ({ served, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'stall', afterBytes: 1000 }, 1000, blobs, { rangedOnly: true });
      const t0 = Date.now();
      const err = await read('a/data.bin').then(() => assert.fail('the read succeeded'), (e: unknown) => e);
      const ms = Date.now() - t0;
      assert.ok(err instanceof StargzfsError, String(err));
      assert.ok(['SGZ_READ_TIMEOUT', 'SGZ_REGISTRY'].includes(err.code), err.code);
      assert.equal(errnoOf(err), constants.errno.EIO);
      assert.equal(err.path, 'a/data.bin');
      assert.ok(ms <= deadline + 300, `failed after ${ms} ms (deadline ${deadline} ms)`);
      assert.ok(served.proxy.stats.faults >= 2, 'the stalled body was retried');
    });
  });

  it('a stall longer than the deadline: SGZ_READ_TIMEOUT at the deadline, naming layer, file and offset', async () => {
    const deadline = 1000;
    await withServedReader(files, { readTimeoutMs: deadline, stallTimeoutMs: 20_000 }, async ({ served, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'stall', afterBytes: 0 }, 1000, blobs, { rangedOnly: true });
      const t0 = Date.now();
      const err = await read('a/data.bin', 4096, 100).then(() => assert.fail('the read succeeded'), (e: unknown) => e);
      const ms = Date.now() - t0;
      assert.ok(err instanceof StargzfsError);
      assert.equal(err.code, 'SGZ_READ_TIMEOUT');
      assert.equal(err.offset, 4096);
      assert.match(err.message, /^layer sha256:[0-9a-f]{12}, file "a\/data\.bin": .*offset 4096.*1000 ms/);
      assert.ok(ms >= deadline - 20 && ms <= deadline + 200, `failed after ${ms} ms`);
    });
  });

  it('Retry-After past the retry budget: no wait for it, the error at once', async () => {
    await withServedReader(files, { readTimeoutMs: 3000 }, async ({ served, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'status', status: 429, retryAfter: '60' }, 1000, blobs, { rangedOnly: true });
      const t0 = Date.now();
      const err = await read('b/other.bin').then(() => assert.fail('the read succeeded'), (e: unknown) => e);
      assert.ok(err instanceof StargzfsError);
      assert.equal(err.code, 'SGZ_REGISTRY');
      assert.match(err.message, /HTTP 429/);
      assert.ok(Date.now() - t0 < 1000, 'did not wait for a Retry-After it could not honour');
    });
  });
});
