// Opening one layer's index: reuse meta.db when this blob was indexed before (no read
// of the blob at all), else read the TOC, verify it against the descriptor's digest
// annotation before trusting a byte of it, and import it.
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import type { TocConfig } from '../config.js';
import { DigestMismatchError, UnverifiedTocError } from '../errors.js';
import {
  TOC_DIGEST_ANNOTATION, ZSTD_A_CHECKSUM_ANNOTATION, ZSTD_B_CHECKSUM_ANNOTATION, type BlobReader, type LayerDescriptorLike,
} from './blob.js';
import { importToc } from './importer.js';
import type { InodeTable, LayerRow } from './inode-db.js';
import { readToc } from './toc-reader.js';

export interface OpenedLayer {
  readonly row: LayerRow;
  /** True when meta.db already had this layer and the blob was not read. */
  readonly reused: boolean;
}

export class LayerIndexer {
  private readonly log: Logger;

  constructor(
    private readonly db: Database.Database,
    private readonly table: InodeTable,
    private readonly cfg: TocConfig,
    log: Logger,
  ) {
    this.log = log.child({ mod: 'toc' });
  }

  async open(desc: LayerDescriptorLike, blob: BlobReader): Promise<OpenedLayer> {
    const ctx = { layer: desc.digest };
    const ann = desc.annotations ?? {};
    const tocAnn = ann[TOC_DIGEST_ANNOTATION];
    const zstdB = ann[ZSTD_B_CHECKSUM_ANNOTATION];
    const zstdA = ann[ZSTD_A_CHECKSUM_ANNOTATION];

    const known = this.table.layerByDigest(desc.digest);
    if (known !== undefined) {
      let verified = known.verified === 1;
      if (tocAnn !== undefined) {
        if (known.toc_digest !== tocAnn) throw new DigestMismatchError('TOC', tocAnn, known.toc_digest, ctx);
        verified = true;
      } else if (zstdB !== undefined) {
        if (known.toc_compressed_digest !== zstdB) {
          throw new DigestMismatchError('compressed TOC', zstdB, known.toc_compressed_digest ?? 'none', ctx);
        }
        verified = true;
      }
      if (!verified && !this.cfg.allowUnverified) throw new UnverifiedTocError(ctx);
      if (verified && known.verified !== 1) {
        this.db.prepare('UPDATE layers SET verified = 1 WHERE id = ?').run(known.id);
      }
      this.log.debug({ digest: desc.digest }, 'layer index reused from meta.db');
      return { row: this.table.layer(known.id) as LayerRow, reused: true };
    }

    const raw = await readToc(blob, this.cfg, ctx, desc.mediaType);
    let verified = false;
    if (tocAnn !== undefined) {
      if (raw.tocDigest !== tocAnn) throw new DigestMismatchError('TOC', tocAnn, raw.tocDigest, ctx);
      verified = true;
    }
    const compressedAnn = raw.footer.kind === 'zstd-chunked-b' ? zstdB : raw.footer.kind === 'zstd-chunked-a' ? zstdA : undefined;
    if (compressedAnn !== undefined) {
      if (raw.tocCompressedDigest !== compressedAnn) {
        throw new DigestMismatchError('compressed TOC', compressedAnn, raw.tocCompressedDigest, ctx);
      }
      verified = true;
    }
    if (!verified && !this.cfg.allowUnverified) throw new UnverifiedTocError(ctx);
    if (!verified) this.log.warn({ digest: desc.digest }, 'layer TOC is not verified: no digest annotation');

    const started = performance.now();
    const row = importToc(this.db, {
      digest: desc.digest,
      tocDigest: raw.tocDigest,
      tocCompressedDigest: raw.tocCompressedDigest,
      verified,
      format: raw.footer.kind,
      compression: raw.compression,
      blobSize: blob.size,
      footerSize: raw.footer.size,
      tocOffset: raw.footer.tocOffset,
      tocCompressedSize: raw.tocCompressedSize,
      dataEnd: raw.dataEnd,
      json: raw.json,
    });
    this.log.debug(
      { digest: desc.digest, entries: row.entry_count, ms: Math.round(performance.now() - started) },
      'layer TOC indexed',
    );
    if (row.warning_count > 0) {
      for (const w of this.table.warnings(row.id, 5)) this.log.warn({ digest: desc.digest, code: w.code, path: w.path }, w.message);
    }
    return { row, reused: false };
  }
}
