// TOC indexing of a generated 200,000-entry eStargz layer: wall time, entries per
// second and peak RSS of a process that does only the indexing, next to a plain
// JSON.parse of the same TOC (the baseline) measured the same way in the same run.
// Usage: node dist/bench/toc-index.bench.js [entries]   (JSON on stdout)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildEstargzImage } from '../src/layer/build-image.js';
import { OciLayoutSource } from '../src/http/oci-layout.js';
import { InodeTable, openMetaDb } from '../src/toc/inode-db.js';
import { LayerIndexer } from '../src/toc/layer-index.js';
import { readToc } from '../src/toc/toc-reader.js';
import { createLogger } from '../src/log.js';
import { emptyHeader, type TarEntry } from '../src/toc/tar.js';

const self = fileURLToPath(import.meta.url);

async function child(mode: string, dir: string): Promise<void> {
  const source = await OciLayoutSource.open(`oci:${join(dir, 'img')}`);
  const image = await source.resolve('linux/amd64');
  const desc = image.layers[0];
  if (desc === undefined) throw new Error('no layer');
  const blob = source.blob(desc);
  const cfg = { allowUnverified: false, maxTocBytes: 150 << 20, tailBytes: 256 << 10, maxPlainBytes: 2 ** 31 };
  const t0 = performance.now();
  let entries = 0;
  if (mode === 'index') {
    const dbFile = join(dir, 'meta.db');
    const db = openMetaDb(dbFile);
    const r = await new LayerIndexer(db, dbFile, new InodeTable(db), cfg, createLogger('silent')).open(desc, blob);
    entries = r.row.entry_count;
    db.close();
  } else {
    const raw = await readToc(blob, cfg, {});
    entries = (JSON.parse(raw.json.toString('utf8')) as { entries: unknown[] }).entries.length;
  }
  const seconds = (performance.now() - t0) / 1000;
  await source.close();
  // VmHWM is this process's own peak; getrusage's maxrss carries the parent's over fork+exec.
  const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  process.stdout.write(JSON.stringify({ seconds, entries, peakRssMiB: Number(hwm) / 1024 }));
}

function generate(n: number): TarEntry[] {
  const out: TarEntry[] = [];
  const mtime = 1700000000;
  const e = (name: string, type: TarEntry['header']['type'], body = Buffer.alloc(0), extra: Partial<TarEntry['header']> = {}): TarEntry => ({
    header: { ...emptyHeader(name, type), mtime, size: body.length, ...extra },
    body,
  });
  let dir = 'usr/lib/pkg0';
  out.push(e('usr/', 'dir'), e('usr/lib/', 'dir'), e(`${dir}/`, 'dir'));
  for (let i = 0; out.length < n; i++) {
    if (i % 10 === 0) {
      dir = `usr/lib/pkg${i / 10}/sub${i % 7}`;
      out.push(e(`${dir}/`, 'dir', undefined, { mode: 0o755 }));
    } else if (i % 17 === 0) out.push(e(`${dir}/link${i}`, 'symlink', undefined, { linkName: `file${i - 1}.py` }));
    else if (i % 23 === 0 && i % 10 !== 1) out.push(e(`${dir}/hard${i}`, 'hardlink', undefined, { linkName: `${dir}/file${i - 1}.py` }));
    else out.push(e(`${dir}/file${i}.py`, 'reg', Buffer.from(`# module ${i}\n`.repeat(1 + (i % 5)))));
  }
  return out;
}

const [, , a, b] = process.argv;
if (a === '--child') {
  await child(process.argv[3] as string, process.argv[4] as string);
} else if (a === '--generate') {
  // Keeps a generated layer for profiling: --generate DIR [entries]
  await buildEstargzImage(join(b as string, 'img'), [generate(Number(process.argv[4] ?? 200_000))], { compressionLevel: 1 });
} else {
  const n = Number(a ?? 200_000);
  const dir = mkdtempSync(join(tmpdir(), 'stargzfs-bench-'));
  try {
    const g0 = performance.now();
    const built = await buildEstargzImage(join(dir, 'img'), [generate(n)], { compressionLevel: 1 });
    const genSeconds = (performance.now() - g0) / 1000;
    const run = (mode: string): { seconds: number; entries: number; peakRssMiB: number } =>
      JSON.parse(execFileSync(process.execPath, [self, '--child', mode, dir], { encoding: 'utf8', maxBuffer: 1 << 20 }));
    const baseline = run('json-parse');
    const index = run('index');
    const warm = run('index'); // a second process on the same meta.db: reuse, no TOC read
    process.stdout.write(
      `${JSON.stringify(
        {
          bench: 'toc-index',
          date: new Date().toISOString(),
          machine: { cpus: cpus().length, cpuModel: cpus()[0]?.model, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
          layer: { entries: index.entries, blobBytes: built.layers[0]?.blobSize, generateSeconds: +genSeconds.toFixed(2) },
          index: {
            seconds: +index.seconds.toFixed(3),
            entriesPerSecond: Math.round(index.entries / index.seconds),
            peakRssMiB: +index.peakRssMiB.toFixed(1),
          },
          reuse: { seconds: +warm.seconds.toFixed(3), peakRssMiB: +warm.peakRssMiB.toFixed(1) },
          baselineJsonParse: { seconds: +baseline.seconds.toFixed(3), peakRssMiB: +baseline.peakRssMiB.toFixed(1) },
          ratios: {
            indexTimeOverJsonParse: +(index.seconds / baseline.seconds).toFixed(2),
            indexRssOverJsonParse: +(index.peakRssMiB / baseline.peakRssMiB).toFixed(2),
          },
          targets: { seconds: 2, peakRssMiB: 200, met: index.seconds < 2 && index.peakRssMiB < 200 },
        },
        null,
        2,
      )}\n`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
