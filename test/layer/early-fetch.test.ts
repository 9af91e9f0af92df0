// A mount's early requests (layer/early-fetch.ts) on an emulated network: the bench's
// shaping proxy (a round trip per request, one shared link) in front of the real
// registry, and the CLI as people run it: the TOC and the landmark region go in one
// request, TOC first, and each part is used as the answer to its own request. A registry
// that answers with the whole blob instead (the fault proxy) has them asked for alone.
// When the region is then asked for (`nearEnd`): once the rest of the TOC would be in
// before the region's first byte could be, so the TOC's bytes travel alone and the link
// does not idle between the two. On a clock of the test's: in a server loading its CLI,
// the TOC's bytes are seen late and all at once.
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startShapingProxy } from '../../bench/lib/shaping-proxy.js';
import { serveImage } from '../helpers/served-image.js';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { pushLayoutImage } from '../../src/http/push.js';
import { withClient } from '../helpers/client.js';
import { entries, type Spec } from '../helpers/entries.js';
import { runCli } from '../helpers/cli.js';
import { nearEnd } from '../../src/layer/early-fetch.js';
import type { EarlyResponse } from '../../src/http/early-responses.js';
import { forceUnmount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';

describe('early fetch', () => {
  /** An image whose one layer has a landmark region (first.bin) and a TOC of some 100 KB. */
  const withRegion = (repository: string, extra: Spec[] = []): ReturnType<typeof serveImage> => {
    const specs: Spec[] = [{ name: 'first.bin', body: bytes(rng(3), 256 << 10) }, ...extra];
    for (let i = 0; i < 3000; i++) specs.push({ name: `d${i % 30}/file-${i}.txt`, body: `file ${i}\n` });
    return serveImage(repository, [entries(specs)], { prioritized: ['first.bin'], hints: true });
  };
  /** Mounts `ref` with debug logs; the lines of its log about early answers, and the server's pid. */
  async function mountLogged(dir: string, ref: string, mnt: string): Promise<{ log: string[]; pid: number }> {
    const r = await runCli(['--root', join(dir, 'root'), '--plain-http', '--log-level', 'debug', 'mount', '--daemon', '--no-learned-prefetch', '--no-background-fetch', ref, mnt]);
    assert.equal(r.code, 0, r.stderr);
    const logFile = /log (.+)\)/.exec(r.stderr)?.[1] as string;
    // The region is taken by the landmark prefetch, which may start after "ready".
    let log: string[] = [];
    for (let i = 0; i < 200; i++) {
      log = readFileSync(logFile, 'utf8').split('\n').filter((l) => /sent early/.test(l));
      if (log.some((l) => l.includes('"range":"bytes=0-'))) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return { log, pid: Number(/pid ([0-9]+)/.exec(r.stderr)?.[1]) };
  }

  it('asks for the TOC and the landmark region in one request, TOC first, and uses both parts', { timeout: 60_000 }, async () => {
    const served = await withRegion('early/region');
    const net = await startShapingProxy(served.reg.host, { name: 'test', rttMs: 20, bitsPerSecond: 20e6 });
    const mnt = join(served.dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    let pid: number | undefined;
    try {
      const m = await mountLogged(served.dir, `${net.host}/early/region:v1`, mnt);
      pid = m.pid;
      const blobs = net.seen.filter((s) => s.path.includes('/blobs/'));
      const said = `${blobs.map((s) => `${s.range} at ${s.arrived.toFixed(0)}–${s.ended?.toFixed(0)}`).join(', ')}\n${m.log.join('\n')}`;
      assert.equal(blobs.length, 1, `one blob request: ${said}`);
      const [toc, region] = (blobs[0]?.range ?? '').slice('bytes='.length).split(',');
      assert.ok(toc !== undefined && region?.startsWith('0-') === true && Number(toc.split('-')[0]) > Number(region.split('-')[1]), `the TOC's range, then the region's: ${said}`);
      // Each part was taken as the answer to its own single-range request.
      assert.equal(m.log.filter((l) => l.includes(`"range":"bytes=${toc}"`)).length, 1, `the TOC part was used: ${said}`);
      assert.equal(m.log.filter((l) => l.includes(`"range":"bytes=${region}"`)).length, 1, `the region part was used: ${said}`);
      const first = bytes(rng(3), 256 << 10);
      assert.ok((await readFile(join(mnt, 'first.bin'))).equals(first));
    } finally {
      const u = await runCli(['unmount', mnt]);
      if (u.code !== 0) forceUnmount(mnt, pid);
      await net.stop();
      await served.stop();
    }
  });

  it('a registry that answers a multi-range request with the whole blob: that answer is stopped, TOC and region are asked for alone', { timeout: 60_000 }, async () => {
    // 32 MiB that do not compress: more than the socket buffers hold, so that stopping shows.
    const served = await withRegion('early/whole', [{ name: 'big.bin', body: randomBytes(32 << 20) }]);
    const mnt = join(served.dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    let pid: number | undefined;
    try {
      served.proxy.reset();
      served.proxy.inject({ kind: 'ignore-range' }, 1, /\/blobs\//, { range: /,/ });
      const m = await mountLogged(served.dir, served.ref, mnt);
      pid = m.pid;
      const ranges = served.proxy.stats.ranges;
      const said = `${ranges.join(' | ')}\n${m.log.join('\n')}`;
      assert.equal(served.proxy.stats.faults, 1, said);
      assert.ok(ranges[0]?.includes(',') === true, `the multi-range request went first: ${said}`);
      const [toc, region] = (ranges[0] ?? '').slice('bytes='.length).split(',');
      assert.ok(ranges.includes(`bytes=${toc}`) && ranges.includes(`bytes=${region}`), `then each alone: ${said}`);
      assert.ok(m.log.some((l) => l.includes(`"range":"bytes=${toc}"`)) && m.log.some((l) => l.includes(`"range":"bytes=${region}"`)), `both were used: ${said}`);
      // The whole blob's answer was stopped, not read to its end (the TOC's tail ends the blob).
      const size = Number(toc?.split('-')[1]) + 1;
      const len = (r: string | undefined): number => Number(r?.split('-')[1]) - Number(r?.split('-')[0]) + 1;
      const whole = served.proxy.stats.blobBytes - len(toc) - len(region);
      assert.ok(whole < size, `${whole} bytes of the ${size}-byte blob sent whole`);
      assert.ok((await readFile(join(mnt, 'first.bin'))).equals(bytes(rng(3), 256 << 10)));
    } finally {
      const u = await runCli(['unmount', mnt]);
      if (u.code !== 0) forceUnmount(mnt, pid);
      await served.stop();
    }
  });

  it('a multi-range answer cut short: the parts it held are used, the rest is fetched again, the files are whole', { timeout: 60_000 }, async () => {
    const served = await withRegion('early/cut', [{ name: 'big.bin', body: randomBytes(4 << 20) }]);
    const mnt = join(served.dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    let pid: number | undefined;
    try {
      served.proxy.reset();
      served.proxy.inject({ kind: 'truncate' }, 1, /\/blobs\//, { range: /,/ });
      const m = await mountLogged(served.dir, served.ref, mnt);
      pid = m.pid;
      assert.equal(served.proxy.stats.faults, 1);
      assert.ok((await readFile(join(mnt, 'first.bin'))).equals(bytes(rng(3), 256 << 10)));
      assert.equal((await readFile(join(mnt, 'd7/file-7.txt'), 'utf8')), 'file 7\n');
    } finally {
      const u = await runCli(['unmount', mnt]);
      if (u.code !== 0) forceUnmount(mnt, pid);
      await served.stop();
    }
  });
});

describe('early fetch with a learned profile', () => {
  it('sends the profile\'s first request with the manifest\'s, in chunk order, and the mount uses it', { timeout: 60_000 }, async () => {
    // big.bin in chunks of 64 KiB; the run reads its last chunk, then a small file, then its first chunk.
    const big = bytes(rng(5), 256 << 10);
    const specs: Spec[] = [{ name: 'big.bin', body: big }];
    for (let i = 0; i < 50; i++) specs.push({ name: `small/f${i}.txt`, body: `small ${i}\n`.repeat(50) });
    const served = await serveImage('early/learned', [entries(specs)], { chunkSize: 64 << 10 });
    const net = await startShapingProxy(served.reg.host, { name: 'test', rttMs: 20, bitsPerSecond: 50e6 });
    const root = join(served.dir, 'root');
    const mnt = join(served.dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    const ref = `${net.host}/early/learned:v1`;
    let pid: number | undefined;
    try {
      // The recording run, in the order a program would: a read at the end of big.bin first.
      const first = await runCli(['--root', root, '--plain-http', 'mount', '--daemon', '--no-background-fetch', ref, mnt]);
      assert.equal(first.code, 0, first.stderr);
      pid = Number(/pid ([0-9]+)/.exec(first.stderr)?.[1]);
      // Not the sync calls: the proxy runs on this thread.
      const fh = await open(join(mnt, 'big.bin'), 'r');
      const tail = Buffer.alloc(1000);
      await fh.read(tail, 0, 1000, big.length - 1000);
      assert.ok(tail.equals(big.subarray(big.length - 1000)));
      assert.equal(await readFile(join(mnt, 'small/f7.txt'), 'utf8'), 'small 7\n'.repeat(50));
      await fh.read(Buffer.alloc(100), 0, 100, 0);
      await fh.close();
      assert.equal((await runCli(['unmount', mnt])).code, 0);
      pid = undefined;
      assert.equal((await runCli(['--root', root, 'cache', 'clear'])).code, 0);

      net.reset();
      const r = await runCli(['--root', root, '--plain-http', '--log-level', 'debug', 'mount', '--daemon', '--no-background-fetch', ref, mnt]);
      assert.equal(r.code, 0, r.stderr);
      pid = Number(/pid ([0-9]+)/.exec(r.stderr)?.[1]);
      const done = (): boolean => net.seen.some((s) => s.path.includes('/blobs/') && s.ended !== undefined);
      for (let i = 0; i < 200 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      const blobs = net.seen.filter((s) => s.path.includes('/blobs/'));
      const manifest = net.seen.find((s) => s.path.includes('/manifests/'));
      const logFile = /log (.+)\)/.exec(r.stderr)?.[1] as string;
      const earlyLines = (): string[] => readFileSync(logFile, 'utf8').split('\n').filter((l) => l.includes('sent early'));
      // The server takes the answer when its prefetch starts, after "ready".
      for (let i = 0; i < 200 && !earlyLines().some((l) => l.includes('/blobs/')); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      const log = earlyLines();
      const said = `${net.seen.map((s) => `${s.path.slice(-20)} ${s.range ?? ''} at ${s.arrived.toFixed(0)}–${s.ended?.toFixed(0)}`).join(', ')}\n${log.join('\n')}`;
      // One request, no TOC (meta.db has the layer): the learned one, a member a range.
      assert.equal(blobs.length, 1, said);
      const learned = blobs[0] as (typeof blobs)[number];
      const starts = (learned.range ?? '').slice('bytes='.length).split(',').map((x) => Number(x.split('-')[0]));
      assert.equal(starts.length, 3, `big.bin's last chunk, f7.txt's member, big.bin's first chunk: ${said}`);
      // In the blob: big.bin's chunks, then the small files.
      assert.ok((starts[2] as number) < (starts[0] as number) && (starts[0] as number) < (starts[1] as number), `in the order they were read, not the blob's: ${said}`);
      // Sent with the manifest's request (the image this reference named last time), not after its answer.
      assert.ok(manifest?.ended !== undefined && learned.arrived < manifest.ended, said);
      assert.equal(log.filter((l) => l.includes(`"range":"${learned.range}"`)).length, 1, `the early answer was used: ${said}`);
      // Read as before: nothing more is fetched.
      net.reset();
      assert.equal(await readFile(join(mnt, 'small/f7.txt'), 'utf8'), 'small 7\n'.repeat(50));
      const again = await open(join(mnt, 'big.bin'), 'r');
      await again.read(Buffer.alloc(100), 0, 100, 0);
      await again.close();
      assert.deepEqual(net.seen.filter((s) => s.path.includes('/blobs/')).map((s) => s.range), []);
      assert.equal((await runCli(['unmount', mnt])).code, 0);
      pid = undefined;

      // The tag moves to another image: the guess goes out, is stopped, and never served.
      const other = join(served.dir, 'other');
      const built = await buildEstargzImage(other, [entries([{ name: 'moved.txt', body: 'the tag moved\n' }])]);
      await withClient((c) => pushLayoutImage(c, { endpoint: served.reg.host, registry: served.reg.host, repository: 'early/learned' }, other, built.manifest.digest, 'v1'));
      assert.equal((await runCli(['--root', root, 'cache', 'clear'])).code, 0);
      net.reset();
      const m = await runCli(['--root', root, '--plain-http', '--log-level', 'debug', 'mount', '--daemon', '--no-background-fetch', ref, mnt]);
      assert.equal(m.code, 0, m.stderr);
      pid = Number(/pid ([0-9]+)/.exec(m.stderr)?.[1]);
      assert.equal(await readFile(join(mnt, 'moved.txt'), 'utf8'), 'the tag moved\n');
      // This mount's part of the log (the file is the mountpoint's, appended to).
      const thisMount = (): string => {
        const text = readFileSync(/log (.+)\)/.exec(m.stderr)?.[1] as string, 'utf8');
        return text.slice(text.lastIndexOf('"command starting"'));
      };
      for (let i = 0; i < 200 && !thisMount().includes('FUSE session initialised'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(net.seen.some((s) => s.range === learned.range), 'the guess went out with the manifest\'s request');
      assert.ok(thisMount().includes('"msg":"mounted"') && !thisMount().includes(learned.range as string), `the old image's request was not used: ${thisMount()}`);
    } finally {
      const u = await runCli(['unmount', mnt]);
      if (u.code !== 0) forceUnmount(mnt, pid);
      await net.stop();
      await served.stop();
    }
  });
});

describe('when the region is asked for', () => {
  /** A TOC body of `chunks` pieces of 10 KB, one every `everyMs` on the test's clock, after a first byte `ttfb` ms after sending. */
  function toc(chunks: number, everyMs: number): { r: EarlyResponse; clock: () => number; yielded: () => number } {
    let t = 0;
    let n = 0;
    const r: EarlyResponse = {
      status: 206,
      headers: {},
      body: async function* () {
        for (let i = 0; i < chunks; i++) {
          if (i > 0) t += everyMs;
          n = i + 1;
          yield Buffer.alloc(10_000);
        }
      },
    };
    return { r, clock: () => t, yielded: () => n };
  }

  it('once what is left of the TOC would be in within its own time to first byte', async () => {
    // 200 KB at 2.5 KB/ms after a 40 ms first byte: asked for with 100 KB (40 ms) to go.
    const t = toc(20, 4);
    const left = await nearEnd(t.r, 200_000, -40, t.clock);
    assert.equal(left, 100_000);
    assert.equal(t.yielded(), 10);
  });

  it('not before the last bytes of a TOC that takes long against its time to first byte', async () => {
    // A first byte after 1 ms: nothing is asked for before the last 2.5 KB.
    const t = toc(20, 4);
    assert.equal(await nearEnd(t.r, 200_000, -1, t.clock), 0);
    assert.equal(t.yielded(), 20);
  });

  it('a TOC whose bytes come all at once (the thread was busy) ends it', async () => {
    const t = toc(20, 0);
    assert.equal(await nearEnd(t.r, 200_000, -40, t.clock), 0);
  });
});
