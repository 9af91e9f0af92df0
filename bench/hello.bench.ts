// The start-up benchmark, HelloBench-style: how long until a workload is done when it
// starts from an image in a registry, lazily with stargzfs or after a full pull, over
// emulated networks. Images are built here without internet (bench/lib/rootfs.ts:
// debootstrap minbase, + python3, + a large file set), pushed to Debian's
// docker-registry as plain gzip and as eStargz converted by stargzfs (and, per workload,
// prioritized by a profile recorded on a mount). Every run is cold: a new state root and
// the page cache dropped. JSON on stdout (`make bench` saves it); BENCH_REPORT=DIR also
// writes hello.md and hello.svg there.
//
//   BENCH_RUNS=3  BENCH_PROFILES=loopback,20ms-200mbit,80ms-50mbit  BENCH_SCENARIOS=…
//   BENCH_CACHE=/var/tmp/stargzfs-bench (built root filesystems, kept between runs)
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startRegistry } from '../test/helpers/registry.js';
import { startShapingProxy, type NetworkProfile } from './lib/shaping-proxy.js';
import { debianLarge, debianMinbase, debianPython } from './lib/rootfs.js';
import { writeReport, type ReportRow } from './lib/hello-report.js';

const CACHE = process.env['BENCH_CACHE'] ?? '/var/tmp/stargzfs-bench';
const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
/** The executable as people run it: the shell launcher in front of the bundle. */
const CLI = resolve('dist/bundle/stargzfs');
const ALL_PROFILES: NetworkProfile[] = [
  { name: 'loopback', rttMs: 0, bitsPerSecond: 0 },
  { name: '20ms-200mbit', rttMs: 20, bitsPerSecond: 200e6 },
  { name: '80ms-50mbit', rttMs: 80, bitsPerSecond: 50e6 },
];
const pick = <T extends { name: string }>(all: T[], env: string | undefined): T[] => (env === undefined ? all : all.filter((x) => env.split(',').includes(x.name)));
const PROFILES = pick(ALL_PROFILES, process.env['BENCH_PROFILES']);
const log = (s: string): void => void process.stderr.write(`${s}\n`);

const work = mkdtempSync(join(tmpdir(), 'stargzfs-hello-'));
let seq = 0;
const fresh = (name: string): string => join(work, `${name}-${++seq}`);

/** Runs a command; resolves when it exits 0. */
function sh(cmd: string, args: readonly string[], opts: { quiet?: boolean } = {}): Promise<string> {
  return new Promise((res, rej) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d: Buffer) => void (opts.quiet ? undefined : (out += d.toString())));
    p.stderr.on('data', (d: Buffer) => void (err += d.toString()));
    p.on('error', rej);
    p.on('close', (code) => (code === 0 ? res(out) : rej(new Error(`${cmd} ${args.join(' ').slice(0, 300)}: exit ${code}: ${err.slice(-2000)}`))));
  });
}
const cli = (args: readonly string[], quiet = true): Promise<string> => sh(CLI, args, { quiet });

/** `stargzfs serve` on `root`, answering on ROOT/serve.sock; resolves with its stop. Not timed. */
async function startServe(root: string): Promise<() => Promise<void>> {
  mkdirSync(root, { recursive: true });
  const p = spawn(CLI, ['serve', '--root', root, '--no-snapshotter'], { stdio: 'ignore' });
  const exited = new Promise<void>((r) => p.on('exit', () => r()));
  for (let i = 0; i < 200 && !existsSync(join(root, 'serve.sock')); i++) await new Promise((r) => setTimeout(r, 50));
  if (!existsSync(join(root, 'serve.sock'))) throw new Error(`stargzfs serve did not listen on ${root}/serve.sock`);
  return async () => {
    p.kill('SIGTERM');
    await exited;
  };
}
const dropCaches = async (): Promise<void> => {
  await sh('sync', []);
  writeFileSync('/proc/sys/vm/drop_caches', '3');
};

interface Scenario {
  readonly name: string;
  readonly image: 'debian' | 'python' | 'large';
  readonly what: string;
  /** The workload's command, given the image's root directory (a mount or an extracted tree). */
  readonly cmd: (root: string) => [string, string[]];
}

