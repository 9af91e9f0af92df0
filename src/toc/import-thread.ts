// Runs a TOC import (importer.ts) on a worker thread (import-worker.ts), from the
// compressed TOC on: nothing of the JSON is inflated or held on this thread. Where the
// worker's module cannot be found (a build without it), the import runs here as before.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { fromWire, type ErrorContext, type WireError } from '../errors.js';
import { importTocStream, type ImportInput } from './importer.js';
import type { LayerRow } from './inode-db.js';
import type { ImportJob } from './import-worker.js';
import { tocJsonChunks, type TocRegion } from './toc-reader.js';

/** dist/src/toc/ (tsc) has the worker beside this module; the bundle has it at dist/bundle/, above its chunks/. */
function workerUrl(): URL | undefined {
  for (const rel of ['./import-worker.js', '../import-worker.mjs', './import-worker.mjs']) {
    const url = new URL(rel, import.meta.url);
    if (existsSync(fileURLToPath(url))) return url;
  }
  return undefined;
}

export async function importTocInWorker(
  dbFile: string, input: ImportInput, region: TocRegion, maxTocBytes: number, ctx: ErrorContext, expectedDigest: string | undefined,
): Promise<LayerRow> {
  const url = workerUrl();
  if (url === undefined) return importTocStream(dbFile, input, tocJsonChunks(region, maxTocBytes, ctx), expectedDigest);
  const job: ImportJob = { dbFile, input, region, maxTocBytes, ctx, expectedDigest };
  const worker = new Worker(url, { workerData: job });
  try {
    return await new Promise<LayerRow>((resolve, reject) => {
      worker.once('message', (m: { row?: LayerRow; error?: WireError }) => (m.error !== undefined ? reject(fromWire(m.error)) : resolve(m.row as LayerRow)));
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`the TOC import thread exited with code ${code} before it answered`)));
    });
  } finally {
    // Gone before the row is used: its memory is then free to give back (cli trims the heap).
    await worker.terminate();
  }
}
