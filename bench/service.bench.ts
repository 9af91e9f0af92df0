// The service at scale and at speed, on loopback (Debian's docker-registry), JSON on stdout
// (`make bench` saves it as bench/results/service.json):
// - layers: one image of LAYERS small eStargz layers, every layer mounted in one
//   `stargzfs serve` (`mount --layer i`, handed over through the control socket): the
//   service's RSS and open descriptors before and after, and per mounted layer;
// - mount: the time from starting `stargzfs mount --daemon` (the launcher people run) to
//   the first stat inside the tree, for an image whose TOCs are indexed already and for
//   a new one, through the service and, as the baseline in the same run, without it
//   (one process per mount). Medians of RUNS, and the ratio service / one process.
//
//   BENCH_LAYERS=200 BENCH_RUNS=7
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { writeOciImage } from '../src/http/oci-layout-writer.js';
import { OCI_LAYER_GZIP } from '../src/http/media-types.js';
import { pushLayoutImage } from '../src/http/push.js';
import { entry } from '../test/helpers/entries.js';
import { sha256, tocAnnotation, writerBlob } from '../test/helpers/blobs.js';
import { withClient } from '../test/helpers/client.js';
import { startRegistry } from '../test/helpers/registry.js';
import { callService } from '../src/service/client.js';

const LAYERS = Number(process.env['BENCH_LAYERS'] ?? 200);
const RUNS = Number(process.env['BENCH_RUNS'] ?? 7);
const CLI = resolve(import.meta.dirname, '../../dist/bundle/stargzfs');
const log = (s: string): void => void process.stderr.write(`${s}\n`);
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

function run(args: readonly string[]): void {
  const r = spawnSync(CLI, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`stargzfs ${args.join(' ')}: exit ${r.status}: ${r.stderr}`);
}

function procOf(pid: number): { rssKiB: number; fds: number } {
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { rssKiB: Number(rss), fds: readdirSync(`/proc/${pid}/fd`).length };
}

