// The read path on an emulated network: an image of this machine's /usr/lib/python3.11
// (≈1400 files, 54 MB) as eStargz in Debian's docker-registry, behind a shaping proxy
// (loopback, and 20 ms per request at 200 Mbit/s). Cold runs (fresh state root each) of:
// reading 200 .py files spread over the tree, a sequential read of a 13 MB file, and a
// whole-image fetch, each beside the baseline of the same run: a full pull (GET the blob,
// `tar -xz`) then the same reads from disk. Tuning variants show what neighbours and
// read-ahead buy. JSON on stdout; `make bench` saves it as bench/results/read-path.json.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildEstargzImage } from '../src/layer/build-image.js';
import { directoryEntries } from '../src/toc/dir-entries.js';
import { pushLayoutImage } from '../src/http/push.js';
import { RegistryClient } from '../src/http/registry-client.js';
import { DockerConfigCredentials } from '../src/http/credentials.js';
import { withImage } from '../src/cli/context.js';
import { resolvePath } from '../src/toc/view.js';
import { createLogger } from '../src/log.js';
import type { ConfigInput } from '../src/config.js';
import { startRegistry } from '../test/helpers/registry.js';
import { httpOptions, testConfig } from '../test/helpers/config.js';
import { startShapingProxy, type NetworkProfile } from './lib/shaping-proxy.js';

const SRC = '/usr/lib/python3.11';
const PREFIX = 'usr/lib/python3.11';
const LARGE = `${PREFIX}/config-3.11-x86_64-linux-gnu/libpython3.11.a`;
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const PROFILES: NetworkProfile[] = [
  { name: 'loopback', rttMs: 0, bitsPerSecond: 0 },
  { name: '20ms-200mbit', rttMs: 20, bitsPerSecond: 200e6 },
];

const log = createLogger('silent');
const work = mkdtempSync(join(tmpdir(), 'stargzfs-bench-'));
const reg = await startRegistry();

interface Run { seconds: number; requests: number; bytes: number }
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const summarize = (runs: Run[]) => ({
  seconds: +median(runs.map((r) => r.seconds)).toFixed(3),
  min: +Math.min(...runs.map((r) => r.seconds)).toFixed(3),
  max: +Math.max(...runs.map((r) => r.seconds)).toFixed(3),
  requests: median(runs.map((r) => r.requests)),
  bytes: median(runs.map((r) => r.bytes)),
});

