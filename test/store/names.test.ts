import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nameOfRef, refOfName } from '../../src/store/names.js';

describe('store names', () => {
  it('a reference round-trips through the name podman writes (std base64, padded)', () => {
    const ref = '127.0.0.1:5000/anchor/debian:python-esgz';
    assert.equal(nameOfRef(ref), 'MTI3LjAuMC4xOjUwMDAvYW5jaG9yL2RlYmlhbjpweXRob24tZXNneg==');
    assert.deepEqual(refOfName(nameOfRef(ref)), { ref });
    const pinned = `ghcr.io/a/b@sha256:${'ab'.repeat(32)}`;
    assert.deepEqual(refOfName(nameOfRef(pinned)), { ref: pinned });
  });

  it('anything else is named as not a reference, never thrown', () => {
    for (const bad of ['', 'nonsense', '!!!!', nameOfRef('UPPER/case:tag'), nameOfRef('a b'), 'TWFu' + '='.repeat(3), nameOfRef('x').replace(/=+$/, '')]) {
      const r = refOfName(bad);
      assert.ok('why' in r, `${JSON.stringify(bad)} → ${JSON.stringify(r)}`);
    }
    // Valid base64 of bytes that are not UTF-8 does not round-trip.
    assert.ok('why' in refOfName(Buffer.from([0xff, 0xfe, 0x41]).toString('base64')));
  });
});
