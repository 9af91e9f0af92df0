// Seeded randomness, so a failing property test names the seed that reproduces it.
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const pick = <T>(r: () => number, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
export const int = (r: () => number, lo: number, hi: number): number => lo + Math.floor(r() * (hi - lo + 1));

export function bytes(r: () => number, n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  // Half compressible, half random: both kinds of deflate output get exercised.
  const noisy = r() < 0.5;
  for (let i = 0; i < n; i++) b[i] = noisy ? Math.floor(r() * 256) : (i * 31 + (i >> 8)) & 0xff;
  return b;
}
