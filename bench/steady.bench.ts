// Steady state against the local disk in the same run, without the reference kit: the
// shapes of ../shared/reference/compare-steady.sh (one large file in 4 MiB chunks; a
// directory of 10,000 files and a tree of 20,000 more), built with our writer, served by
// Debian's docker-registry on loopback, mounted, and the same tree written to the local
// disk. Per measurement: stargzfs, local, and stargzfs / local. Every row but the hot
// one starts with the page cache dropped. The large file's rows come twice: passthrough
// on (the default: once the file is cached whole, the kernel reads the cache's file
// itself) and off (`--no-passthrough`: every read comes to stargzfs). JSON on stdout (`make bench` saves it as
// bench/results/steady.json); with the reference kit set up, `make bench` also runs the
// side-by-side scripts (bench/reference.sh).
//
//   BENCH_FILE_MB=256  BENCH_READS=20000
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildEstargzImage } from '../src/layer/build-image.js';
import { pushLayoutImage } from '../src/http/push.js';
import type { TarEntry } from '../src/toc/tar.js';
import { entries, type Spec } from '../test/helpers/entries.js';
import { withClient } from '../test/helpers/client.js';
import { mountDaemon, type TestMount } from '../test/helpers/mount.js';
import { startRegistry } from '../test/helpers/registry.js';

const FILE_MB = Number(process.env['BENCH_FILE_MB'] ?? 256);
const READS = Number(process.env['BENCH_READS'] ?? 20000);

const drop = (): void => {
  execFileSync('sync');
  writeFileSync('/proc/sys/vm/drop_caches', '3');
};
const seconds = (fn: () => void): number => {
  const t0 = performance.now();
  fn();
  return (performance.now() - t0) / 1000;
};
const dd = (file: string): number => seconds(() => execFileSync('dd', [`if=${file}`, 'of=/dev/null', 'bs=1M'], { stdio: 'ignore' }));

/** Random 4 KiB preads by `readers` threads (Python, which lets go of its lock in pread): ops/s, p50 and p99 µs. */
function preads(file: string, readers: number): { ops: number; p50: number; p99: number } {
  const script = `
import os, random, sys, threading, time
path, readers, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
size = os.path.getsize(path); lat = []; lock = threading.Lock()
def run(seed):
    r = random.Random(seed); fd = os.open(path, os.O_RDONLY); mine = []
    for _ in range(n // readers):
        off = r.randrange(0, size - 4096) & ~4095; t = time.perf_counter(); os.pread(fd, 4096, off); mine.append(time.perf_counter() - t)
    os.close(fd)
    with lock: lat.extend(mine)
t0 = time.perf_counter(); ts = [threading.Thread(target=run, args=(i,)) for i in range(readers)]
[t.start() for t in ts]; [t.join() for t in ts]; el = time.perf_counter() - t0
lat.sort(); print(len(lat) / el, lat[len(lat) // 2] * 1e6, lat[int(len(lat) * 0.99)] * 1e6)`;
  const out = execFileSync('python3', ['-c', script, file, String(readers), String(READS)], { encoding: 'utf8' }).trim().split(' ').map(Number);
  return { ops: out[0] as number, p50: out[1] as number, p99: out[2] as number };
}

