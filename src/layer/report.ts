// An image's layers as a report: format, TOC facts, verification, and NOT LAZY with the
// reason. `inspect` prints it; a mount's status.json is built from it.
import type { OpenImage } from './image.js';
import type { InodeTable } from '../toc/inode-db.js';
import { TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from '../toc/blob.js';
import { NotEstargzError } from '../errors.js';
import { formatPlatform } from '../http/image.js';

const FORMAT_NAMES: Record<string, string> = {
  estargz: 'eStargz',
  stargz: 'stargz (legacy)',
  'zstd-chunked-a': 'zstd:chunked (flavor A)',
  'zstd-chunked-b': 'zstd:chunked (flavor B)',
};

export interface LayerReport {
  index: number;
  digest: string;
  mediaType: string;
  size: number;
  format: string;
  lazy: boolean;
  notLazyReason: string | null;
  footer: { kind: string; size: number } | null;
  tocOffset: number | null;
  tocCompressedSize: number | null;
  tocSize: number | null;
  entries: number | null;
  chunks: number | null;
  nodes: number | null;
  tocDigest: string | null;
  tocDigestAnnotation: string | null;
  verified: boolean;
  landmark: string | null;
  prefetchSize: number | null;
  uncompressedSize: number | null;
  warnings: Array<{ code: string; path: string | null; message: string }>;
  warningCount: number;
  indexedFromCache: boolean;
  error: { code: string; message: string } | null;
}

export function inspectReport(image: OpenImage, table: InodeTable, platform = image.resolved.platform): { ref: string; manifest: string; platform: string | null; layers: LayerReport[] } {
  const layers = image.layers.map((l): LayerReport => {
    const r = l.row;
    const ann = l.desc.annotations ?? {};
    const unc = ann[UNCOMPRESSED_SIZE_ANNOTATION];
    const plain = r !== undefined && r.format.startsWith('plain-');
    // A layer whose annotations promised a TOC says why it has none (a damaged footer) in its first warning.
    const why = plain ? table.warnings(r.id, 1).find((w) => w.code === 'SGZ_NOT_ESTARGZ')?.message.replace(/^.*?NOT LAZY: /, '') : undefined;
    const notLazy = l.error instanceof NotEstargzError
      ? l.error.reason
      : plain ? (why ?? `plain ${r.format.slice(6)} layer without an eStargz/stargz/zstd:chunked footer; fetched whole and indexed`) : null;
    return {
      index: l.index,
      digest: l.desc.digest,
      mediaType: l.desc.mediaType,
      size: l.desc.size,
      format: plain ? 'plain' : r !== undefined ? (FORMAT_NAMES[r.format] ?? r.format) : notLazy !== null ? 'plain' : 'unknown',
      lazy: r !== undefined && !plain,
      notLazyReason: notLazy,
      footer: r !== undefined ? { kind: r.format, size: r.footer_size } : null,
      tocOffset: r?.toc_offset ?? null,
      tocCompressedSize: r?.toc_compressed_size ?? null,
      tocSize: r?.toc_size ?? null,
      entries: r?.entry_count ?? null,
      chunks: r?.chunk_count ?? null,
      nodes: r?.node_count ?? null,
      tocDigest: r?.toc_digest ?? null,
      tocDigestAnnotation: ann[TOC_DIGEST_ANNOTATION] ?? null,
      verified: r?.verified === 1,
      landmark: r?.landmark ?? null,
      prefetchSize: r !== undefined ? r.prefetch_size : null,
      uncompressedSize: unc !== undefined ? Number(unc) : null,
      warnings: r !== undefined ? table.warnings(r.id, 20) : [],
      warningCount: r?.warning_count ?? 0,
      indexedFromCache: l.reused,
      error: l.error !== undefined && notLazy === null ? { code: l.error.code, message: l.error.message } : null,
    };
  });
  return {
    ref: image.resolved.ref,
    manifest: image.resolved.manifestDigest,
    platform: platform !== undefined ? formatPlatform(platform) : null,
    layers,
  };
}
