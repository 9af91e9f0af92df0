// A registry that ignores Range (200 with the whole blob): the layer is streamed once for
// all its reads, each member decoded, verified and cached on the way, instead of the
// whole blob once per read.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { withServedReader } from '../helpers/served-reader.js';

// Incompressible files: the blob (~13 MB) is larger than what the sockets between proxy
// and client buffer, so a refused answer cut off at its headers is never sent whole.
const files = Array.from({ length: 200 }, (_, i) => ({ name: `d${i % 10}/f${i}.bin`, body: randomBytes(48_000 + i * 173) }));
const blobs = /\/blobs\//;

describe('whole-blob pass when Range is ignored', () => {
  it('200 concurrent reads of different files: one whole-blob transfer, every byte right', async () => {
    await withServedReader(files, {}, async ({ served, image, read }) => {
      const layerSize = image.layers[0]?.desc.size ?? 0;
      served.proxy.reset();
      served.proxy.inject({ kind: 'ignore-range' }, 1_000_000, blobs, { rangedOnly: true });
      const got = await Promise.all(files.map((f) => read(f.name)));
      got.forEach((b, i) => assert.ok(b.equals((files[i] as { body: Buffer }).body), `${(files[i] as { name: string }).name} exact`));
      const s = served.proxy.stats;
      assert.equal(s.wholeBlobGets, 1, 'one GET of the whole blob');
      assert.equal(s.wholeBlobBodies, 1, 'one whole blob transferred: the refused ranged answers were cut off');
      assert.ok(s.blobBytes < 2 * layerSize, `${s.blobBytes} bytes sent for a ${layerSize}-byte layer`);
      served.proxy.reset();
      const again = await Promise.all(files.slice(0, 50).map((f) => read(f.name)));
      again.forEach((b, i) => assert.ok(b.equals((files[i] as { body: Buffer }).body)));
      assert.equal(s.requests + served.proxy.stats.requests, s.requests, 'the second round came from the cache');
    });
  });

  it('a whole-blob stream cut off midway starts over, and every read still gets its bytes', async () => {
    await withServedReader(files, {}, async ({ served, image, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'ignore-range' }, 1_000_000, blobs, { rangedOnly: true });
      served.proxy.inject({ kind: 'reset-mid-body' }, 1, blobs, { range: /^$/ });
      const got = await Promise.all(files.map((f) => read(f.name)));
      got.forEach((b, i) => assert.ok(b.equals((files[i] as { body: Buffer }).body)));
      // Each read had its file as its member went by; the counters are the pass's, at its end.
      for (let i = 0; i < 100 && served.proxy.stats.wholeBlobBodies === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(served.proxy.stats.wholeBlobGets, 2, 'the cut-off stream and its retry');
      assert.equal(served.proxy.stats.wholeBlobBodies, 1);
      const s = image.reader.stats(image.layers[0]?.row?.id ?? -1);
      assert.ok(s.bytesRefetched > 0, 'the first attempt\'s bytes are counted as fetched again');
    });
  });

  it('the layer is remembered as rangeless: a miss right after the pass joins a pass, it does not ask for a range', async () => {
    await withServedReader(files.slice(0, 20), {}, async ({ served, image, read }) => {
      served.proxy.reset();
      served.proxy.inject({ kind: 'ignore-range' }, 1, blobs, { rangedOnly: true });
      assert.ok((await read('d0/f0.bin')).equals((files[0] as { body: Buffer }).body));
      assert.equal(served.proxy.stats.wholeBlobGets, 1);
      assert.equal(served.proxy.stats.ranges.length, 1, 'the one refused range');
      // The read had its file as soon as its member went by; let the pass end.
      for (let i = 0; i < 100 && served.proxy.stats.wholeBlobBodies === 0; i++) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 100));
      // The chunk cache forgets everything: the next read is a real miss.
      const cache = (image.reader as unknown as { cache: { get(d: Buffer, n: number): Promise<Buffer | undefined>; has(d: Buffer): boolean } }).cache;
      cache.get = () => Promise.resolve(undefined);
      cache.has = () => false;
      served.proxy.reset();
      assert.ok((await read('d5/f5.bin')).equals((files[5] as { body: Buffer }).body));
      assert.deepEqual(served.proxy.stats.ranges, [], 'no range asked of a registry known to ignore them');
      assert.equal(served.proxy.stats.wholeBlobGets, 1, 'a second pass');
    });
  });

  // Found by the soak: a pass that failed for good rejected the members its reads' neighbours
  // waited for, and nobody listened: an unhandled rejection ended the server.
  it('a pass that fails for good fails its reads with a typed error, and nothing is left unhandled', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (err: unknown): void => void unhandled.push(err);
    process.on('unhandledRejection', onUnhandled);
    try {
      // Neighbour fetches on, as in a mount: they are the reads nobody waits for.
      await withServedReader(files.slice(0, 60), { neighbourBytes: 1 << 20, retries: 0 }, async ({ served, read }) => {
        served.proxy.reset();
        served.proxy.inject({ kind: 'ignore-range' }, 1_000_000, blobs, { rangedOnly: true });
        served.proxy.inject({ kind: 'reset-mid-body' }, 1_000_000, blobs, { range: /^$/ });
        // One after another: once the layer is known to ignore Range, each read's
        // neighbours wait for a pass too, with no reader of their own.
        const got: Array<PromiseSettledResult<Buffer>> = [];
        for (const f of files.slice(0, 60).reverse()) got.push(...(await Promise.allSettled([read(f.name)])));
        assert.ok(got.some((r) => r.status === 'rejected'), 'the reads fail');
        for (const r of got) {
          if (r.status === 'rejected') assert.match(String((r.reason as { code?: string }).code), /^SGZ_/);
          else assert.ok(r.value.length > 0);
        }
        await new Promise((r) => setTimeout(r, 200));
      });
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
    assert.deepEqual(unhandled, [], 'no rejection left unhandled');
  });
});
