// Chunk decoding: our zstd path (zstd-napi's low-level streaming binding, stopping at
// `need`) against zstd-napi's one-shot API and against gzip (node:zlib) on the same
// 4 MiB chunk. This is the measurement behind using zstd-napi (built from source at
// install) rather than an addon of our own over Debian's libzstd: it is the same C
// library either way, so what matters is that the binding adds no cost over one-shot.
import { gzipSync } from 'node:zlib';
import { createRequire } from 'node:module';
import { cpus } from 'node:os';
import { gunzipPrefix, zstdPrefix } from '../../src/toc/codec.js';

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer; decompress(b: Buffer): Buffer };

const CHUNK = 4 << 20;
const text = Buffer.alloc(CHUNK);
// Text-like: words from a small vocabulary in a pseudo-random order (compresses ~3-4x).
let seed = 1;
const words = ['import', 'const', 'function', 'return', 'module', 'export', 'value', 'data', '\n', ' ', '{', '}', '(', ')'];
for (let i = 0; i < CHUNK; ) {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  const w = (words[seed % words.length] as string) + (seed % 3 === 0 ? String(seed % 1000) : '');
  i += text.write(w, i);
}
const gz = gzipSync(text);
const zs = zstd.compress(text);

type Variant = [string, () => Promise<unknown> | unknown];
const variants: Variant[] = [
  ['zstdPrefix (ours, binding)', () => zstdPrefix(zs, CHUNK)],
  ['zstd-napi decompress (one-shot)', () => zstd.decompress(zs)],
  ['gunzipPrefix (node:zlib, thread pool)', () => gunzipPrefix(gz, CHUNK)],
];
// Rounds alternate between variants and the median is kept: first-touch page faults
// and GC would otherwise favour whichever runs last on this shared VM.
const samples = new Map<string, number[]>(variants.map(([n]) => [n, []]));
for (let round = 0; round < 7; round++) {
  for (const [name, fn] of variants) {
    const t0 = performance.now();
    for (let i = 0; i < 10; i++) await fn();
    samples.get(name)?.push((10 * CHUNK) / ((performance.now() - t0) / 1000) / 2 ** 20);
  }
}
const median = (xs: number[]): number => Math.round([...xs].sort((x, y) => x - y)[xs.length >> 1] ?? 0);
const results = Object.fromEntries([...samples].map(([n, xs]) => [n, median(xs)]));
process.stdout.write(`${JSON.stringify({
  bench: 'decode', date: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version },
  chunkBytes: CHUNK, compressedBytes: { gzip: gz.length, zstd: zs.length }, mibPerSecond: results,
}, null, 2)}\n`);