const reg = await startRegistry();
// Ctrl-C or a kill ends the run in progress, then the registry, the services and the work
// directory go as at the end (the default action would leave them behind).
let stopping: string | undefined;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    stopping = sig;
    log(`${sig}: stopping after the run in progress`);
  });
}
try {
  // ---------------------------------------------------------------- images
  const roots = { debian: debianMinbase(CACHE, log), python: debianPython(CACHE, log), large: debianLarge(CACHE, log) };
  const pyDir = join(roots.python, 'usr/lib/python3.11');
  const pyFiles: string[] = [];
  const walk = (d: string, rel: string): void => {
    for (const n of readdirSync(d, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
      if (n.isDirectory()) walk(join(d, n.name), `${rel}/${n.name}`);
      else if (n.isFile() && n.name.endsWith('.py')) pyFiles.push(`${rel}/${n.name}`);
    }
  };
  walk(pyDir, 'usr/lib/python3.11');
  const py200 = pyFiles.filter((_, i) => i % Math.max(1, Math.floor(pyFiles.length / 200)) === 0).slice(0, 200);

  const SCENARIOS: Scenario[] = pick([
    { name: 'os-release', image: 'debian', what: 'mount, then the first read of /etc/os-release', cmd: (r) => ['cat', [join(r, 'etc/os-release')]] },
    { name: 'py200', image: 'python', what: 'read 200 .py files spread over /usr/lib/python3.11', cmd: (r) => ['cat', py200.map((p) => join(r, p))] },
    { name: 'python3', image: 'python', what: "chroot <root> python3 -c 'import json,email,http.client; print(1)'", cmd: (r) => ['chroot', [r, '/usr/bin/python3', '-c', 'import json,email,http.client; print(1)']] },
    { name: 'find-stat', image: 'python', what: 'find + stat of every entry', cmd: (r) => ['find', [r, '-xdev', '-printf', '%s %m %U %G %T@ %y\\n']] },
    { name: 'large-seq', image: 'large', what: 'sequential read of a 192 MiB file', cmd: (r) => ['cat', [join(r, 'data/large.bin')]] },
  ] satisfies Scenario[], process.env['BENCH_SCENARIOS']);

  const images: Record<string, { files: number; tarBytes: number; gzipBytes: number; gzipDigest: string; configDigest: string; esgzBytes: number }> = {};
  for (const name of [...new Set(SCENARIOS.map((s) => s.image))]) {
    const root = roots[name];
    // Plain gzip, as `docker build` pushes it: one tar.gz layer.
    const layout = fresh(`${name}-gzip`);
    const tgz = `${layout}.tgz`;
    await sh('bash', ['-o', 'pipefail', '-c', `tar -C ${root} --sort=name --exclude=./.stargzfs-bench-complete -cf - . | gzip -6 > ${tgz}`]);
    const blob = readFileSync(tgz);
    const tarBytes = Number((await sh('bash', ['-c', `gzip -dc ${tgz} | wc -c`])).trim());
    const { writeOciImage } = await import('../src/http/oci-layout-writer.js');
    const diffId = `sha256:${(await sh('bash', ['-c', `gzip -dc ${tgz} | sha256sum`])).split(' ')[0]}`;
    const m = await writeOciImage(layout, { layers: [{ blob, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId }] });
    const manifest = JSON.parse(readFileSync(join(layout, 'blobs', 'sha256', m.digest.slice(7)), 'utf8')) as { config: { digest: string }; layers: Array<{ digest: string }> };
    const { pushLayoutImage } = await import('../src/http/push.js');
    const { withClient } = await import('../test/helpers/client.js');
    await withClient((c) => pushLayoutImage(c, { endpoint: reg.host, registry: reg.host, repository: `bench/${name}` }, layout, m.digest, 'gzip'));
    // eStargz, converted by stargzfs from the gzip image.
    const conv = JSON.parse(await cli(['--root', fresh('root'), 'convert', '--json', `${reg.host}/bench/${name}:gzip`, `${reg.host}/bench/${name}:esgz`], false)) as {
      images: Array<{ layers: Array<{ desc: { size: number }; entries: number }> }>;
    };
    images[name] = {
      files: conv.images[0]?.layers[0]?.entries ?? 0, tarBytes, gzipBytes: blob.length, gzipDigest: manifest.layers[0]?.digest as string,
      configDigest: manifest.config.digest, esgzBytes: conv.images[0]?.layers[0]?.desc.size ?? 0,
    };
    rmSync(tgz);
    log(`image ${name}: ${images[name]?.files} entries, tar ${tarBytes} B, gzip ${blob.length} B, eStargz ${images[name]?.esgzBytes} B`);
  }

  // A prioritized image per workload: the workload run once on a mount (no network
  // shaping), its profile exported, the image converted with it.
  for (const s of SCENARIOS) {
    const ref = `${reg.host}/bench/${s.image}:esgz`;
    const root = fresh('root');
    const mnt = fresh('mnt');
    mkdirSync(mnt);
    await cli(['--root', root, 'mount', '--daemon', '--no-background-fetch', ref, mnt]);
    try {
      const [cmd, args] = s.cmd(mnt);
      await sh(cmd, args, { quiet: true });
    } finally {
      await cli(['unmount', mnt]);
    }
    const profile = fresh('profile');
    await cli(['--root', root, 'profile', 'export', ref, '--out', profile]);
    await cli(['--root', root, 'convert', '--prioritize', profile, ref, `${reg.host}/bench/${s.image}:prio-${s.name}`]);
    log(`prioritized ${s.image} for ${s.name}: ${readFileSync(profile, 'utf8').split('\n').filter(Boolean).length} files first`);
    rmSync(root, { recursive: true, force: true });
  }

  // ---------------------------------------------------------------- runs
  const rows: ReportRow[] = [];
  // The registry speaks plain HTTP, and the mount is told so, as the pull's curl is
  // (without it a loopback registry costs a TLS attempt first, as docker does).
  const LAZY = ['--no-prefetch', '--no-learned-prefetch', '--no-background-fetch'];
  for (const profile of PROFILES) {
    const proxy = await startShapingProxy(reg.host, profile);
    for (const s of SCENARIOS) {
      const img = images[s.image] as (typeof images)[string];
      const variants: Array<{ name: string; run: () => Promise<{ seconds: number; ready: number }> }> = [];
      /** Cold: page cache dropped, proxy counters reset; `prepare` makes the tree at `root`, then the workload runs there. */
      const timed = async (prepare: () => Promise<unknown>, root: string): Promise<{ seconds: number; ready: number }> => {
        await dropCaches();
        proxy.reset();
        const t0 = performance.now();
        await prepare();
        const ready = performance.now();
        const [cmd, args] = s.cmd(root);
        await sh(cmd, args, { quiet: true });
        return { seconds: (performance.now() - t0) / 1000, ready: (ready - t0) / 1000 };
      };
      const lazy = (name: string, tag: string, flags: string[], learnFirst: boolean, service = false): void => {
        variants.push({
          name: service ? `${name} + service` : name,
          run: async () => {
            const root = fresh('root');
            const mnt = fresh('mnt');
            mkdirSync(mnt);
            const ref = `${proxy.host}/bench/${s.image}:${tag}`;
            if (learnFirst) {
              // An earlier run on this machine recorded the profile; its chunks are gone.
              // Under the same reference, as a user runs an image again: meta.db then
              // knows which image the reference named, and the first learned request
              // goes out with the manifest's (layer/early-fetch.ts).
              await cli(['--root', root, '--plain-http', 'mount', '--daemon', '--no-background-fetch', ref, mnt]);
              try {
                const [cmd, args] = s.cmd(mnt);
                await sh(cmd, args, { quiet: true });
              } finally {
                await cli(['unmount', mnt]);
              }
              await cli(['--root', root, 'cache', 'clear']);
            }
            // The service is up before the clock starts, as on a node that runs it; the mount is handed to it.
            const stopService = service ? await startServe(root) : undefined;
            try {
              return await timed(() => cli(['--root', root, '--plain-http', 'mount', '--daemon', ...flags, ref, mnt]), mnt);
            } finally {
              await cli(['unmount', mnt]);
              await stopService?.();
              rmSync(root, { recursive: true, force: true });
              rmSync(mnt, { recursive: true, force: true });
            }
          },
        });
      };
      for (const service of [false, true]) {
        lazy('lazy', 'esgz', LAZY, false, service);
        lazy('landmark', `prio-${s.name}`, ['--no-learned-prefetch', '--no-background-fetch'], false, service);
        lazy('learned', 'esgz', ['--no-prefetch', '--no-background-fetch'], true, service);
      }
      variants.push({
        name: 'full pull',
        run: async () => {
          const dir = fresh('pull');
          mkdirSync(dir);
          const base = `http://${proxy.host}/v2/bench/${s.image}`;
          try {
            return await timed(() => sh('bash', ['-o', 'pipefail', '-c', [
              `curl -sf -H 'Accept: application/vnd.oci.image.manifest.v1+json' ${base}/manifests/gzip -o /dev/null`,
              `curl -sf ${base}/blobs/${img.configDigest} -o /dev/null`,
              `curl -sf ${base}/blobs/${img.gzipDigest} | tar -xzf - -C ${dir}`,
            ].join(' && ')]), dir);
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
        },
      });
      for (const v of variants) {
        const runs: Array<{ seconds: number; ready: number; requests: number; bytes: number }> = [];
        for (let i = 0; i < RUNS; i++) {
          if (stopping !== undefined) throw new Error(`stopped by ${stopping}`);
          const r = await v.run();
          runs.push({ ...r, requests: proxy.stats.requests, bytes: proxy.stats.blobBytes });
        }
        const med = <K extends keyof (typeof runs)[number]>(k: K): number => [...runs.map((r) => r[k])].sort((a, b) => a - b)[Math.floor(runs.length / 2)] as number;
        const row: ReportRow = {
          profile: profile.name, scenario: s.name, image: s.image, variant: v.name,
          seconds: +med('seconds').toFixed(3), min: +Math.min(...runs.map((r) => r.seconds)).toFixed(3), max: +Math.max(...runs.map((r) => r.seconds)).toFixed(3),
          readySeconds: +med('ready').toFixed(3), requests: med('requests'), bytes: med('bytes'), runs: runs.map((r) => +r.seconds.toFixed(3)),
        };
        rows.push(row);
        log(`${profile.name} ${s.name} ${v.name}: ${row.seconds} s (${row.min}–${row.max}), ready ${row.readySeconds} s, ${row.requests} requests, ${row.bytes} B`);
      }
    }
    await proxy.stop();
  }
  const out = {
    bench: 'hello',
    date: new Date().toISOString(),
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    runs: RUNS,
    profiles: PROFILES,
    scenarios: SCENARIOS.map((s) => ({ name: s.name, image: s.image, what: s.what })),
    images,
    rows,
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
  if (process.env['BENCH_REPORT'] !== undefined) writeReport(process.env['BENCH_REPORT'], out);
} finally {
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
