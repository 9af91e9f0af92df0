// An image opened for reading: its layers indexed (or reported NOT LAZY with the
// reason), views over them, and a file reader. The composition root builds one per
// command or mount.
import type { Logger } from '../log.js';
import type { Descriptor, ResolvedImage } from '../http/image.js';
import type { BlobReader } from '../toc/blob.js';
import type { InodeTable, LayerRow } from '../toc/inode-db.js';
import type { LayerIndexer } from '../toc/layer-index.js';
import { LayerView, type OverlayEncoding } from '../toc/layer-view.js';
import { MergedView } from '../toc/merged-view.js';
import { ImageError, StargzfsError } from '../errors.js';
import { FileReader, type ChunkCache } from './file-reader.js';
import { prefetchLandmarkRegion, type PrefetchResult } from './prefetch.js';

export interface ImageSource {
  resolve(platform: string): Promise<ResolvedImage>;
  blob(desc: Descriptor): BlobReader;
  close(): Promise<void>;
}

export interface LayerState {
  readonly index: number;
  readonly desc: Descriptor;
  /** Set when the layer is indexed. */
  readonly row: LayerRow | undefined;
  readonly reused: boolean;
  /** Why the layer is not indexed (NOT LAZY, unverified, malformed …). */
  readonly error: StargzfsError | undefined;
}

export class OpenImage {
  readonly reader: FileReader;

  private constructor(
    readonly resolved: ResolvedImage,
    readonly layers: readonly LayerState[],
    private readonly table: InodeTable,
    private readonly source: ImageSource,
    private readonly cache: ChunkCache | undefined,
    log: Logger,
  ) {
    const byLayerId = new Map<number, Descriptor>(layers.flatMap((l) => (l.row ? [[l.row.id, l.desc] as const] : [])));
    const cacheLog = log.child({ mod: 'image' });
    this.reader = new FileReader(
      table,
      (row) => {
        const desc = byLayerId.get(row.id);
        if (desc === undefined) throw new Error(`layer ${row.digest} is not part of this image`);
        return source.blob(desc);
      },
      cache,
      (err) => cacheLog.warn({ err }, 'chunk cache write failed; the read goes on'),
    );
  }

  /** Indexes every layer in parallel; a layer that fails is recorded, not fatal. */
  static async open(
    source: ImageSource, platform: string, indexer: LayerIndexer, table: InodeTable, log: Logger, cache?: ChunkCache,
  ): Promise<OpenImage> {
    const resolved = await source.resolve(platform);
    const layers = await Promise.all(
      resolved.layers.map(async (desc, index): Promise<LayerState> => {
        try {
          const { row, reused } = await indexer.open(desc, source.blob(desc));
          return { index, desc, row, reused, error: undefined };
        } catch (err) {
          if (!(err instanceof StargzfsError)) throw err;
          // Commands report the layer's error themselves; the log keeps it for mounts.
          log.child({ mod: 'image' }).info({ digest: desc.digest, code: err.code }, err.message);
          return { index, desc, row: undefined, reused: false, error: err };
        }
      }),
    );
    return new OpenImage(resolved, layers, table, source, cache, log);
  }

  /**
   * Fetches every layer's landmark region (prioritized files) into the chunk cache, all
   * layers in parallel. Layers with .no.prefetch.landmark, or none, are skipped.
   */
  async prefetch(): Promise<PrefetchResult[]> {
    const cache = this.cache;
    if (cache === undefined) return [];
    return Promise.all(
      this.layers.flatMap((l) =>
        l.row !== undefined ? [prefetchLandmarkRegion(this.table, l.row, this.source.blob(l.desc), cache, this.reader.stats(l.row.id))] : [],
      ),
    );
  }

  /** All layers applied. Every layer must be indexed. */
  merged(): MergedView {
    const bad = this.layers.find((l) => l.row === undefined);
    if (bad !== undefined) throw bad.error ?? new ImageError('layer is not indexed', { layer: bad.desc.digest });
    return new MergedView(this.table, this.layers.map((l) => l.row as LayerRow));
  }

  /** One layer by index (0 = base; negative counts from the top) or by digest (a unique prefix is enough). */
  layer(sel: string, overlay: OverlayEncoding = 'none'): LayerView {
    const l = this.selectLayer(sel);
    if (l.row === undefined) throw l.error ?? new ImageError('layer is not indexed', { layer: l.desc.digest });
    return new LayerView(this.table, l.row, overlay);
  }

  selectLayer(sel: string): LayerState {
    const n = this.layers.length;
    if (/^-?\d+$/.test(sel)) {
      const i = Number(sel) < 0 ? n + Number(sel) : Number(sel);
      const l = this.layers[i];
      if (l === undefined) throw new ImageError(`no layer ${sel}: the image has ${n} layer(s), 0–${n - 1}`);
      return l;
    }
    const want = sel.startsWith('sha256:') ? sel : `sha256:${sel}`;
    const matches = this.layers.filter((l) => l.desc.digest.startsWith(want));
    if (matches.length !== 1) {
      throw new ImageError(matches.length === 0 ? `no layer with digest ${sel}` : `layer digest prefix ${sel} is ambiguous`);
    }
    return matches[0] as LayerState;
  }
}
