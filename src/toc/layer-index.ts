// Opening one layer's index: reuse meta.db when this blob was indexed before (no read
// of the blob at all), else read the TOC, verify it against the descriptor's digest
// annotation before trusting a byte of it, and import it.
import type Database from 'better-sqlite3';
import type { Logger } from '../log.js';
import type { TocConfig } from '../config.js';
import { DigestMismatchError, NotEstargzError, UnverifiedTocError } from '../errors.js';
import { streamPlainLayer } from './plain-layer.js';
import {
  TOC_DIGEST_ANNOTATION, TOC_OFFSET_ANNOTATION, tocOffsetHint, ZSTD_A_CHECKSUM_ANNOTATION, ZSTD_A_POSITION_ANNOTATION, ZSTD_B_CHECKSUM_ANNOTATION,
  ZSTD_B_POSITION_ANNOTATION, type BlobReader, type LayerDescriptorLike,
} from './blob.js';
import { importTocStream } from './importer.js';
import { importTocInWorker } from './import-thread.js';
import type { InodeTable, LayerRow } from './inode-db.js';
import { readTocRegion } from './toc-reader.js';

export type ChunkSink = (digest: Buffer, data: Buffer) => Promise<void>;

export interface IndexOptions {
  readonly ahead?: boolean;
  readonly onLandmark?: (prefetchSize: number) => void;
}

export interface OpenedLayer {
  readonly row: LayerRow;
  /** True when meta.db already had this layer and the blob was not read. */
  readonly reused: boolean;
}

export class LayerIndexer {
  private readonly log: Logger;

  constructor(
    private readonly db: Database.Database,
    /** meta.db's path: imports write through a connection of their own. */
    private readonly dbFile: string,
    private readonly table: InodeTable,
    private readonly cfg: TocConfig,
    log: Logger,
    /** Where a plain layer's contents go (the chunk cache); without it plain layers are refused as NOT LAZY. */
    private readonly storeChunks?: ChunkSink,
  ) {
    this.log = log.child({ mod: 'toc' });
  }

  private importing = false;
  private readonly waiting: Array<{ ahead: boolean; go: () => void }> = [];
  /** Opens of layers not known yet, for a mount (not ahead), from their first byte to their row. */
  private opening = 0;
  private readonly opened: Array<() => void> = [];

  /**
   * Imports run one at a time: each holds a write transaction open across awaits. A layer
   * indexed ahead of its mount (`ahead`) lets any other import waiting go first.
   */
  private async serialized<T>(fn: () => Promise<T>, ahead = false): Promise<T> {
    // An import ahead waits for the opens a mount waits on, from their TOC fetch on.
    while (ahead && this.opening > 0) await new Promise<void>((go) => this.opened.push(go));
    if (this.importing) await new Promise<void>((go) => this.waiting.push({ ahead, go }));
    this.importing = true;
    try {
      return await fn();
    } finally {
      const i = this.waiting.findIndex((w) => !w.ahead);
      const next = this.waiting.splice(i >= 0 ? i : 0, 1)[0];
      if (next !== undefined) next.go();
      else this.importing = false;
    }
  }

  /** Verifies a layer row against this descriptor's annotations; records a new verification. */
  private accept(row: LayerRow, tocAnn: string | undefined, zstdB: string | undefined, ctx: { layer: string }): LayerRow {
    let verified = row.verified === 1;
    // A layer fetched whole was checked against its own digest; a TOC annotation says
    // nothing about it. Comparing one would refuse on a second run the layer the first
    // indexed (issue 22: a damaged footer read as NOT LAZY, then as a digest mismatch).
    if (row.format.startsWith('plain-')) return row;
    if (tocAnn !== undefined) {
      if (row.toc_digest !== tocAnn) throw new DigestMismatchError('TOC', tocAnn, row.toc_digest, ctx);
      verified = true;
    } else if (zstdB !== undefined) {
      if (row.toc_compressed_digest !== zstdB) {
        throw new DigestMismatchError('compressed TOC', zstdB, row.toc_compressed_digest ?? 'none', ctx);
      }
      verified = true;
    }
    if (!verified && !this.cfg.allowUnverified) throw new UnverifiedTocError(ctx);
    if (verified && row.verified !== 1) {
      this.db.prepare('UPDATE layers SET verified = 1 WHERE id = ?').run(row.id);
      return this.table.layer(row.id) as LayerRow;
    }
    return row;
  }

  /**
   * A layer without a footer: fetched whole, checked against its digest, its tar indexed
   * like a TOC and its contents stored as chunks. It reads like any other layer and stays
   * marked NOT LAZY (format plain-*).
   */
  private async openPlain(desc: LayerDescriptorLike, blob: BlobReader, why: NotEstargzError, store: ChunkSink): Promise<OpenedLayer> {
    const ctx = { layer: desc.digest };
    this.log.info({ digest: desc.digest }, `${why.message}: fetching the whole blob`);
    const { json, compression } = await streamPlainLayer(blob, desc.digest, this.cfg.maxPlainBytes, ctx, (c) => store(c.digest, c.data));
    // Why it is not lazy is kept with the row, so a later run that reuses it says the same.
    const notes = desc.annotations !== undefined && lazyAnnotation(desc.annotations) !== undefined ? [why] : [];
    const row = await this.serialized(() => importTocStream(
      this.dbFile,
      {
        digest: desc.digest, tocCompressedDigest: undefined, verified: true, format: `plain-${compression}`,
        compression: 'gzip', blobSize: blob.size, footerSize: 0, tocOffset: 0, tocCompressedSize: 0, dataEnd: blob.size, notes,
      },
      (async function* () { yield json; })(),
      undefined,
    ));
    return { row, reused: false };
  }

