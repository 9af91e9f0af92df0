// Shared by the fuzz targets: how many inputs a run tries (FUZZ_RUNS; `make fuzz` sets a
// million), and the property every parser holds to: on any input it returns, or throws
// one of our typed errors, within a second; never a TypeError, RangeError or hang; and
// the heap is no bigger after a run than before it (a leak would grow with the inputs).
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { StargzfsError } from '../../src/errors.js';

export const RUNS = Number(process.env.FUZZ_RUNS ?? 5000);
/** Seeded so a failure can be replayed (fast-check prints the seed and path). */
export const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : (Math.random() * 2 ** 31) | 0;

/** One input may take this long; a parser that loops or backtracks takes longer. */
const SLOW_MS = 1000;
/** The process as a whole stays under this while a run goes on (checked every 1,024 calls). */
const RSS_LIMIT = 1536 << 20;
/** Heap growth from before a run to after it, both after a full collection. */
const HEAP_GROWTH_MIB = 64;

// A full collection before and after a run, so the heap is compared without garbage.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** A target's inputs shared among its `n` properties: FUZZ_RUNS counts per parser, not per property. */
export function share(n: number): number {
  return Math.max(1, Math.ceil(RUNS / n));
}

export function params(runs = RUNS): fc.Parameters<unknown> {
  return { numRuns: runs, seed: SEED };
}

// An input that never returns cannot be timed from this thread: a watchdog thread sees
// the call count stand still, names the run's seed and the call's number (replay with
// that FUZZ_SEED), and kills the process.
const beat = new Int32Array(new SharedArrayBuffer(12)); // [calls this run, in a call, run id]
const watchdog = new Worker(`
  const { workerData: { beat, seed, hangMs } } = require('node:worker_threads');
  let last = -1, since = Date.now();
  setInterval(() => {
    const n = Atomics.load(beat, 0);
    if (n !== last || Atomics.load(beat, 1) === 0) { last = n; since = Date.now(); return; }
    if (Date.now() - since > hangMs) {
      process.stderr.write('fuzz: parser call ' + n + ' of run ' + Atomics.load(beat, 2) + ' (FUZZ_SEED=' + seed + ') has not returned after ' + hangMs + ' ms\\n');
      process.kill(process.pid, 'SIGKILL');
    }
  }, 250);
`, { eval: true, workerData: { beat, seed: SEED, hangMs: 10 * SLOW_MS } });
watchdog.unref();

let calls = 0;
function started(): void {
  Atomics.add(beat, 0, 1);
  Atomics.store(beat, 1, 1);
}
function checked(t0: number): void {
  Atomics.store(beat, 1, 0);
  const ms = performance.now() - t0;
  assert.ok(ms < SLOW_MS, `one input took ${ms.toFixed(0)} ms`);
  if ((++calls & 1023) === 0) {
    const rss = process.memoryUsage.rss();
    assert.ok(rss < RSS_LIMIT, `RSS ${(rss / (1 << 20)).toFixed(0)} MiB while fuzzing`);
  }
}

/** `fn`'s value, or undefined when it refused the input with a typed error; anything else fails. */
export function refusedOrValue<T>(fn: () => T): T | undefined {
  started();
  const t0 = performance.now();
  try {
    return fn();
  } catch (err) {
    if (err instanceof StargzfsError && typeof err.code === 'string' && err.code.startsWith('SGZ_')) return undefined;
    throw err;
  } finally {
    checked(t0);
  }
}

/** refusedOrValue for a parser that answers with a promise. */
export async function refusedOrValueAsync<T>(fn: () => Promise<T>): Promise<T | undefined> {
  started();
  const t0 = performance.now();
  try {
    return await fn();
  } catch (err) {
    if (err instanceof StargzfsError && typeof err.code === 'string' && err.code.startsWith('SGZ_')) return undefined;
    throw err;
  } finally {
    checked(t0);
  }
}

/**
 * Runs `property` for `runs` inputs and reports the count, the time and the heap growth
 * as a test diagnostic (`make fuzz` prints these lines); fails if the heap grew.
 */
export async function fuzz<Ts>(t: TestContext, runs: number, property: fc.IRawProperty<Ts>): Promise<void> {
  Atomics.store(beat, 0, 0);
  Atomics.add(beat, 2, 1);
  gc();
  const heap0 = heapMiB();
  const t0 = performance.now();
  await fc.assert(property, params(runs) as fc.Parameters<Ts>);
  const secs = (performance.now() - t0) / 1000;
  gc();
  const grown = heapMiB() - heap0;
  const peak = process.resourceUsage().maxRSS / 1024;
  t.diagnostic(`fuzz: ${runs} inputs in ${secs.toFixed(1)} s (seed ${SEED}), heap ${grown >= 0 ? '+' : ''}${grown.toFixed(1)} MiB, peak RSS ${peak.toFixed(0)} MiB`);
  assert.ok(grown < HEAP_GROWTH_MIB, `heap grew by ${grown.toFixed(1)} MiB over ${runs} inputs`);
}

const EXTREMES = ['0', '-1', '18446744073709551615', '9007199254740993', '4294967296', '1e308', '99999999999999999999999', '0x10', 'NaN'];

/**
 * Bytes like `valid` with a few edits: a byte set, inserted or deleted, a run overwritten
 * with digits or 0xff, or a decimal number replaced by an extreme one.
 */
export function mutated(valid: Buffer): fc.Arbitrary<Buffer> {
  return fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 4 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }).map((edits) => {
    let b: Buffer = Buffer.from(valid);
    for (const [at, kind, v] of edits) {
      const i = b.length === 0 ? 0 : at % b.length;
      if (kind === 0 && b.length > 0) b[i] = v;
      else if (kind === 1) b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
      else if (kind === 2 && b.length > 0) b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      else if (kind === 3 && b.length > 0) b.fill(v % 2 === 0 ? 0x39 : 0xff, i, Math.min(b.length, i + 12));
      else if (kind === 4) b = withExtremeNumber(b, i, EXTREMES[v % EXTREMES.length] as string);
    }
    return b;
  });
}

/** The first run of decimal digits at or after `from` replaced by `n` (wrapping around). */
function withExtremeNumber(b: Buffer, from: number, n: string): Buffer {
  const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;
  for (let k = 0; k < b.length; k++) {
    const s = (from + k) % b.length;
    if (!isDigit(b[s]) || (s > 0 && isDigit(b[s - 1]))) continue;
    let e = s;
    while (isDigit(b[e])) e++;
    return Buffer.concat([b.subarray(0, s), Buffer.from(n, 'latin1'), b.subarray(e)]);
  }
  return b;
}

/** A buffer cut into pieces at random places (a stream as it arrives). */
export function pieces(b: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => (b.length === 0 ? 0 : c % b.length)))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let from = 0;
  for (const c of at) {
    out.push(b.subarray(from, c));
    from = c;
  }
  out.push(b.subarray(from));
  return out;
}

/** Random bytes, from empty to `max` long. */
export function bytes(max: number): fc.Arbitrary<Buffer> {
  return fc.uint8Array({ maxLength: max }).map((a) => Buffer.from(a));
}

export function heapMiB(): number {
  return process.memoryUsage().heapUsed / (1 << 20);
}