const work = mkdtempSync(join(tmpdir(), 'stargzfs-steady-'));
const reg = await startRegistry();
const rows: Array<{ name: string; unit: string; stargzfs: number; local: number | null }> = [];
const row = (name: string, unit: string, stargzfs: number, local: number | null): void => {
  rows.push({ name, unit, stargzfs: +stargzfs.toFixed(3), local: local === null ? null : +local.toFixed(3) });
  process.stderr.write(`${name}: stargzfs ${stargzfs.toFixed(3)} local ${local?.toFixed(3) ?? '-'} ${unit}\n`);
};
let m: TestMount | undefined;
try {
  // The trees: the large file, and the many small ones; the same on the local disk.
  const big = randomBytes(FILE_MB << 20);
  const specs: Spec[] = [{ name: 'big.bin', body: big }, { name: 'small/', type: 'dir' }];
  for (let i = 0; i < 10_000; i++) specs.push({ name: `small/f${String(i).padStart(5, '0')}.txt`, body: `file ${i}\n` });
  for (let d = 0; d < 200; d++) {
    specs.push({ name: `tree/d${d}/`, type: 'dir' });
    for (let i = 0; i < 100; i++) specs.push({ name: `tree/d${d}/f${i}`, body: `${d}/${i}\n` });
  }
  const layer: TarEntry[] = entries(specs);
  const local = join(work, 'local');
  for (const s of specs) {
    const p = join(local, s.name);
    if (s.type === 'dir') mkdirSync(p, { recursive: true });
    else {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, s.body ?? '');
    }
  }
  const built = await buildEstargzImage(join(work, 'img'), [layer], { chunkSize: 4 << 20 });
  await withClient((c) => pushLayoutImage(c, { endpoint: reg.host, registry: reg.host, repository: 'bench/steady' }, join(work, 'img'), built.manifest.digest, 'v1'));
  const ref = `${reg.host}/bench/steady:v1`;

  // The large file's rows twice: with passthrough (the kernel reads the cache's file
  // itself once the file is cached whole) and without (every read comes to stargzfs).
  for (const passthrough of [true, false]) {
    const tag = passthrough ? 'passthrough on' : 'passthrough off';
    const args = ['--root', join(work, `root-${tag.replace(' ', '-')}`), '--no-prefetch', '--no-background-fetch', ...(passthrough ? [] : ['--no-passthrough']), ref];
    drop();
    const t0 = performance.now();
    m = await mountDaemon(args, join(work, 'mnt'));
    if (passthrough) row('mount with a fresh root (manifest, TOC fetch and import)', 's', (performance.now() - t0) / 1000, null);
    const file = join(m.mountpoint, 'big.bin');
    const size = big.length / 1e6;
    drop();
    row(`[${tag}] dd cold (from the registry)`, 'MB/s', size / dd(file), null);
    // Straight after the cold read, as compare-steady.sh does: the file is written whole as it is read (passthrough).
    drop();
    row(`[${tag}] dd warm right after (page cache dropped)`, 'MB/s', size / dd(file), size / (drop(), dd(join(local, 'big.bin'))));
    // Chunk files are written behind the reads: the same once they are all on disk.
    await new Promise((r) => setTimeout(r, 2500));
    drop();
    row(`[${tag}] dd warm (page cache dropped)`, 'MB/s', size / dd(file), size / (drop(), dd(join(local, 'big.bin'))));
    // Both in the page cache (the local warm read above dropped the caches after ours was read).
    dd(file);
    dd(join(local, 'big.bin'));
    row(`[${tag}] dd hot (page cache)`, 'MB/s', size / dd(file), size / dd(join(local, 'big.bin')));
    for (const readers of [1, 8]) {
      drop();
      const ours = preads(file, readers);
      drop();
      const theirs = preads(join(local, 'big.bin'), readers);
      row(`[${tag}] 4 KiB random pread, ${readers} reader(s): ops/s`, 'ops/s', ours.ops, theirs.ops);
      row(`[${tag}] 4 KiB random pread, ${readers} reader(s): p99`, 'µs', ours.p99, theirs.p99);
    }
    const st = JSON.parse(readFileSync(join(m.mountpoint, '.stargzfs', 'status.json'), 'utf8')) as { passthrough: { opens: number; cachedOpens: number } };
    row(`[${tag}] opens the kernel read itself (passthrough)`, 'opens', st.passthrough.opens, null);
    row(`[${tag}] opens read through stargzfs`, 'opens', st.passthrough.cachedOpens, null);
    if (passthrough) {
      await m.stop();
      m = undefined;
    }
  }
  if (m === undefined) throw new Error('no mount');
  const ls = (dir: string): number => (drop(), seconds(() => execFileSync('ls', ['-l', dir], { stdio: 'ignore', maxBuffer: 1 << 26 })));
  ls(join(m.mountpoint, 'small'));
  row('ls -l of 10,000 files, caches dropped', 's', ls(join(m.mountpoint, 'small')), ls(join(local, 'small')));
  const find = (dir: string): number => (drop(), seconds(() => spawnSync('find', [dir], { stdio: 'ignore' })));
  row('find over 30,000 entries, caches dropped', 's', find(m.mountpoint), find(local));
  const rss = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${m.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  row('server RSS after the walks', 'MiB', rss, null);
  await m.stop();
  m = undefined;
  drop();
  const t1 = performance.now();
  m = await mountDaemon(['--root', join(work, 'root-passthrough-off'), '--no-prefetch', '--no-background-fetch', ref], join(work, 'mnt'));
  row('remount on the same root', 's', (performance.now() - t1) / 1000, null);
  process.stdout.write(`${JSON.stringify({
    bench: 'steady',
    date: new Date().toISOString(),
    fileMiB: FILE_MB,
    reads: READS,
    rows: rows.map((r) => ({ ...r, ratio: r.local === null ? null : +(r.stargzfs / r.local).toFixed(3) })),
  }, null, 2)}\n`);
} finally {
  await m?.stop();
  await reg.stop();
  rmSync(work, { recursive: true, force: true });
}
