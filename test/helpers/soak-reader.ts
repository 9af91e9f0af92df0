// One process of the soak test's readers (the job, a JSON file, is its argument): `concurrency` readers that, until `deadline`, read
// whole random files of a mounted image and check each against its sha256. Prints one
// JSON line of counts: right, EIO, other errors by code, wrong bytes (never allowed),
// short reads, and the slowest read. Run with UV_THREADPOOL_SIZE >= CONCURRENCY so the
// readers really wait at once.
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';

interface Job {
  mountpoint: string;
  files: Array<{ path: string; size: number; sha256: string }>;
  deadline: number;
  concurrency: number;
}

// node --test runs every file under dist/test/: without a job, there is nothing to do.
const jobFile = process.argv[2];
const job = (jobFile === undefined ? { mountpoint: '', files: [], deadline: 0, concurrency: 0 } : JSON.parse(readFileSync(jobFile, 'utf8'))) as Job;
const counts = { ok: 0, eio: 0, wrong: 0, short: 0, errors: {} as Record<string, number>, maxMs: 0, reads: 0 };

async function readOne(f: Job['files'][number]): Promise<void> {
  const t0 = performance.now();
  let fh;
  try {
    fh = await open(join(job.mountpoint, f.path), 'r');
    const buf = Buffer.alloc(f.size + 1);
    let got = 0;
    for (;;) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== f.size) counts.short++;
    else if (createHash('sha256').update(buf.subarray(0, got)).digest('hex') !== f.sha256) counts.wrong++;
    else counts.ok++;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unknown';
    if (code === 'EIO') counts.eio++;
    else counts.errors[code] = (counts.errors[code] ?? 0) + 1;
  } finally {
    await fh?.close().catch(() => undefined);
    counts.reads++;
    counts.maxMs = Math.max(counts.maxMs, performance.now() - t0);
  }
}

async function reader(seed: number): Promise<void> {
  let x = seed;
  while (Date.now() < job.deadline) {
    x = (x * 1103515245 + 12345) >>> 0;
    await readOne(job.files[x % job.files.length] as Job['files'][number]);
  }
}

await Promise.all(Array.from({ length: job.concurrency }, (_, i) => reader(i * 7919 + process.pid)));
process.stdout.write(`${JSON.stringify(counts)}\n`);