try {
  const entries = directoryEntries(SRC, PREFIX);
  const py = entries.filter((e) => e.header.type === 'reg' && e.header.name.endsWith('.py')).map((e) => e.header.name).sort();
  const smallSet = py.filter((_, i) => i % Math.max(1, Math.floor(py.length / 200)) === 0).slice(0, 200);
  const built = await buildEstargzImage(join(work, 'img'), [entries], {});
  const layer = built.layers[0];
  const client = new RegistryClient(httpOptions(), new DockerConfigCredentials(undefined, log), log);
  const target = { endpoint: reg.host, registry: reg.host, repository: 'bench/python' };
  await pushLayoutImage(client, target, join(work, 'img'), built.manifest.digest, 'v1');
  const blobDigest = JSON.parse(readFileSync(join(work, 'img', 'blobs', ...built.manifest.digest.split(':')), 'utf8')).layers[0].digest as string;
  const blobSize = JSON.parse(readFileSync(join(work, 'img', 'blobs', ...built.manifest.digest.split(':')), 'utf8')).layers[0].size as number;

  const results: Record<string, unknown> = {};
  let rootN = 0;
  for (const profile of PROFILES) {
    const proxy = await startShapingProxy(reg.host, profile);
    const ref = `${proxy.host}/bench/python:v1`;
    const timed = async (fn: () => Promise<void>): Promise<Run> => {
      proxy.reset();
      const t0 = performance.now();
      await fn();
      return { seconds: (performance.now() - t0) / 1000, requests: proxy.stats.requests, bytes: proxy.stats.blobBytes };
    };
    const repeat = async (name: string, fn: () => Promise<void>) => {
      const runs: Run[] = [];
      for (let i = 0; i < RUNS; i++) runs.push(await timed(fn));
      const s = summarize(runs);
      process.stderr.write(`${profile.name} ${name}: ${s.seconds}s ${s.requests} requests ${s.bytes} bytes\n`);
      return s;
    };
    // Baseline: the whole blob through the same proxy, extracted by tar, then the reads from disk.
    const pull = (then: (dir: string) => void) => async () => {
      const c = new RegistryClient(httpOptions({ timeoutMs: 120_000 }), new DockerConfigCredentials(undefined, log), log);
      const blob = await c.readRange({ ...target, endpoint: proxy.host, registry: proxy.host }, blobDigest, 0, blobSize);
      await c.close();
      const dir = mkdtempSync(join(work, 'pull-'));
      await new Promise<void>((resolve, reject) => {
        const tar = spawn('tar', ['-xzf', '-', '-C', dir], { stdio: ['pipe', 'ignore', 'inherit'] });
        tar.on('error', reject);
        tar.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`tar exited ${code}`))));
        tar.stdin.end(blob);
      });
      then(dir);
      rmSync(dir, { recursive: true, force: true });
    };
    const lazy = (extra: ConfigInput, fn: (read: (p: string) => Promise<Buffer>, image: Parameters<Parameters<typeof withImage>[2]>[0]['image']) => Promise<void>) => async () => {
      const cfg = testConfig(join(work, `root-${++rootN}`), { backgroundFetch: false, prefetch: false, learnedPrefetch: false, ...extra });
      await withImage(cfg, ref, async ({ image }) => {
        const view = image.merged();
        await fn(async (p) => {
          const node = resolvePath(view, p);
          const parts: Buffer[] = [];
          for await (const b of image.reader.stream(node, p)) parts.push(b);
          return Buffer.concat(parts);
        }, image);
      });
    };
    const readSmall = (read: (p: string) => Promise<Buffer>) => async () => {
      for (const p of smallSet) await read(p);
    };
    const small = {
      pull: await repeat('small pull', pull((dir) => { for (const p of smallSet) readFileSync(join(dir, p)); })),
      lazy: await repeat('small lazy (neighbours auto)', lazy({}, (read) => readSmall(read)())),
      lazyNoNeighbours: await repeat('small no-neighbours', lazy({ neighbourBytes: 0 }, (read) => readSmall(read)())),
      lazyNeighbours64k: await repeat('small neighbours-64k', lazy({ neighbourBytes: '64K' }, (read) => readSmall(read)())),
      lazyNeighbours256k: await repeat('small neighbours-256k', lazy({ neighbourBytes: '256K' }, (read) => readSmall(read)())),
      lazyNeighbours1m: await repeat('small neighbours-1m', lazy({ neighbourBytes: '1M' }, (read) => readSmall(read)())),
    };
    const large = {
      pull: await repeat('large pull', pull((dir) => { readFileSync(join(dir, LARGE)); })),
      lazy: await repeat('large lazy', lazy({}, async (read) => { await read(LARGE); })),
      lazyNoReadAhead: await repeat('large no-read-ahead', lazy({ readAhead: 0 }, async (read) => { await read(LARGE); })),
    };
    const whole = {
      pull: await repeat('whole pull', pull(() => undefined)),
      fetch: await repeat('whole fetch', lazy({ backgroundFetch: true }, async (_read, image) => { await image.warm(); })),
    };
    const ratio = (base: { seconds: number }, x: { seconds: number }) => +(base.seconds / x.seconds).toFixed(2);
    results[profile.name] = {
      profile,
      small: { files: smallSet.length, ...small, speedupOverPull: ratio(small.pull, small.lazy) },
      large: { file: LARGE, ...large, speedupOverPull: ratio(large.pull, large.lazy) },
      whole: { ...whole, fetchOverPull: ratio(whole.pull, whole.fetch) },
    };
    await proxy.stop();
  }
  await client.close();
  process.stdout.write(`${JSON.stringify({
    bench: 'read-path', date: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, runs: RUNS,
    image: { source: SRC, files: entries.length, uncompressedBytes: layer?.uncompressedSize, blobBytes: blobSize },
    results,
  }, null, 2)}\n`);
} finally {
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
