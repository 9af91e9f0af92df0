// Through a fault-injecting proxy in front of the real registry: a small read fetches a
// few small ranges, not the layer; every fault either heals into the right bytes or ends
// in a clear error, never in wrong bytes.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createServer, get as httpGet, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { RegistryClient } from '../../src/http/registry-client.js';
import { pushBlob, pushLayoutImage } from '../../src/http/push.js';
import { RegistrySource } from '../../src/http/registry-source.js';
import { entries } from '../helpers/entries.js';
import { runCli } from '../helpers/cli.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tempDir } from '../helpers/tmp.js';
import { testClient, withClient } from '../helpers/client.js';

const big = randomBytes(24 << 20);
const small = 'just a small file\n';

describe('registry reads through a fault-injecting proxy', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let dir: string;
  let cleanup: () => void;
  let layerSize = 0;
  let n = 0;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    const built = await buildEstargzImage(join(dir, 'img'), [entries([
      { name: 'data/big.bin', body: big },
      { name: 'etc/small.txt', body: small },
    ])], { compressionLevel: 1 });
    layerSize = built.layers[0]?.blobSize ?? 0;
    await withClient(async (client) => {
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'big/image' }, join(dir, 'img'), built.manifest.digest, 'v1');
    });
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    cleanup?.();
  });

  const cat = (path: string, ...extra: string[]) =>
    runCli(['--root', join(dir, `root-${++n}`), ...extra, 'cat', `${proxy.host}/big/image:v1`, path]);

  it('cat of one small file fetches the footer+TOC tail and its chunk, not the layer', async () => {
    proxy.reset();
    const r = await cat('/etc/small.txt');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), small);
    assert.ok(layerSize > 24 << 20);
    assert.ok(proxy.stats.blobBytes < 300 << 10, `fetched ${proxy.stats.blobBytes} bytes of a ${layerSize}-byte layer`);
    assert.ok(proxy.stats.ranges.length <= 3, `ranges: ${proxy.stats.ranges.join(' ')}`);
  });

  it('a second cat of the same file makes no blob range request: the chunk cache answers', async () => {
    const root = join(dir, 'shared-root');
    const first = await runCli(['--root', root, 'cat', `${proxy.host}/big/image:v1`, '/etc/small.txt']);
    assert.equal(first.code, 0, first.stderr);
    proxy.reset();
    const second = await runCli(['--root', root, 'cat', `${proxy.host}/big/image:v1`, '/etc/small.txt']);
    assert.equal(second.stdout.toString(), small);
    assert.deepEqual(proxy.stats.ranges, [], 'neither the TOC (meta.db) nor the chunk (cache) was fetched again');
  });

  it('a chunk corrupted in transit, and again when fetched once more, is never served nor cached', async () => {
    const root = join(dir, 'corrupt-root');
    proxy.reset();
    // Every answer after the TOC's: the first copy and its one refetch are both bad.
    proxy.inject({ kind: 'corrupt' }, 1000, /\/blobs\//, { skip: 1, rangedOnly: true });
    const bad = await runCli(['--root', root, '--retries', '0', 'cat', `${proxy.host}/big/image:v1`, '/data/big.bin']);
    assert.equal(bad.code, 5, bad.stderr);
    assert.match(bad.stderr, /file "data\/big\.bin".*(digest mismatch|does not decompress)/);
    assert.ok(big.subarray(0, bad.stdout.length).equals(bad.stdout), 'whatever was written is a correct prefix: no wrong bytes');
    const du = JSON.parse((await runCli(['--root', root, 'cache', 'du', '--json'])).stdout.toString()) as { chunks: number };
    assert.equal(du.chunks, 0, 'nothing was cached');
    proxy.reset();
    const good = await runCli(['--root', root, 'cat', `${proxy.host}/big/image:v1`, '/data/big.bin']);
    assert.ok(good.stdout.equals(big));
  });

  it('Range ignored (200 with the whole blob): still the right bytes', async () => {
    proxy.reset();
    proxy.inject({ kind: 'ignore-range' }, 100, /\/blobs\//, { rangedOnly: true });
    const r = await cat('/etc/small.txt');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.toString(), small);
    assert.ok(proxy.stats.faults >= 2);
  });

  for (const [name, fault] of [
    ['503 with Retry-After', { kind: 'status', status: 503, retryAfter: '1' }],
    ['429', { kind: 'status', status: 429 }],
    ['a reset mid-body', { kind: 'reset-mid-body' }],
    ['a truncated body', { kind: 'truncate' }],
  ] as const) {
    it(`${name} on the data chunk: retried, then the right bytes`, async () => {
      proxy.reset();
      // Let the footer+TOC read through, then fault the next ranged read (a chunk of big.bin).
      proxy.inject(fault, 1, /\/blobs\//, { skip: 1, rangedOnly: true });
      const r = await runCli(['--root', join(dir, `root-${++n}`), 'cat', `${proxy.host}/big/image:v1`, '/data/big.bin']);
      assert.equal(r.code, 0, r.stderr);
      assert.ok(r.stdout.equals(big), 'the content is exact');
      assert.equal(proxy.stats.faults, 1, 'the fault was injected');
    });
  }

  it('a fault that does not clear: a clear error, no bytes', async () => {
    proxy.reset();
    proxy.inject({ kind: 'status', status: 503 }, 100, /\/blobs\//);
    const r = await cat('/etc/small.txt', '--retries', '1');
    assert.equal(r.code, 7);
    assert.equal(r.stdout.length, 0);
    assert.match(r.stderr, /HTTP 503/);
  });
});

describe('several extents in few requests', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let cleanup: () => void;
  let digest = '';
  const blob = randomBytes(1 << 20);
  const extents = [{ offset: 1000, length: 100 }, { offset: 1150, length: 50 }, { offset: 500_000, length: 4096 }, { offset: 900_000, length: 10 }];
  const want = extents.map((e) => blob.subarray(e.offset, e.offset + e.length));
  const target = () => ({ endpoint: proxy.host, registry: proxy.host, repository: 'ranges/blob' });

  before(async () => {
    ({ cleanup } = tempDir());
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    await withClient(async (client) => {
      digest = await pushBlob(client, { endpoint: reg.host, registry: reg.host, repository: 'ranges/blob' }, blob);
    });
  });
  after(async () => {
    await proxy?.stop();
    await reg?.stop();
    cleanup?.();
  });

  it('neighbours coalesced, the rest in one multi-range request the registry answers', async () => {
    await withClient(async (client) => {
      proxy.reset();
      const got = await client.readRanges(target(), digest, extents, 64);
      assert.deepEqual(got, want);
      assert.deepEqual(proxy.stats.ranges, ['bytes=1000-1199,500000-504095,900000-900009']);
    });
  });

  it('each extent is handed over once its part of the answer is in, while the rest is still held', async () => {
    await withClient(async (client) => {
      proxy.reset();
      let release = (): void => undefined;
      const until = new Promise<void>((res) => void (release = res));
      // The first part (1000–1199: headers and 200 bytes) is in after 1000 bytes; the second is not.
      proxy.inject({ kind: 'hold', afterBytes: 1000, until }, 1, /\/blobs\//, { range: /,/ });
      const got = new Map<number, Buffer>();
      const reading = client.readRanges(target(), digest, extents, 64, (i, data) => got.set(i, Buffer.from(data)));
      try {
        for (let i = 0; i < 200 && got.size < 2; i++) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual([...got.keys()].sort(), [0, 1], 'the first part\'s two extents, and only those');
        assert.deepEqual(got.get(0), want[0]);
        assert.deepEqual(got.get(1), want[1]);
      } finally {
        release();
      }
      assert.deepEqual(await reading, want);
      assert.deepEqual([...got.keys()].sort(), [0, 1, 2, 3]);
      assert.deepEqual(got.get(2), want[2]);
    });
  });

  it('in order: each extent a range of its own, asked for and handed over in the order given', async () => {
    await withClient(async (client) => {
      proxy.reset();
      const order = [3, 0, 2, 1];
      const asked = order.map((i) => extents[i] as { offset: number; length: number });
      const seen: number[] = [];
      const got = await client.readRanges(target(), digest, asked, 64, (i) => seen.push(i), true);
      assert.deepEqual(got, order.map((i) => want[i]));
      // Neighbours 1000 and 1150 are not merged: each is its own part, so each is handed on once its own bytes are in.
      assert.deepEqual(proxy.stats.ranges, ['bytes=900000-900009,1000-1099,500000-504095,1150-1199']);
      assert.deepEqual(seen, [0, 1, 2, 3], 'the registry answered the parts in the order asked');
    });
  });

  it('in order, multi-range refused: single ranges of the coalesced extents', async () => {
    await withClient(async (client) => {
      proxy.reset();
      proxy.inject({ kind: 'status', status: 400 }, 1, /\/blobs\//, { range: /,/ });
      const order = [3, 0, 2, 1];
      assert.deepEqual(await client.readRanges(target(), digest, order.map((i) => extents[i] as { offset: number; length: number }), 64, undefined, true), order.map((i) => want[i]));
      assert.deepEqual(proxy.stats.ranges.filter((r) => !r.includes(',')).sort(), ['bytes=1000-1199', 'bytes=500000-504095', 'bytes=900000-900009']);
    });
  });

  it('multi-range refused with 400: falls back to single ranges, and remembers', async () => {
    await withClient(async (client) => {
      proxy.reset();
      proxy.inject({ kind: 'status', status: 400 }, 100, /\/blobs\//, { range: /,/ });
      const got = new Map<number, Buffer>();
      assert.deepEqual(await client.readRanges(target(), digest, extents, 64, (i, data) => got.set(i, data)), want);
      assert.deepEqual([...got.entries()].sort(([a], [b]) => a - b).map(([, b]) => b), want, 'each extent handed over from its own range');
      assert.equal(proxy.stats.faults, 1);
      assert.equal(proxy.stats.ranges.filter((r) => !r.includes(',')).length, 3);
      proxy.reset();
      assert.deepEqual(await client.readRanges(target(), digest, extents, 64), want);
      assert.ok(proxy.stats.ranges.every((r) => !r.includes(',')), 'no second multi-range attempt');
    });
  });
});

describe('blob redirects to a second origin with expiring signed URLs', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let store: Server;
  let storeHost = '';
  let cleanup: () => void;
  let dir: string;
  const seen = { requests: 0, expired: 0, leakedAuth: 0 };
  let validMs = 60_000;

  before(async () => {
    ({ dir, cleanup } = tempDir());
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    // The "blob store": honours a signed URL until it expires; must never see Authorization.
    store = createServer((req, res) => {
      seen.requests++;
      if (req.headers.authorization !== undefined) seen.leakedAuth++;
      const u = new URL(req.url ?? '/', 'http://x');
      if (Number(u.searchParams.get('expires')) < Date.now()) {
        seen.expired++;
        res.writeHead(403).end('<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>');
        return;
      }
      const up = httpGet({ host: '127.0.0.1', port: Number(reg.host.split(':')[1]), path: u.pathname, headers: { range: req.headers.range ?? '' } }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
      });
      up.on('error', () => res.destroy());
    });
    await new Promise<void>((r) => store.listen(0, '127.0.0.1', () => r()));
    storeHost = `127.0.0.1:${(store.address() as AddressInfo).port}`;
    const built = await buildEstargzImage(join(dir, 'img'), [entries([{ name: 'a/b.txt', body: 'redirected bytes\n' }, { name: 'big', body: randomBytes(9 << 20) }])]);
    await withClient(async (client) => {
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'redir/image' }, join(dir, 'img'), built.manifest.digest, 'v1');
    });
  });
  after(async () => {
    await proxy?.stop();
    await new Promise<void>((r) => store?.close(() => r()));
    await reg?.stop();
    cleanup?.();
  });

  it('follows the redirect without Authorization, reuses the signed URL, re-resolves it once expired', async () => {
    const client = testClient();
    const sign = (path: string) => `http://${storeHost}${path}?expires=${Date.now() + validMs}&signature=abc`;
    try {
      proxy.reset();
      proxy.inject({ kind: 'redirect', location: sign }, 1000, /\/blobs\//);
      const t = { endpoint: proxy.host, registry: proxy.host, repository: 'redir/image' };
      const image = new RegistrySource(`${proxy.host}/redir/image:v1`, client);
      const resolved = await image.resolve('linux/amd64');
      const layer = resolved.layers[0];
      assert.ok(layer);
      validMs = 500;
      const before = proxy.stats.faults;
      const a = await client.readRange(t, layer.digest, 0, 10);
      const b = await client.readRange(t, layer.digest, 10, 10);
      assert.equal(proxy.stats.faults - before, 1, 'the second read reused the signed URL');
      await new Promise((r) => setTimeout(r, 700));
      const c = await client.readRange(t, layer.digest, 20, 10);
      assert.equal(seen.expired, 1, 'the blob store refused the expired URL once');
      assert.equal(proxy.stats.faults - before, 2, 'the registry was asked for a fresh URL');
      const whole = await client.readRange({ endpoint: reg.host, registry: reg.host, repository: 'redir/image' }, layer.digest, 0, 30);
      assert.ok(Buffer.concat([a, b, c]).equals(whole));
      assert.equal(seen.leakedAuth, 0, 'Authorization never reached the blob store');
    } finally {
      await client.close();
    }
  });
});

