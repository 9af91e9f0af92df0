// The benchmark's network emulation: a body is never delivered faster than the link, two
// bodies share it in turn, and a proxy that cannot run for a while (the benchmark's machine is
// busy with the mount and the workload) still delivers at the link's rate overall, as a
// link would have carried the bytes meanwhile. What is under test is the proxy, so its
// upstream is a server in this process that has the body in memory: the registry, a
// process of its own, is itself slowed down on a busy machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startShapingProxy } from '../../bench/lib/shaping-proxy.js';
import { bytes, rng } from '../helpers/random.js';

const RATE = 200e6; // bits per second: 25 bytes per microsecond
const msFor = (n: number): number => (n * 8) / RATE * 1000;

/** GETs `path` and resolves with the body's length and the time from the request to its end; `onFirst` runs at the first byte. */
function timedGet(host: string, path: string, onFirst?: () => void): Promise<{ length: number; ms: number }> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const req = request(`http://${host}${path}`, { agent: false }, (res) => {
      let length = 0;
      res.on('data', (b: Buffer) => {
        if (length === 0) onFirst?.();
        length += b.length;
      });
      res.on('end', () => resolve({ length, ms: performance.now() - t0 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

test('shaping proxy: link rate, a shared link, and no time lost while the proxy cannot run', async () => {
  const size = 6 << 20;
  const body = bytes(rng(7), size);
  const upstream = createServer((_req, res) => res.end(body));
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const proxy = await startShapingProxy(`127.0.0.1:${(upstream.address() as AddressInfo).port}`, { name: 'test', rttMs: 0, bitsPerSecond: RATE });
  try {
    const path = '/v2/shape/blob/blobs/sha256:0000';
    const ideal = msFor(size);

    const one = await timedGet(proxy.host, path);
    assert.equal(one.length, size);
    assert.ok(one.ms >= ideal * 0.95, `one body: ${one.ms.toFixed(0)} ms, faster than the link's ${ideal.toFixed(0)} ms`);

    const both = await Promise.all([timedGet(proxy.host, path), timedGet(proxy.host, path)]);
    const last = Math.max(...both.map((r) => r.ms));
    const first = Math.min(...both.map((r) => r.ms));
    assert.ok(last >= 2 * ideal * 0.95, `two bodies: the last ended after ${last.toFixed(0)} ms, faster than a shared link's ${(2 * ideal).toFixed(0)} ms`);
    // In turn, not one after the other: the first to end did not have the link to itself.
    assert.ok(first >= 1.5 * ideal, `two bodies: one ended after ${first.toFixed(0)} ms, as if alone on the link (${ideal.toFixed(0)} ms)`);

    // This process (proxy and client alike) is held for 150 ms once the body starts. Pacing
    // chunk by chunk lost all of it (the body ended 150 ms late); the link's schedule does not.
    const BLOCK = 150;
    const held = await timedGet(proxy.host, path, () => {
      const until = performance.now() + BLOCK;
      while (performance.now() < until);
    });
    assert.equal(held.length, size);
    assert.ok(held.ms >= ideal * 0.95, `held: ${held.ms.toFixed(0)} ms, faster than the link`);
    assert.ok(held.ms < ideal + BLOCK * 0.6, `held for ${BLOCK} ms: the body took ${held.ms.toFixed(0)} ms against the link's ${ideal.toFixed(0)} ms`);
    assert.equal(proxy.stats.blobRequests, 4);
    assert.equal(proxy.stats.blobBytes, 4 * size);
  } finally {
    await proxy.stop();
    upstream.closeAllConnections();
    await new Promise((resolve) => upstream.close(resolve));
  }
});
