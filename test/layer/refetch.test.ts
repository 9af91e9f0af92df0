// Bytes damaged on the way fail their chunk's check; the member is fetched once more
// (from another mirror when one is configured) before the read fails, and bad bytes are
// never served.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { StargzfsError } from '../../src/errors.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import type { ConfigInput } from '../../src/config.js';
import type { ServedImage } from '../helpers/served-image.js';
import { withServedReader } from '../helpers/served-reader.js';

const body = randomBytes(200 << 10);
const files = [{ name: 'data.bin', body }];
const blobs = /\/blobs\//;

describe('refetch after bad bytes', () => {
  it('a byte flipped in the first answer only: one refetch, the right bytes', async () => {
    await withServedReader(files, {}, async ({ served, image, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'corrupt' }, 1, blobs, { rangedOnly: true });
      const got = await read('data.bin');
      assert.ok(got.equals(body), 'exact bytes');
      assert.equal(served.proxy.stats.faults, 1);
      assert.equal(served.proxy.stats.ranges.length, 2, 'the first answer and one refetch');
      const layerId = image.layers[0]?.row?.id ?? -1;
      const s = image.reader.stats(layerId);
      assert.equal(s.refetches, 1);
      assert.ok(s.bytesRefetched > 0 && s.bytesFetched <= (image.layers[0]?.desc.size ?? 0), 'refetched bytes are counted apart');
    });
  });

  it('flipped every time: a typed integrity error after one refetch, never wrong bytes', async () => {
    await withServedReader(files, {}, async ({ served, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'corrupt' }, 1000, blobs, { rangedOnly: true });
      const err = await read('data.bin').then(() => assert.fail('bad bytes were served'), (e: unknown) => e);
      assert.ok(err instanceof StargzfsError, String(err));
      // A flipped byte fails the member's gzip CRC (SGZ_DECODE) or, where the inflate stops
      // short of the trailer, the chunk's digest (SGZ_DIGEST_MISMATCH): integrity errors both.
      assert.ok(['SGZ_DIGEST_MISMATCH', 'SGZ_DECODE'].includes(err.code), err.message);
      assert.equal(err.path, 'data.bin');
      assert.equal(served.proxy.stats.ranges.length, 2, 'one refetch, no more');
      served.proxy.reset();
      assert.ok((await read('data.bin')).equals(body), 'nothing bad was cached: fine once the fault clears');
    });
  });

  it('with a mirror that sends bad bytes: the refetch goes to the registry', async () => {
    let mirror: FaultProxy | undefined;
    const withMirror = async (served: ServedImage): Promise<ConfigInput> => {
      mirror = await startFaultProxy(served.reg.host);
      return { mirror: [`${served.proxy.host}=${mirror.host}`] };
    };
    try {
      await withServedReader(files, withMirror, async ({ served, read }) => {
        const m = mirror as FaultProxy;
        m.reset();
        served.proxy.reset();
        m.inject({ kind: 'corrupt' }, 1000, blobs, { rangedOnly: true });
        assert.ok((await read('data.bin')).equals(body), 'exact bytes');
        assert.equal(m.stats.faults, 1, 'the mirror was asked first, once');
        assert.equal(served.proxy.stats.ranges.length, 1, 'the refetch went to the registry');
      });
    } finally {
      await mirror?.stop();
    }
  });
});