describe('registries that answer oddly', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let digest = '';
  const blob = randomBytes(100_000);
  const t = () => ({ endpoint: proxy.host, registry: proxy.host, repository: 'odd/blob' });
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    client = testClient({ retries: 0 });
    digest = await pushBlob(client, { endpoint: reg.host, registry: reg.host, repository: 'odd/blob' }, blob);
  });
  after(async () => {
    await client?.close();
    await proxy?.stop();
    await reg?.stop();
  });

  it('HEAD refused: the size comes from Content-Range of bytes=0-0', async () => {
    proxy.reset();
    proxy.inject({ kind: 'status', status: 405 }, 1, /\/blobs\//);
    assert.equal(await client.blobSize(t(), digest), blob.length);
    assert.equal(proxy.stats.faults, 1);
    assert.deepEqual(proxy.stats.ranges, ['bytes=0-0']);
  });

  it('a body longer than the range asked for is an error, never data', async () => {
    proxy.reset();
    proxy.inject({ kind: 'overlong', extra: 7 }, 1, /\/blobs\//, { rangedOnly: true });
    await assert.rejects(client.readRange(t(), digest, 100, 50), (err: Error & { code?: string }) => err.code === 'SGZ_RANGE' || err.code === 'SGZ_REGISTRY');
    assert.ok((await client.readRange(t(), digest, 100, 50)).equals(blob.subarray(100, 150)), 'fine once the fault clears');
  });
});

