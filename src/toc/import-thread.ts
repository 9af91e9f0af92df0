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

/** The import thread a long-running process keeps (see keepImportThread); imports are one at a time (layer-index.ts). */
let kept: Worker | undefined;
let keep = false;

function keptWorker(url: URL): Worker {
  if (kept !== undefined) return kept;
  const w = new Worker(url);
  // Not a reason for the process to stay up while it waits for work.
  w.unref();
  w.once('exit', () => {
    if (kept === w) kept = undefined;
  });
  kept = w;
  return w;
}

/**
 * A long-running process (the service) keeps one import thread for all its imports: it
 * is started ahead and its code stays compiled, where a new thread per import runs a
 * small layer's import on cold code (a 6,700-entry TOC over 20 ms / 200 Mbit: 270-300 ms
 * a new thread, 150-180 ms the kept one).
 * The thread's heap stays with the process, which a one-shot command does not want.
 */
export function keepImportThread(): void {
  keep = true;
  const url = workerUrl();
  if (url === undefined) return;
  // Its code compiled on a synthetic TOC first: the kept thread's first import of the
  // python layer took 150-220 ms cold, 65-130 ms warm. Jobs queue behind it.
  keptWorker(url).postMessage({ warm: WARM_ENTRIES });
}

/** Entries of the warm-up TOC: enough for V8 to optimize the parser and the importer (about 60 ms, once). */
const WARM_ENTRIES = 3000;

function answer(worker: Worker, onLandmark: ((prefetchSize: number) => void) | undefined): Promise<LayerRow> {
  return new Promise<LayerRow>((resolve, reject) => {
    const onMessage = (m: { row?: LayerRow; error?: WireError; landmark?: number; warmed?: number }): void => {
      // The warm-up's answer (the thread was busy with it when this job came): not ours.
      if (m.warmed !== undefined) return;
      if (m.landmark !== undefined) {
        onLandmark?.(m.landmark);
        return;
      }
      done();
      if (m.error !== undefined) reject(fromWire(m.error));
      else resolve(m.row as LayerRow);
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    const onExit = (code: number): void => {
      done();
      reject(new Error(`the TOC import thread exited with code ${code} before it answered`));
    };
    const done = (): void => {
      worker.off('message', onMessage);
      worker.off('error', onError);
      worker.off('exit', onExit);
    };
    worker.on('message', onMessage);
    worker.on('error', onError);
    worker.on('exit', onExit);
  });
}

/** `onLandmark` hears the prefetch region's size once the import has parsed the landmark entry (before it ends). */
export async function importTocInWorker(
  dbFile: string, input: ImportInput, region: TocRegion, maxTocBytes: number, ctx: ErrorContext, expectedDigest: string | undefined,
  onLandmark?: (prefetchSize: number) => void,
): Promise<LayerRow> {
  const url = workerUrl();
  if (url === undefined) return importTocStream(dbFile, input, tocJsonChunks(region, maxTocBytes, ctx), expectedDigest, onLandmark);
  const job: ImportJob = { dbFile, input, region, maxTocBytes, ctx, expectedDigest };
  if (keep) {
    const worker = keptWorker(url);
    worker.ref();
    try {
      const row = answer(worker, onLandmark);
      worker.postMessage(job);
      return await row;
    } finally {
      worker.unref();
    }
  }
  const worker = new Worker(url, { workerData: job });
  try {
    return await answer(worker, onLandmark);
  } finally {
    // Gone before the row is used: its memory is then free to give back (cli trims the heap).
    await worker.terminate();
  }
}
