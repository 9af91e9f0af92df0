// What checking a cached chunk costs: reading a 4 MiB chunk file with and without
// hashing it. The store verifies size always and sha256 on first use per process; this
// is the number behind that choice. JSON on stdout.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';

const dir = mkdtempSync(join(tmpdir(), 'stargzfs-bench-'));
try {
  const size = 4 << 20;
  const file = join(dir, 'chunk');
  writeFileSync(file, randomBytes(size));
  const median = (fn: () => void): number => {
    const xs: number[] = [];
    for (let i = 0; i < 41; i++) {
      const t0 = performance.now();
      fn();
      xs.push(performance.now() - t0);
    }
    return xs.sort((a, b) => a - b)[20] as number;
  };
  const read = median(() => readFileSync(file));
  const readHash = median(() => createHash('sha256').update(readFileSync(file)).digest());
  process.stdout.write(`${JSON.stringify({
    bench: 'cache-verify', date: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, chunkBytes: size,
    msPerChunk: { read: +read.toFixed(3), readAndSha256: +readHash.toFixed(3) },
    verifyOverRead: +(readHash / read).toFixed(2),
  }, null, 2)}\n`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