describe('a body that trickles in', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let digest = '';
  const blob = randomBytes(200_000);
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    client = testClient({ timeoutMs: 1000, retries: 2 });
    digest = await pushBlob(client, { endpoint: reg.host, registry: reg.host, repository: 'slow/blob' }, blob, 64 << 10);
  });
  after(async () => {
    await client?.close();
    await proxy?.stop();
    await reg?.stop();
  });

  it('is cut off by the per-request timeout and retried; the chunked upload read back exactly', async () => {
    proxy.reset();
    proxy.inject({ kind: 'trickle', bytesPerTick: 100, tickMs: 50 }, 1, /\/blobs\//, { rangedOnly: true });
    const t0 = Date.now();
    const got = await client.readRange({ endpoint: proxy.host, registry: proxy.host, repository: 'slow/blob' }, digest, 0, 100_000);
    assert.ok(got.equals(blob.subarray(0, 100_000)));
    assert.equal(proxy.stats.faults, 1);
    assert.ok(Date.now() - t0 >= 900, 'the first attempt waited for its timeout');
  });
});

describe('a ranged GET that goes silent gets a twin', () => {
  let reg: TestRegistry;
  let proxy: FaultProxy;
  let client: RegistryClient;
  let digest = '';
  const blob = randomBytes(200_000);
  const t = () => ({ endpoint: proxy.host, registry: proxy.host, repository: 'hedge/blob' });
  before(async () => {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    client = testClient({ stallTimeoutMs: 10_000, hedgeAfterMs: 300, retries: 0 });
    digest = await pushBlob(client, { endpoint: reg.host, registry: reg.host, repository: 'hedge/blob' }, blob);
  });
  after(async () => {
    await client?.close();
    await proxy?.stop();
    await reg?.stop();
  });

  it('a stalled body: the twin answers after hedgeAfterMs, long before the stall timeout', async () => {
    proxy.reset();
    proxy.inject({ kind: 'stall', afterBytes: 1000 }, 1, /\/blobs\//, { rangedOnly: true });
    const t0 = Date.now();
    const got = await client.readRange(t(), digest, 5000, 100_000);
    const ms = Date.now() - t0;
    assert.ok(got.equals(blob.subarray(5000, 105_000)));
    assert.equal(proxy.stats.ranges.length, 2, 'the stalled request and its twin');
    assert.ok(ms >= 280 && ms < 3000, `answered after ${ms} ms`);
  });

  it('a body that keeps coming, however slowly, is not doubled', async () => {
    proxy.reset();
    proxy.inject({ kind: 'trickle', bytesPerTick: 4000, tickMs: 100 }, 1, /\/blobs\//, { rangedOnly: true });
    const got = await client.readRange(t(), digest, 0, 40_000);
    assert.ok(got.equals(blob.subarray(0, 40_000)));
    assert.equal(proxy.stats.ranges.length, 1);
  });
});
