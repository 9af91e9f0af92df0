// What toc/ needs from wherever a layer blob lives (a file in an OCI layout, a registry).
// http/ implements it; toc/ never imports http/.

export interface BlobReader {
  /** Blob size in bytes, as the descriptor (and the source) say. */
  readonly size: number;
  /**
   * Exactly `length` bytes at `offset`; never fewer. Rejects a range outside the blob.
   * `progress`, when the source streams, sees the bytes as they arrive: a growing prefix
   * of the result, which may start over (a retry) but is always the blob's own bytes at
   * `offset` as far as the source can tell before the end.
   */
  readAt(offset: number, length: number, progress?: (prefix: Buffer) => void): Promise<Buffer>;
  /**
   * Several extents, in as few requests as the source allows; extents closer than `gap`
   * bytes may be read as one. `arrived`, when the source streams, is told of each extent
   * (by its index) as soon as its bytes are in. With `inOrder`, each extent is its own
   * range, asked for in the order given (a registry that keeps that order sends the
   * first first). Optional: readers fall back to readAt.
   */
  readRanges?(
    extents: ReadonlyArray<{ readonly offset: number; readonly length: number }>, gap?: number, arrived?: (index: number, data: Buffer) => void, inOrder?: boolean,
  ): Promise<Buffer[]>;
}

/** The parts of an OCI layer descriptor the format layer looks at. */
export interface LayerDescriptorLike {
  readonly digest: string;
  readonly size: number;
  readonly mediaType: string;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
}

export const TOC_DIGEST_ANNOTATION = 'containerd.io/snapshot/stargz/toc.digest';
export const UNCOMPRESSED_SIZE_ANNOTATION = 'io.containers.estargz.uncompressed-size';
export const ZSTD_A_CHECKSUM_ANNOTATION = 'io.containers.zstd-chunked.manifest-checksum';
export const ZSTD_A_POSITION_ANNOTATION = 'io.containers.zstd-chunked.manifest-position';
export const ZSTD_B_CHECKSUM_ANNOTATION = 'io.github.containers.zstd-chunked.manifest-checksum';
export const ZSTD_B_POSITION_ANNOTATION = 'io.github.containers.zstd-chunked.manifest-position';
/**
 * Where an eStargz layer's TOC member starts, written by `stargzfs convert`: eStargz has
 * no standard annotation for it (zstd:chunked's manifest-position is one). With it the
 * TOC and footer come in one exact request however large the TOC; without it, a tail
 * read guesses. Only a hint: the footer stays the truth, and the TOC is checked by digest.
 */
export const TOC_OFFSET_ANNOTATION = 'dev.stargzfs.estargz.toc-offset';

/**
 * Where `.prefetch.landmark`'s member starts, written by `stargzfs convert` for a layer
 * with prioritized files: a mount can start fetching that region with the TOC instead of
 * after indexing it (layer/blob-head.ts). Only a hint, checked against the TOC.
 */
export const PREFETCH_SIZE_ANNOTATION = 'dev.stargzfs.estargz.prefetch-size';

/** The prioritized region's size a layer's annotations give, if any. */
export function prefetchSizeHint(annotations: Readonly<Record<string, string>> | undefined): number | undefined {
  const raw = annotations?.[PREFETCH_SIZE_ANNOTATION];
  if (raw === undefined || !/^[0-9]{1,15}$/.test(raw) || raw === '0') return undefined;
  return Number(raw);
}

/** The TOC's start offset a layer's annotations give, if any (ESTARGZ.md §3.5, §8). */
export function tocOffsetHint(annotations: Readonly<Record<string, string>> | undefined): number | undefined {
  if (annotations === undefined) return undefined;
  const raw = annotations[TOC_OFFSET_ANNOTATION]
    ?? (annotations[ZSTD_B_POSITION_ANNOTATION] ?? annotations[ZSTD_A_POSITION_ANNOTATION])?.split(':')[0];
  if (raw === undefined || !/^[0-9]{1,15}$/.test(raw)) return undefined;
  return Number(raw);
}
