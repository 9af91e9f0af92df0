// One process of readers for the crash-survival test (the job, a JSON file, is its
// argument): `concurrency` readers that, until `deadline`, open a random file of a
// mounted image, pread a random range of it, and check every byte against the file's
// true content (`truthDir/<index>`). Prints one JSON line: reads, right, wrong bytes
// (never allowed), short reads, errors by code, the slowest single read (open
// included) with when it started, and every read over 50 ms ([started, ms]). Run with UV_THREADPOOL_SIZE >= concurrency so the
// readers really wait at once.
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

interface Job {
  mountpoint: string;
  /** `truth`: the index of its true bytes in truthDir (default: its own index). */
  files: Array<{ path: string; size: number; truth?: number }>;
  truthDir: string;
  deadline: number;
  concurrency: number;
}

// node --test runs every file under dist/test/: without a job, there is nothing to do.
const jobFile = process.argv[2];
const job = (jobFile === undefined ? { mountpoint: '', files: [], truthDir: '', deadline: 0, concurrency: 0 } : JSON.parse(readFileSync(jobFile, 'utf8'))) as Job;
const truth = job.files.map((f, i) => readFileSync(join(job.truthDir, String(f.truth ?? i))));
const counts = { reads: 0, ok: 0, wrong: 0, short: 0, errors: {} as Record<string, number>, maxMs: 0, maxAt: 0, firstError: '', slow: [] as Array<[number, number]> };
/** Reads slower than this are listed with when they started (epoch ms) and took, for a caller to match against its own events. */
const SLOW_MS = 50;

async function readOne(i: number, off: number, len: number): Promise<void> {
  const f = job.files[i] as Job['files'][number];
  const want = (truth[i] as Buffer).subarray(off, off + len);
  const t0 = performance.now();
  const started = Date.now();
  let fh;
  try {
    fh = await open(join(job.mountpoint, f.path), 'r');
    const buf = Buffer.alloc(len);
    let got = 0;
    while (got < len) {
      const { bytesRead } = await fh.read(buf, got, len - got, off + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== want.length) {
      counts.short++;
      if (counts.firstError === '') counts.firstError = `short: ${f.path} (size ${f.size}) [${off}, +${len}) got ${got} at ${started}`;
    }
    else if (!buf.subarray(0, got).equals(want)) counts.wrong++;
    else counts.ok++;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    counts.errors[code] = (counts.errors[code] ?? 0) + 1;
    if (counts.firstError === '') counts.firstError = `${f.path} [${off}, +${len}): ${String(err)}`;
  } finally {
    await fh?.close().catch(() => undefined);
    counts.reads++;
    const ms = performance.now() - t0;
    if (ms > SLOW_MS && counts.slow.length < 20_000) counts.slow.push([started, Math.round(ms)]);
    if (ms > counts.maxMs) {
      counts.maxMs = ms;
      counts.maxAt = started;
    }
  }
}

async function reader(seed: number): Promise<void> {
  let x = seed >>> 0;
  const next = (): number => (x = (x * 1103515245 + 12345) >>> 0);
  while (Date.now() < job.deadline) {
    const i = next() % job.files.length;
    const size = (job.files[i] as Job['files'][number]).size;
    const off = size === 0 ? 0 : next() % size;
    const len = 1 + (next() % Math.min(256 << 10, Math.max(1, size - off)));
    await readOne(i, off, len);
  }
}

await Promise.all(Array.from({ length: job.concurrency }, (_, i) => reader(i * 7919 + process.pid)));
process.stdout.write(`${JSON.stringify(counts)}\n`);
