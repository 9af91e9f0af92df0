// The read path against the real registry, counted at a proxy in front of it: small
// files read in a burst share requests, a sequential read runs ahead in few large
// requests, a fetched image is served with no blob request, background fetch steps aside
// for reads and never caches bad bytes, two processes share one state root, and the
// learned profile brings a workload's files in before it asks.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import type { ConfigInput } from '../../src/config.js';
import { entries, type Spec } from '../helpers/entries.js';
import { runCli, cliJson } from '../helpers/cli.js';
import { cliPath } from '../helpers/paths.js';
import type { FaultProxy } from '../helpers/fault-proxy.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { testConfig } from '../helpers/config.js';
import { bytes, rng } from '../helpers/random.js';

const r = rng(4);
const SMALL = Array.from({ length: 100 }, (_, i) => ({ name: `app/lib/mod${String(i).padStart(3, '0')}.py`, body: bytes(r, 1000 + Math.floor(r() * 4000)) }));
const BIG = bytes(r, 12 << 20);
const files: Spec[] = [{ name: 'app/', type: 'dir' }, { name: 'app/lib/', type: 'dir' }, ...SMALL, { name: 'data/', type: 'dir' }, { name: 'data/big.bin', body: BIG }];

interface FetchJson {
  layers: Array<{ digest: string; fetchedBytes: number; totalBytes: number; errors: number; phases: Record<string, string> }>;
}

