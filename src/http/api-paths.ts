// The distribution API's request shapes, in one place: the early fetch
// (layer/early-fetch.ts) must send byte for byte what the registry client will ask for,
// or its answers go unused.

export const manifestPath = (repository: string, reference: string): string => `/v2/${repository}/manifests/${reference}`;
export const blobPath = (repository: string, digest: string): string => `/v2/${repository}/blobs/${digest}`;
/** A Range header for `length` bytes at `offset`. */
export const byteRange = (offset: number, length: number): string => `bytes=${offset}-${offset + length - 1}`;

/** A Range header naming each extent, in the order given (one: a plain range). */
export function rangesHeader(extents: ReadonlyArray<{ readonly offset: number; readonly length: number }>): string {
  const [only] = extents;
  return extents.length === 1 && only !== undefined
    ? byteRange(only.offset, only.length)
    : `bytes=${extents.map((e) => `${e.offset}-${e.offset + e.length - 1}`).join(',')}`;
}