  /**
   * `ahead`: indexed before anyone reads it (a runtime's next layer); other imports go first.
   * `onLandmark`: told the prefetch region's size mid-import, when the layer is indexed now.
   */
  async open(desc: LayerDescriptorLike, blob: BlobReader, opts: IndexOptions = {}): Promise<OpenedLayer> {
    const ann = desc.annotations ?? {};
    const known = this.table.layerByDigest(desc.digest);
    if (known !== undefined) {
      this.log.debug({ digest: desc.digest }, 'layer index reused from meta.db');
      return { row: this.accept(known, ann[TOC_DIGEST_ANNOTATION], ann[ZSTD_B_CHECKSUM_ANNOTATION], { layer: desc.digest }), reused: true };
    }
    if (opts.ahead === true) return this.index(desc, blob, opts);
    this.opening++;
    try {
      return await this.index(desc, blob, opts);
    } finally {
      if (--this.opening === 0) for (const go of this.opened.splice(0)) go();
    }
  }

  private async index(desc: LayerDescriptorLike, blob: BlobReader, opts: IndexOptions): Promise<OpenedLayer> {
    const ctx = { layer: desc.digest };
    const ann = desc.annotations ?? {};
    const tocAnn = ann[TOC_DIGEST_ANNOTATION];
    const zstdB = ann[ZSTD_B_CHECKSUM_ANNOTATION];
    const zstdA = ann[ZSTD_A_CHECKSUM_ANNOTATION];

    const compressedAnnFor = (kind: string): string | undefined =>
      kind === 'zstd-chunked-b' ? zstdB : kind === 'zstd-chunked-a' ? zstdA : undefined;
    let region;
    try {
      region = await readTocRegion(blob, this.cfg, ctx, desc.mediaType, tocOffsetHint(desc.annotations));
    } catch (err) {
      if (!(err instanceof NotEstargzError)) throw err;
      const why = damagedFooter(desc.annotations, ctx) ?? err;
      if (this.storeChunks !== undefined) return this.openPlain(desc, blob, why, this.storeChunks);
      throw why;
    }
    const compressedAnn = compressedAnnFor(region.footer.kind);
    if (compressedAnn !== undefined && region.tocCompressedDigest !== compressedAnn) {
      throw new DigestMismatchError('compressed TOC', compressedAnn, region.tocCompressedDigest, ctx);
    }
    const verified = tocAnn !== undefined || compressedAnn !== undefined;
    // Refused before any TOC byte is decompressed.
    if (!verified && !this.cfg.allowUnverified) throw new UnverifiedTocError(ctx);
    if (!verified) this.log.warn({ digest: desc.digest }, 'layer TOC is not verified: no digest annotation');

    const started = performance.now();
    const imported = await this.serialized(() => importTocInWorker(
      this.dbFile,
      {
        digest: desc.digest,
        tocCompressedDigest: region.tocCompressedDigest,
        verified,
        format: region.footer.kind,
        compression: region.compression,
        blobSize: blob.size,
        footerSize: region.footer.size,
        tocOffset: region.footer.tocOffset,
        tocCompressedSize: region.comp.length,
        dataEnd: region.dataEnd,
      },
      region,
      this.cfg.maxTocBytes,
      ctx,
      tocAnn,
      opts.onLandmark,
    ), opts.ahead === true);
    // Another process may have indexed the layer first, under other annotations: check
    // the row we got as if it had been known from the start.
    const row = this.accept(imported, tocAnn, zstdB, ctx);
    this.log.debug(
      { digest: desc.digest, entries: row.entry_count, ms: Math.round(performance.now() - started), uptimeMs: Math.round(performance.now()) },
      'layer TOC indexed',
    );
    if (row.warning_count > 0) {
      for (const w of this.table.warnings(row.id, 5)) this.log.warn({ digest: desc.digest, code: w.code, path: w.path }, w.message);
    }
    return { row, reused: false };
  }
}

/** The annotation that says a layer has a TOC, if any: it then has a footer too. */
function lazyAnnotation(annotations: Readonly<Record<string, string>>): string | undefined {
  return [TOC_DIGEST_ANNOTATION, ZSTD_B_CHECKSUM_ANNOTATION, ZSTD_A_CHECKSUM_ANNOTATION, TOC_OFFSET_ANNOTATION, ZSTD_B_POSITION_ANNOTATION, ZSTD_A_POSITION_ANNOTATION]
    .find((k) => annotations[k] !== undefined);
}

/**
 * A layer whose annotations describe its TOC but whose tail holds no footer is not a
 * plain layer: its footer is damaged. Like the reference (estargz.Open fails, containerd
 * pulls the layer whole) it is not lazy, and the reason says so.
 */
function damagedFooter(annotations: Readonly<Record<string, string>> | undefined, ctx: { layer: string }): NotEstargzError | undefined {
  const key = annotations !== undefined ? lazyAnnotation(annotations) : undefined;
  if (key === undefined) return undefined;
  return new NotEstargzError(
    `damaged footer: the layer's ${key} annotation says it has a TOC, but its last bytes are no eStargz/stargz/zstd:chunked footer; it can only be fetched whole`,
    ctx,
  );
}