describe('read path through the registry', () => {
  let served: ServedImage | undefined;
  let proxy: FaultProxy;
  let ref: string;
  let n = 0;
  const root = (): string => join(served?.dir ?? '', `root-${++n}`);

  before(async () => {
    served = await serveImage('read/path', [entries(files)], { chunkSize: 1 << 20, compressionLevel: 1 });
    ({ proxy, ref } = served);
  });
  after(async () => {
    await served?.stop();
  });

  /** Reads the small files in order in one process; returns the blob range requests it took. */
  async function readSmall(extra: ConfigInput): Promise<number> {
    const cfg = testConfig(root(), extra);
    await withImage(cfg, ref, async ({ image }) => {
      const view = image.merged();
      proxy.reset();
      for (const f of SMALL) assert.ok((await image.reader.read(resolvePath(view, f.name), f.name, 0, 1 << 20)).equals(f.body));
    });
    return proxy.stats.ranges.length;
  }

  it('a burst of small files in one directory: neighbours come with each miss, so a handful of requests serve a hundred files', async () => {
    const alone = await readSmall({ neighbourBytes: 0 });
    const together = await readSmall({});
    assert.equal(alone, SMALL.length, 'without neighbours, one request per file');
    assert.ok(together * 10 <= alone, `with neighbours: ${together} requests for ${SMALL.length} files`);
    assert.ok(proxy.stats.blobBytes < 2 << 20, `fetched ${proxy.stats.blobBytes} bytes: the small files, not the 12 MiB file`);
  });

  it('a sequential read runs ahead: a 12 MiB file in far fewer requests than its 12 chunks, and the bytes are right', async () => {
    const r0 = root();
    proxy.reset();
    const flat = await runCli(['--root', r0, '--log-level', 'error', 'cat', ref, '/data/big.bin']);
    assert.equal(flat.code, 0, flat.stderr);
    assert.ok(flat.stdout.equals(BIG));
    const requests = proxy.stats.ranges.length - 1; // less the footer+TOC tail
    // Without read-ahead each of the 12 one-MiB reads would wait for a request of its own.
    assert.ok(requests <= 8, `${requests} requests for 12 chunks`);
  });

  it('fetch brings every layer in (progress reported per layer); a later process serves every file with no blob request', async () => {
    const r0 = root();
    const fetched = await cliJson<FetchJson>(['--root', r0, 'fetch', ref, '--json']);
    const [l] = fetched.layers;
    assert.ok(l);
    assert.equal(l.errors, 0);
    assert.equal(l.phases['background'], 'done');
    assert.ok(l.fetchedBytes >= l.totalBytes * 0.95 && l.fetchedBytes <= l.totalBytes, `fetched ${l.fetchedBytes} of ${l.totalBytes}`);
    proxy.reset();
    const all = await runCli(['--root', r0, 'cat', ref, ...SMALL.map((f) => f.name), '/data/big.bin']);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(all.stdout.equals(Buffer.concat([...SMALL.map((f) => f.body), BIG])));
    assert.deepEqual(proxy.stats.ranges, [], 'no blob range request');
    assert.ok(proxy.stats.blobBytes < 1024, `${proxy.stats.blobBytes} blob bytes: the image config, no layer bytes`);
  });

  it('two processes on one state root read everything at the same time without errors', async () => {
    const r0 = root();
    const names = [...SMALL.map((f) => f.name), 'data/big.bin'];
    const run = (paths: string[]) =>
      new Promise<{ code: number | null; out: Buffer; err: string }>((resolve) => {
        const child = spawn(process.execPath, [cliPath, '--root', r0, 'cat', ref, ...paths], { stdio: ['ignore', 'pipe', 'pipe'] });
        const out: Buffer[] = [];
        let err = '';
        child.stdout.on('data', (b: Buffer) => out.push(b));
        child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
        child.on('close', (code) => resolve({ code, out: Buffer.concat(out), err }));
      });
    const reversed = [...names].reverse();
    const [a, b] = await Promise.all([run(names), run(reversed)]);
    const body = (name: string) => (name === 'data/big.bin' ? BIG : (SMALL.find((f) => f.name === name)?.body as Buffer));
    assert.equal(a.code, 0, a.err);
    assert.equal(b.code, 0, b.err);
    assert.equal(a.err + b.err, '');
    assert.ok(a.out.equals(Buffer.concat(names.map(body))));
    assert.ok(b.out.equals(Buffer.concat(reversed.map(body))));
  });

  it('background fetch steps aside: a read during a slow background fetch is served before the background is done', async () => {
    await withImage(testConfig(root(), { backgroundBandwidth: '2M' }), ref, async ({ image }) => {
      const warming = image.warm();
      // Background fetch starts once the image has been quiet a moment (scheduler.ts).
      for (let i = 0; i < 300 && image.progress.snapshot()[0]?.phases.background !== 'running'; i++) await new Promise((res) => setTimeout(res, 10));
      await new Promise((res) => setTimeout(res, 100));
      const f = SMALL[77] as { name: string; body: Buffer };
      const got = await image.reader.read(resolvePath(image.merged(), f.name), f.name, 0, 1 << 20);
      assert.ok(got.equals(f.body));
      const [l] = image.progress.snapshot();
      assert.equal(l?.phases.background, 'running', 'the read did not wait for the background fetch');
      image.close();
      await warming;
    });
  });

  it('a chunk corrupted in transit during background fetch is reported, not cached, and read right later', async () => {
    const r0 = root();
    proxy.reset();
    proxy.inject({ kind: 'corrupt' }, 1, /\/blobs\//, { skip: 1, rangedOnly: true });
    const res = await runCli(['--root', r0, '--log-level', 'silent', 'fetch', ref, '--json']);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(proxy.stats.faults, 1);
    const fetched = JSON.parse(res.stdout.toString()) as FetchJson;
    assert.ok((fetched.layers[0]?.errors ?? 0) >= 1, 'the bad chunk is reported');
    const all = await runCli(['--root', r0, 'cat', ref, ...SMALL.map((f) => f.name), '/data/big.bin']);
    assert.equal(all.code, 0, all.stderr);
    assert.ok(all.stdout.equals(Buffer.concat([...SMALL.map((f) => f.body), BIG])), 'every byte right: the corrupt chunk was never cached');
  });

  it('learned prefetch: the files a run read first are exported in order and prefetched by the next run, without a landmark', async () => {
    const r0 = root();
    // Against the blob's order: the learned fetch keeps this one.
    const first = ['data/big.bin', 'app/lib/mod090.py', 'app/lib/mod010.py'];
    const read = await runCli(['--root', r0, 'cat', ref, ...first]);
    assert.equal(read.code, 0, read.stderr);
    const exported = await runCli(['--root', r0, 'profile', 'export', ref]);
    assert.equal(exported.stdout.toString(), first.map((p) => `/${p}\n`).join(''));
    assert.equal((await runCli(['--root', r0, 'cache', 'clear'])).code, 0);
    const off = await cliJson<FetchJson>(['--root', r0, '--no-background-fetch', '--no-learned-prefetch', 'fetch', ref, '--json']);
    assert.equal(off.layers[0]?.fetchedBytes, 0, 'no landmark, no learned prefetch: nothing fetched');
    proxy.reset();
    const warm = await cliJson<FetchJson>(['--root', r0, '--no-background-fetch', 'fetch', ref, '--json']);
    assert.equal(warm.layers[0]?.phases['learned'], 'done');
    // One request, its ranges (a member each) in the profile's order: big.bin's first.
    const learned = proxy.stats.ranges.filter((r) => r.includes(','));
    assert.equal(learned.length, 1, proxy.stats.ranges.join(' '));
    const starts = (learned[0] as string).slice('bytes='.length).split(',').map((r) => Number(r.split('-')[0]));
    assert.ok((starts[0] as number) > (starts[starts.length - 1] as number), `ranges in the profile's order, not the blob's: ${learned[0]}`);
    proxy.reset();
    const again = await runCli(['--root', r0, 'cat', ref, ...first]);
    assert.equal(again.code, 0, again.stderr);
    assert.deepEqual(proxy.stats.ranges, [], 'the profiled files were prefetched');
    const other = await runCli(['--root', r0, 'cat', ref, 'app/lib/mod050.py']);
    assert.equal(other.code, 0, other.stderr);
    assert.ok(proxy.stats.ranges.length > 0, 'a file outside the profile is fetched on demand');
  });
});
