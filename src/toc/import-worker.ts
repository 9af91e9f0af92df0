// The TOC import on a thread of its own (import-thread.ts starts it): the compressed TOC
// arrives with the job; inflating it, parsing and the SQLite inserts keep the main thread
// free to serve, and the import's garbage (a 200k-entry TOC is 66 MB of JSON and leaves
// some 150 MB of heap behind) goes with the thread. The answer is the layer row or the error.
import { parentPort, workerData } from 'node:worker_threads';
import { toWire, type ErrorContext } from '../errors.js';
import { importTocStream, type ImportInput } from './importer.js';
import { tocJsonChunks, type TocRegion } from './toc-reader.js';
import { warmImport } from './warm-toc.js';

export interface ImportJob {
  readonly dbFile: string;
  readonly input: ImportInput;
  readonly region: TocRegion;
  readonly maxTocBytes: number;
  readonly ctx: ErrorContext;
  readonly expectedDigest: string | undefined;
}

const port = parentPort;
if (port === null) throw new Error('import-worker.js runs as a worker thread only');

function run(job: ImportJob, reply: (m: unknown) => void): void {
  // A Buffer crosses the thread as a plain Uint8Array.
  const comp = Buffer.from(job.region.comp.buffer, job.region.comp.byteOffset, job.region.comp.byteLength);
  const region: TocRegion = { ...job.region, comp };
  // The landmark's offset goes out at once: the head of the blob can be fetched while the import goes on.
  importTocStream(job.dbFile, job.input, tocJsonChunks(region, job.maxTocBytes, job.ctx), job.expectedDigest, (landmark) => reply({ landmark })).then(
    (row) => reply({ row }),
    (err: unknown) => reply({ error: toWire(err) }),
  );
}

// Started with its one job; or kept by a long-running process and handed jobs as messages,
// one at a time, its code compiled by the first (a new thread per import took 270-300 ms
// for a 6,700-entry TOC; the kept one 150-180 ms).
if (workerData !== undefined && workerData !== null) run(workerData as ImportJob, (m) => port.postMessage(m));
else {
  port.on('message', (job: ImportJob | { warm: number }) => {
    // A kept thread compiles the import code on a synthetic TOC before the first real one comes.
    if ('warm' in job) {
      warmImport(job.warm).then((w) => port.postMessage({ warmed: Math.round(w.ms) }), (err: unknown) => port.postMessage({ warmed: -1, error: toWire(err) }));
      return;
    }
    run(job, (m) => port.postMessage(m));
  });
}
