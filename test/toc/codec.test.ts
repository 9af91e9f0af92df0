// gunzipPrefix: the first `need` bytes of one gzip member, whichever path it takes (small
// members inflate on the calling thread, larger ones through a stream), and never bytes
// from a member that does not inflate cleanly.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { gunzipPrefix } from '../../src/toc/codec.js';
import { bytes, rng } from '../helpers/random.js';

const r = rng(21);

describe('gunzipPrefix', () => {
  it('a small member: exactly the bytes needed, also when the member goes on past them (tar padding, headers)', async () => {
    const plain = bytes(r, 5000);
    const member = gzipSync(plain);
    assert.ok(member.length < 64 << 10);
    assert.ok((await gunzipPrefix(member, 5000)).equals(plain));
    assert.ok((await gunzipPrefix(member, 4000)).equals(plain.subarray(0, 4000)));
    // Asked for more than there is: what there is (callers check the length).
    assert.equal((await gunzipPrefix(member, 6000)).length, 5000);
  });

  it('a small member that inflates to far more than needed (files packed together): the prefix, by the stream path', async () => {
    const plain = Buffer.concat([bytes(r, 1000), Buffer.alloc(1 << 20)]);
    const member = gzipSync(plain);
    assert.ok(member.length < 64 << 10, `${member.length}`);
    assert.ok((await gunzipPrefix(member, 1000)).equals(plain.subarray(0, 1000)));
  });

  it('a large member: the prefix, through the stream', async () => {
    const plain = bytes(r, 256 << 10);
    const member = gzipSync(plain, { level: 0 });
    assert.ok(member.length > 64 << 10);
    assert.ok((await gunzipPrefix(member, 100_000)).equals(plain.subarray(0, 100_000)));
  });

  it('a small member that is corrupt, or followed by bytes that are not gzip, is refused', async () => {
    const member = gzipSync(bytes(r, 3000));
    const bad = Buffer.from(member);
    bad[20] = (bad[20] as number) ^ 0xff;
    await assert.rejects(gunzipPrefix(bad, 3000));
    await assert.rejects(gunzipPrefix(Buffer.concat([member, Buffer.from('not gzip at all')]), 3000));
  });
});
