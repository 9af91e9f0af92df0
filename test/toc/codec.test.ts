// gunzipPrefix: the first `need` bytes of one gzip member, whichever path it takes (small
// members inflate on the calling thread, larger ones through a stream), and never bytes
// from a member that does not inflate cleanly. GunzipAsItComes: the same, written piece
// by piece as a member arrives.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { GunzipAsItComes, gunzipPrefix } from '../../src/toc/codec.js';
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

describe('GunzipAsItComes', () => {
  const plain = Buffer.concat([bytes(rng(22), 1 << 20), Buffer.alloc(1 << 20, 7), bytes(rng(23), 300_000)]);
  const member = gzipSync(plain);

  for (const piece of [1000, 65_536, 333_333, member.length]) {
    it(`written in pieces of ${piece} bytes: the bytes needed, as gunzipPrefix gives them`, async () => {
      const g = new GunzipAsItComes(plain.length - 10);
      for (let at = 0; at < member.length; at += piece) g.write(member.subarray(at, at + piece));
      assert.ok((await g.end()).equals(plain.subarray(0, plain.length - 10)));
    });
  }

  it('bytes that do not inflate fail end(), also when the stream failed before it was called', async () => {
    const bad = Buffer.from(member);
    bad[20] = (bad[20] as number) ^ 0xff;
    bad[21] = (bad[21] as number) ^ 0xff;
    const g = new GunzipAsItComes(plain.length);
    g.write(bad.subarray(0, 100_000));
    await new Promise((resolve) => setTimeout(resolve, 50));
    g.write(bad.subarray(100_000));
    await assert.rejects(g.end());
  });

  it('a member cut short gives fewer bytes than needed (callers check), never others', async () => {
    const g = new GunzipAsItComes(plain.length);
    g.write(member.subarray(0, member.length >> 1));
    const got = await g.end().catch(() => Buffer.alloc(0));
    assert.ok(got.length < plain.length && got.equals(plain.subarray(0, got.length)));
  });

  it('abandoned while it arrives: nothing is left pending or thrown', async () => {
    const g = new GunzipAsItComes(plain.length);
    g.write(member.subarray(0, 50_000));
    g.abandon();
    g.write(member.subarray(50_000));
    await new Promise((resolve) => setTimeout(resolve, 20));
  });
});
