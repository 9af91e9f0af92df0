// Reads under registry faults: an image of a few hundred files (≈100 MB, incompressible)
// in Debian's docker-registry behind the fault proxy. For each fault kind, a cold state
// root and 16 concurrent readers verify every file in 128 KiB reads while the proxy faults
// about a quarter of the blob requests (the TOC is read before the faults start). Per kind:
// reads, reads/s, the longest read and the 99th percentile, errors by code, wrong bytes.
// Then Range ignored on every request: the same readers, the whole-blob GETs and whole
// bodies the registry sent, and the recovery once the fault clears (3000 random reads).
// Defaults throughout (--read-timeout 30, --stall-timeout 5, --retries 4). JSON on stdout.
import { randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { withImage } from '../src/cli/context.js';
import { resolvePath } from '../src/toc/view.js';
import { StargzfsError } from '../src/errors.js';
import type { OpenImage } from '../src/layer/image.js';
import { testConfig } from '../test/helpers/config.js';
import { entries } from '../test/helpers/entries.js';
import { serveImage } from '../test/helpers/served-image.js';
import type { Fault } from '../test/helpers/fault-proxy.js';

const FILES = Number(process.env['BENCH_FILES'] ?? 400);
const READERS = 16;
const PIECE = 128 << 10;
const RATE = Number(process.env['BENCH_FAULT_RATE'] ?? 0.25);
/** Kinds to run (comma-separated names), default all; BENCH_STALL_S sets --stall-timeout. */
const ONLY = process.env['BENCH_KINDS']?.split(',');
const STALL_S = process.env['BENCH_STALL_S'] !== undefined ? Number(process.env['BENCH_STALL_S']) : undefined;
const config = (root: string) => testConfig(root, STALL_S !== undefined ? { stallTimeoutMs: STALL_S * 1000 } : {});
const blobs = /\/blobs\//;

// Sizes 32 KiB–480 KiB, ≈256 KiB on average.
const files = Array.from({ length: FILES }, (_, i) => ({ name: `d${i % 20}/f${i}.bin`, body: randomBytes((32 << 10) + ((i * 7919) % 15) * (32 << 10)) }));
const total = files.reduce((n, f) => n + f.body.length, 0);

interface Outcome {
  reads: number;
  seconds: number;
  readsPerSec: number;
  maxReadMs: number;
  p99ReadMs: number;
  errors: Record<string, number>;
  /** The first message of each error code. */
  messages: Record<string, string>;
  wrongBytes: number;
  proxyFaults: number;
  requests: number;
}

const log = (msg: string): void => void process.stderr.write(`${msg}\n`);

/** 16 readers share the files; each reads its file in PIECE reads and checks every byte. */
async function readAll(image: OpenImage, which: ReadonlyArray<{ name: string; body: Buffer }>): Promise<Omit<Outcome, 'proxyFaults' | 'requests'>> {
  const view = image.merged();
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  const messages: Record<string, string> = {};
  let wrong = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: READERS }, async () => {
    for (let f = which[next++]; f !== undefined; f = which[next++]) {
      const node = resolvePath(view, f.name);
      for (let off = 0; off < f.body.length; off += PIECE) {
        const r0 = performance.now();
        try {
          const got = await image.reader.read(node, f.name, off, PIECE);
          const want = f.body.subarray(off, off + PIECE);
          if (!got.equals(want)) for (let i = 0; i < want.length; i++) if (got[i] !== want[i]) wrong++;
        } catch (err) {
          const code = err instanceof StargzfsError ? err.code : String((err as Error).name);
          errors[code] = (errors[code] ?? 0) + 1;
          messages[code] ??= (err as Error).message;
        }
        lat.push(performance.now() - r0);
      }
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    reads: lat.length,
    seconds: +seconds.toFixed(2),
    readsPerSec: +(lat.length / seconds).toFixed(1),
    maxReadMs: Math.round(lat[lat.length - 1] ?? 0),
    p99ReadMs: Math.round(lat[Math.floor(lat.length * 0.99)] ?? 0),
    errors,
    messages,
    wrongBytes: wrong,
  };
}

const KINDS: Array<[string, Fault]> = [
  // Twice: the first run also warms the registry's disk and this process.
  ['none-warm-up', { kind: 'status', status: 200 }],
  ['none', { kind: 'status', status: 200 }],
  ['reset-mid-body', { kind: 'reset-mid-body' }],
  ['503', { kind: 'status', status: 503 }],
  ['429-retry-after-1', { kind: 'status', status: 429, retryAfter: '1' }],
  ['truncate', { kind: 'truncate' }],
  ['stall', { kind: 'stall', afterBytes: 4096 }],
  ['flip-byte', { kind: 'corrupt' }],
  ['ignore-range', { kind: 'ignore-range' }],
];

log(`building and pushing ${FILES} files, ${(total / 1e6).toFixed(1)} MB`);
const served = await serveImage('bench/faults', [entries(files)], { compressionLevel: 1 });
let run = 0;
const root = (): string => join(served.dir, `root-${++run}`);
try {
  const results: Record<string, unknown> = {};
  for (const [name, fault] of KINDS) {
    if (ONLY !== undefined && !ONLY.includes(name)) continue;
    await withImage(config(root()), served.ref, async ({ image }) => {
      served.proxy.reset();
      if (!name.startsWith('none')) served.proxy.inject(fault, 1e9, blobs, { rangedOnly: true, probability: RATE });
      const o = await readAll(image, files);
      const out: Outcome = { ...o, proxyFaults: served.proxy.stats.faults, requests: served.proxy.stats.requests };
      results[name] = out;
      log(`${name}: ${JSON.stringify(out)}`);
      served.proxy.reset();
    });
  }

  // Range ignored on every request, then recovery on the same image once it clears.
  const shuffled = [...files].sort(() => Math.random() - 0.5);
  const randomReads = (image: OpenImage, n: number): Promise<Omit<Outcome, 'proxyFaults' | 'requests'>> => {
    // n single-piece reads at random files and offsets.
    const picks = Array.from({ length: n }, () => {
      const f = files[Math.floor(Math.random() * files.length)] as { name: string; body: Buffer };
      const off = Math.floor(Math.random() * Math.ceil(f.body.length / PIECE)) * PIECE;
      return { name: f.name, body: f.body.subarray(off, off + PIECE), off };
    });
    return readPieces(image, picks);
  };
  if (ONLY === undefined || ONLY.includes('ignore-range-always')) await withImage(config(root()), served.ref, async ({ image }) => {
    served.proxy.reset();
    served.proxy.inject({ kind: 'ignore-range' }, 1e9, blobs, { rangedOnly: true });
    const during = await readAll(image, shuffled);
    const s = { ...served.proxy.stats, ranges: served.proxy.stats.ranges.length };
    served.proxy.reset();
    const recovery = await randomReads(image, 3000);
    results['ignore-range-always'] = {
      during: { ...during, wholeBlobGets: s.wholeBlobGets, wholeBlobBodies: s.wholeBlobBodies, refusedRangedRequests: s.ranges, blobBytesSent: s.blobBytes, layerBytes: image.layers[0]?.desc.size },
      recovery3000: { ...recovery, requests: served.proxy.stats.requests },
    };
    log(`ignore-range-always: ${JSON.stringify(results['ignore-range-always'])}`);
  });
  // The same 3000 reads cold with no fault, for scale.
  if (ONLY === undefined || ONLY.includes('baseline-cold-3000')) await withImage(config(root()), served.ref, async ({ image }) => {
    served.proxy.reset();
    results['baseline-cold-3000'] = await randomReads(image, 3000);
    log(`baseline-cold-3000: ${JSON.stringify(results['baseline-cold-3000'])}`);
  });

  process.stdout.write(`${JSON.stringify({
    machine: { cpus: cpus().length, model: cpus()[0]?.model, node: process.version },
    image: { files: FILES, bytes: total },
    readers: READERS, readBytes: PIECE, faultRate: RATE,
    settings: { readTimeoutS: 30, stallTimeoutS: STALL_S ?? 5, retries: 4, timeoutS: 30 },
    results,
  }, null, 2)}\n`);
} finally {
  await served.stop();
}

/** Reads of one piece each (name, offset, expected bytes), 16 at a time. */
async function readPieces(image: OpenImage, picks: ReadonlyArray<{ name: string; body: Buffer; off: number }>): Promise<Omit<Outcome, 'proxyFaults' | 'requests'>> {
  const view = image.merged();
  const lat: number[] = [];
  const errors: Record<string, number> = {};
  const messages: Record<string, string> = {};
  let wrong = 0;
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: READERS }, async () => {
    for (let p = picks[next++]; p !== undefined; p = picks[next++]) {
      const r0 = performance.now();
      try {
        const got = await image.reader.read(resolvePath(view, p.name), p.name, p.off, PIECE);
        if (!got.equals(p.body)) wrong++;
      } catch (err) {
        const code = err instanceof StargzfsError ? err.code : String((err as Error).name);
        errors[code] = (errors[code] ?? 0) + 1;
        messages[code] ??= (err as Error).message;
      }
      lat.push(performance.now() - r0);
    }
  }));
  const seconds = (performance.now() - t0) / 1000;
  lat.sort((a, b) => a - b);
  return {
    reads: lat.length, seconds: +seconds.toFixed(2), readsPerSec: +(lat.length / seconds).toFixed(1),
    maxReadMs: Math.round(lat[lat.length - 1] ?? 0), p99ReadMs: Math.round(lat[Math.floor(lat.length * 0.99)] ?? 0), errors, messages, wrongBytes: wrong,
  };
}
