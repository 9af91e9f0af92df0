// `stargzfs inspect <src> [--json]`: what each layer is and whether it can be read lazily.
import type { OpenImage } from '../../layer/image.js';
import type { InodeTable } from '../../toc/inode-db.js';
import { TOC_DIGEST_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from '../../toc/blob.js';
import { NotEstargzError } from '../../errors.js';
import { formatPlatform } from '../../http/image.js';
import { write, writeJson } from '../output.js';

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

export async function inspect(image: OpenImage, table: InodeTable, json: boolean): Promise<void> {
  const report = inspectReport(image, table, await image.platform());
  if (json) {
    await writeJson(report);
    throwUnreadable(image);
    return;
  }
  const out: string[] = [
    `Image:    ${report.ref}`,
    `Manifest: ${report.manifest}`,
    `Platform: ${report.platform ?? 'unknown'}`,
    `Layers:   ${report.layers.length}`,
  ];
  for (const l of report.layers) {
    out.push('', `Layer ${l.index}: ${l.digest}`, `  media type:  ${l.mediaType}`, `  size:        ${l.size} bytes`);
    if (l.notLazyReason !== null) {
      out.push(`  format:      NOT LAZY: ${l.notLazyReason}`);
      continue;
    }
    if (l.error !== null) {
      out.push(`  format:      unreadable (${l.error.code}): ${l.error.message}`);
      continue;
    }
    out.push(
      `  format:      ${l.format} (footer ${l.footer?.size} bytes)`,
      `  TOC:         offset ${l.tocOffset}, ${l.tocCompressedSize} bytes compressed, ${l.tocSize} bytes JSON`,
      `  entries:     ${l.entries} (${l.chunks} chunks, ${l.nodes} inodes)`,
      `  TOC digest:  ${l.tocDigest}`,
      `  verified:    ${l.verified ? 'yes (matches the layer annotation)' : 'NO — unverified layer (no digest annotation)'}`,
      `  prefetch:    ${l.landmark === 'prefetch' ? `${l.prefetchSize} bytes (.prefetch.landmark)` : l.landmark === 'no-prefetch' ? 'none (.no.prefetch.landmark)' : 'no landmark'}`,
    );
    if (l.uncompressedSize !== null) out.push(`  uncompressed: ${l.uncompressedSize} bytes`);
    if (l.warningCount > 0) {
      out.push(`  warnings:    ${l.warningCount} unusable TOC entr${l.warningCount === 1 ? 'y' : 'ies'}`);
      for (const w of l.warnings.slice(0, 5)) out.push(`    - ${w.code}: ${w.message}`);
    }
  }
  await write(`${out.join('\n')}\n`);
  throwUnreadable(image);
}

/** After the report: the first layer that could not be read fails the command with its exit code. */
function throwUnreadable(image: OpenImage): void {
  const bad = image.layers.find((l) => l.error !== undefined && !(l.error instanceof NotEstargzError));
  if (bad?.error !== undefined) throw bad.error;
}