async function startServe(root: string): Promise<{ pid: number; stop(): Promise<void> }> {
  mkdirSync(root, { recursive: true });
  const p = spawn(CLI, ['serve', '--root', root, '--no-snapshotter', '--no-background-fetch'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  const sock = join(root, 'serve.sock');
  for (let i = 0; i < 300 && (await callService(sock, 'GET', '/v1/status').catch(() => undefined)) === undefined; i++) await new Promise((r) => setTimeout(r, 50));
  return {
    pid: p.pid as number,
    stop: async () => {
      p.kill('SIGTERM');
      await exited;
    },
  };
}

/** Milliseconds from starting `stargzfs mount --daemon` to a stat inside the mounted tree. */
function timedMount(args: readonly string[], mnt: string, inside: string): number {
  const t0 = performance.now();
  run(['mount', '--daemon', ...args, mnt]);
  statSync(join(mnt, inside));
  return performance.now() - t0;
}

const work = mkdtempSync(join(tmpdir(), 'stargzfs-service-bench-'));
const reg = await startRegistry();
const stops: Array<() => Promise<void>> = [];
try {
  // An image of LAYERS layers, a few files each; and a one-layer image for the mount timings.
  const layers = Array.from({ length: LAYERS }, (_, i) => {
    const b = writerBlob([entry({ name: `l${i}/` }), ...Array.from({ length: 20 }, (_, j) => entry({ name: `l${i}/f${j}`, body: `layer ${i} file ${j}\n`.repeat(50) }))]);
    return { blob: b.blob, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(b.blob)), annotations: tocAnnotation(b.tocDigest) };
  });
  const manyDir = join(work, 'many');
  const many = await writeOciImage(manyDir, { layers, refName: 'latest' });
  const small = Array.from({ length: RUNS * 2 + 2 }, (_, k) => {
    const b = writerBlob([entry({ name: 'etc/' }), entry({ name: 'etc/os-release', body: `NAME=bench-${k}\n` }), ...Array.from({ length: 2000 }, (_, j) => entry({ name: `usr/share/f${j}`, body: `${k}-${j}` }))]);
    return { blob: b.blob, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(b.blob)), annotations: tocAnnotation(b.tocDigest) };
  });
  await withClient(async (client) => {
    await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'bench/many' }, manyDir, many.digest, 'latest');
    for (const [k, l] of small.entries()) {
      const dir = join(work, `small-${k}`);
      const d = await writeOciImage(dir, { layers: [l], refName: 'latest' });
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: `bench/small${k}` }, dir, d.digest, 'latest');
    }
  });

  // ---- LAYERS layers mounted in one service
  const root = join(work, 'root-many');
  const svc = await startServe(root);
  stops.push(svc.stop);
  const before = procOf(svc.pid);
  const t0 = performance.now();
  for (let i = 0; i < LAYERS; i++) {
    const mnt = join(work, 'layers', String(i));
    mkdirSync(mnt, { recursive: true });
    run(['mount', '--root', root, '--layer', String(i), `${reg.host}/bench/many:latest`, mnt]);
  }
  const mountSeconds = (performance.now() - t0) / 1000;
  statSync(join(work, 'layers', String(LAYERS - 1), `l${LAYERS - 1}`, 'f0'));
  await new Promise((r) => setTimeout(r, 2000));
  const after = procOf(svc.pid);
  log(`${LAYERS} layers: RSS ${before.rssKiB} → ${after.rssKiB} KiB, fds ${before.fds} → ${after.fds}, ${mountSeconds.toFixed(1)} s`);
  await svc.stop();
  stops.pop();

  // ---- mount latency: through the service and without it, indexed and new
  const ref = (k: number): string => `${reg.host}/bench/small${k}:latest`;
  const timings: Record<string, number[]> = { serviceIndexed: [], serviceNew: [], aloneIndexed: [], aloneNew: [] };
  for (const service of [true, false]) {
    const r = join(work, service ? 'root-svc' : 'root-alone');
    const s = service ? await startServe(r) : undefined;
    if (s !== undefined) stops.push(s.stop);
    for (let i = 0; i < RUNS; i++) {
      const k = (service ? 0 : RUNS) + i;
      const mnt = join(work, `m-${service}-${i}`);
      mkdirSync(mnt, { recursive: true });
      const fresh = timedMount(['--root', r, ref(k)], mnt, 'etc/os-release');
      run(['unmount', mnt]);
      const indexed = timedMount(['--root', r, ref(k)], mnt, 'etc/os-release');
      run(['unmount', mnt]);
      timings[service ? 'serviceNew' : 'aloneNew']?.push(fresh);
      timings[service ? 'serviceIndexed' : 'aloneIndexed']?.push(indexed);
    }
    if (s !== undefined) {
      await s.stop();
      stops.pop();
    }
  }
  const ms = (k: string): number => +median(timings[k] ?? []).toFixed(1);
  const out = {
    bench: 'service',
    date: new Date().toISOString(),
    layers: {
      count: LAYERS,
      mountSeconds: +mountSeconds.toFixed(2),
      rssKiB: { before: before.rssKiB, after: after.rssKiB, perLayer: +((after.rssKiB - before.rssKiB) / LAYERS).toFixed(1) },
      fds: { before: before.fds, after: after.fds, perLayer: +((after.fds - before.fds) / LAYERS).toFixed(2) },
    },
    mountToFirstStatMs: {
      runs: RUNS,
      indexed: { service: ms('serviceIndexed'), alone: ms('aloneIndexed'), ratio: +(ms('serviceIndexed') / ms('aloneIndexed')).toFixed(2) },
      new: { service: ms('serviceNew'), alone: ms('aloneNew'), ratio: +(ms('serviceNew') / ms('aloneNew')).toFixed(2) },
      all: timings,
    },
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  for (const s of stops.reverse()) await s().catch(() => undefined);
  // Anything still mounted under the work directory (a failed run): detached before it is removed.
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const at = line.split(' ')[4];
    if (at !== undefined && at.startsWith(work)) spawnSync('umount', ['-l', at]);
  }
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
