// convert throughput: MB/s of uncompressed tar in, for a large generated layer (a few
// big, partly compressible files) and a many-small-files layer, with `tar | gzip` of the
// same input in the same run as the baseline (the cost of a plain gzip layer, which is
// what a converter replaces). Ours is measured twice: from the directory (walk, tar,
// spool, write eStargz: the same work as `tar | gzip` and more) and from an OCI layout
// holding the tar (spool and write). Peak RSS shows the layer is streamed. JSON on
// stdout; `make bench` saves it as bench/results/convert.json.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { rng, bytes } from '../test/helpers/random.js';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 3);
const CLI = resolve('dist/bundle/stargzfs.mjs');
const work = mkdtempSync(join(tmpdir(), 'stargzfs-bench-convert-'));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** Text-like data: random words from a small vocabulary with random bytes mixed in (gzip -6 gets it to about a third). */
function textish(r: () => number, size: number): Buffer {
  const words = Array.from({ length: 4096 }, () => bytes(r, 3 + Math.floor(r() * 9)).toString('base64').replace(/[+/=]/g, 'x'));
  const parts: Buffer[] = [];
  let n = 0;
  while (n < size) {
    const line = Buffer.from(`${Array.from({ length: 12 }, () => words[Math.floor(r() * words.length)]).join(' ')}\n`);
    parts.push(line);
    n += line.length;
    if (r() < 0.02) {
      const noise = bytes(r, 256);
      parts.push(noise);
      n += noise.length;
    }
  }
  return Buffer.concat(parts).subarray(0, size);
}

function makeTree(name: string, files: Array<{ path: string; size: number }>): string {
  const r = rng(name.length * 7919);
  const dir = join(work, name);
  const block = textish(r, 8 << 20);
  for (const f of files) {
    mkdirSync(join(dir, f.path, '..'), { recursive: true });
    // Files are cut from one generated block at random offsets: varied, and cheap to make.
    const out: Buffer[] = [];
    for (let left = f.size; left > 0; ) {
      const n = Math.min(left, block.length);
      const off = Math.floor(r() * (block.length - n + 1));
      out.push(block.subarray(off, off + n));
      left -= n;
    }
    writeFileSync(join(dir, f.path), Buffer.concat(out));
  }
  return dir;
}

/** An OCI layout whose one layer is the uncompressed tar of `dir`. */
function layoutOf(dir: string): { layout: string; tarBytes: number } {
  const layout = `${dir}.oci`;
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  const tar = `${dir}.tar`;
  execFileSync('tar', ['-cf', tar, '--sort=name', '-C', dir, '.']);
  const digest = createHash('sha256').update(readFileSync(tar)).digest('hex');
  const tarBytes = statSync(tar).size;
  renameSync(tar, join(layout, 'blobs', 'sha256', digest));
  const put = (b: Buffer): string => {
    const d = createHash('sha256').update(b).digest('hex');
    writeFileSync(join(layout, 'blobs', 'sha256', d), b);
    return `sha256:${d}`;
  };
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [`sha256:${digest}`] } }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: put(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: `sha256:${digest}`, size: tarBytes }],
  }));
  const m = put(manifest);
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: m, size: manifest.length }] }));
  writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
  return { layout, tarBytes };
}

/** Wall seconds and peak RSS (KiB, from /usr/bin/time) of a shell command. */
function timed(cmd: string): Promise<{ seconds: number; maxRssKib: number }> {
  return new Promise((res, rej) => {
    const t0 = performance.now();
    const p = spawn('/usr/bin/time', ['-f', '%M', 'bash', '-o', 'pipefail', '-c', cmd], { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    p.stderr.on('data', (d: Buffer) => (err += d.toString()));
    p.on('close', (code) => {
      if (code !== 0) return rej(new Error(`${cmd}: exit ${code}: ${err}`));
      res({ seconds: (performance.now() - t0) / 1000, maxRssKib: Number(err.trim().split('\n').pop()) });
    });
  });
}

async function measure(name: string, dir: string): Promise<unknown> {
  const { layout, tarBytes } = layoutOf(dir);
  const mb = tarBytes / 1e6;
  const variants: Record<string, string> = {
    'tar | gzip -6 (baseline)': `tar -cf - --sort=name -C ${dir} . | gzip -6 > /dev/null`,
    'stargzfs convert dir:': `node ${CLI} --root ${work}/state convert dir:${dir} oci:${work}/out:${name}-dir > /dev/null`,
    'stargzfs convert oci: (tar layer)': `node ${CLI} --root ${work}/state convert oci:${layout} oci:${work}/out:${name}-oci > /dev/null`,
    'stargzfs convert dir: --compression-level 1': `node ${CLI} --root ${work}/state convert --compression-level 1 dir:${dir} oci:${work}/out:${name}-l1 > /dev/null`,
    'stargzfs convert dir: --min-chunk-size 64K': `node ${CLI} --root ${work}/state convert --min-chunk-size 64K dir:${dir} oci:${work}/out:${name}-mc > /dev/null`,
    'stargzfs convert dir: --format zstdchunked': `node ${CLI} --root ${work}/state convert --format zstdchunked dir:${dir} oci:${work}/out:${name}-zstd > /dev/null`,
  };
  const results: Record<string, unknown> = {};
  let baseline = 0;
  for (const [label, cmd] of Object.entries(variants)) {
    const runs = [];
    for (let i = 0; i < RUNS; i++) {
      rmSync(join(work, 'out'), { recursive: true, force: true });
      runs.push(await timed(cmd));
    }
    const seconds = median(runs.map((r) => r.seconds));
    if (label.includes('baseline')) baseline = seconds;
    results[label] = {
      seconds: Number(seconds.toFixed(3)),
      mbPerSecond: Number((mb / seconds).toFixed(1)),
      vsBaseline: baseline > 0 ? Number((baseline / seconds).toFixed(2)) : null,
      maxRssMiB: Math.round(Math.max(...runs.map((r) => r.maxRssKib)) / 1024),
      runs: runs.map((r) => Number(r.seconds.toFixed(3))),
    };
    process.stderr.write(`${name}: ${label}: ${seconds.toFixed(2)} s (${(mb / seconds).toFixed(1)} MB/s)\n`);
  }
  return { layer: name, tarMB: Number(mb.toFixed(1)), variants: results };
}

try {
  const large = makeTree('large', Array.from({ length: 8 }, (_, i) => ({ path: `data/blob-${i}.bin`, size: 32 << 20 })));
  const r = rng(5);
  const small = makeTree('small', Array.from({ length: 30_000 }, (_, i) => ({ path: `pkg-${i % 300}/mod-${i}.py`, size: 512 + Math.floor(r() * 7 * 1024) })));
  const out = {
    bench: 'convert',
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    runs: RUNS,
    note: 'MB/s of uncompressed tar; vsBaseline > 1 is faster than tar | gzip -6 of the same files',
    layers: [await measure('large', large), await measure('small', small)],
  };
  process.stdout.write(`${JSON.stringify(out, null, 2)}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
