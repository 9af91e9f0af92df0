// Shared by the fuzz targets: how many inputs a run tries (FUZZ_RUNS; `make fuzz` sets a
// million), and the property every parser holds to: on any input it returns, or throws
// one of our typed errors, within a second; never a TypeError, RangeError or hang.
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { StargzfsError } from '../../src/errors.js';

export const RUNS = Number(process.env.FUZZ_RUNS ?? 2000);
/** Seeded so a failure can be replayed (fast-check prints the seed and path). */
export const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : undefined;

export function params(runs = RUNS): fc.Parameters<unknown> {
  return { numRuns: runs, ...(SEED !== undefined ? { seed: SEED } : {}) };
}

/** `fn`'s value, or undefined when it refused the input with a typed error; anything else fails. */
export function refusedOrValue<T>(fn: () => T): T | undefined {
  const t0 = performance.now();
  try {
    return fn();
  } catch (err) {
    if (err instanceof StargzfsError) return undefined;
    throw err;
  } finally {
    const ms = performance.now() - t0;
    assert.ok(ms < 1000, `one input took ${ms.toFixed(0)} ms`);
  }
}

/** Bytes like `valid` with a few flipped, inserted, deleted or overwritten with extremes. */
export function mutated(valid: Buffer): fc.Arbitrary<Buffer> {
  return fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 })), { maxLength: 6 }).map((edits) => {
    let b = Buffer.from(valid);
    for (const [at, kind, v] of edits) {
      const i = b.length === 0 ? 0 : at % b.length;
      if (kind === 0 && b.length > 0) b[i] = v;
      else if (kind === 1) b = Buffer.concat([b.subarray(0, i), Buffer.from([v]), b.subarray(i)]);
      else if (kind === 2 && b.length > 0) b = Buffer.concat([b.subarray(0, i), b.subarray(i + 1)]);
      else if (b.length > 0) b.fill(v % 2 === 0 ? 0x39 : 0xff, i, Math.min(b.length, i + 12));
    }
    return b;
  });
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

/** Heap growth across a run stays bounded (a leak would grow with the inputs). */
export function heapMiB(): number {
  return process.memoryUsage().heapUsed / (1 << 20);
}
