// `stargzfs inspect <src> [--json]`: what each layer is and whether it can be read lazily.
import type { OpenImage } from '../../layer/image.js';
import type { InodeTable } from '../../toc/inode-db.js';
import { NotEstargzError } from '../../errors.js';
import { inspectReport } from '../../layer/report.js';
import { write, writeJson } from '../output.js';

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
