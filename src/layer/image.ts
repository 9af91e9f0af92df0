// An image opened for reading: its layers indexed (or reported NOT LAZY with the
// reason), views over them, and a file reader. The composition root builds one per
// command or mount.
import type { Logger } from '../log.js';
import type { Descriptor, Platform, ResolvedImage } from '../http/image.js';
import type { HostStats } from '../http/registry-client.js';
import { prefetchSizeHint, type BlobReader } from '../toc/blob.js';
import type { InodeTable, LayerRow } from '../toc/inode-db.js';
import type { LayerIndexer } from '../toc/layer-index.js';
import { LayerView, type OverlayEncoding } from '../toc/layer-view.js';
import { MergedView } from '../toc/merged-view.js';
import { ClosedError, ImageError, StargzfsError } from '../errors.js';
import type { FetchConfig } from '../config.js';
import { FileReader, type ChunkCache } from './file-reader.js';
import { hasLandmarkRegion, prefetchLandmarkRegion, type PrefetchResult } from './prefetch.js';
import { prefetchLearned, type LearnedResult } from './learned.js';
import { backgroundFetch } from './background.js';
import { BACKGROUND, FetchScheduler, ON_DEMAND, PREFETCH, ScopedScheduler, type Scheduler } from './scheduler.js';
import { FetchProgress } from './progress.js';
import { ProfileRecorder, type ProfileStore } from './profile.js';
import { BlobHead } from './blob-head.js';

export interface ImageSource {
  resolve(platform: string): Promise<ResolvedImage>;
  /** The platform a config names, for sources whose resolve() leaves it out. */
  configPlatform?(config: Descriptor): Promise<Platform | undefined>;
  blob(desc: Descriptor): BlobReader;
  /** Cancels requests in flight that nobody waits for any more (the image is closing); close() follows. */
  abort?(): void;
  close(): Promise<void>;
  /** What each registry host answered (metrics); absent for local sources. */
  hostStats?(): ReadonlyMap<string, HostStats>;
}

/**
 * `blob`, calling `then` once its first read is over (the TOC's, when the indexer reads
 * it), and letting I/O run before the reader goes on: a request `then` sends is on the
 * wire before indexing holds the thread.
 */
function startsAfterFirstRead(blob: BlobReader, then: () => void): BlobReader {
  let first = true;
  const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
  return {
    size: blob.size,
    readAt: (offset, length, progress) => {
      const read = blob.readAt(offset, length, progress);
      if (!first) return read;
      first = false;
      return read.then(
        async (b) => {
          then();
          await turn();
          return b;
        },
        async (err: unknown) => {
          then();
          throw err;
        },
      );
    },
  };
}

const PRIORITY_NAMES = { [ON_DEMAND]: 'on_demand', [PREFETCH]: 'prefetch', [BACKGROUND]: 'background' } as const;

export interface LayerState {
  readonly index: number;
  readonly desc: Descriptor;
  /** Set when the layer is indexed. */
  readonly row: LayerRow | undefined;
  readonly reused: boolean;
  /** Why the layer is not indexed (NOT LAZY, unverified, malformed …). */
  readonly error: StargzfsError | undefined;
}

export interface OpenOptions {
  readonly fetch: FetchConfig;
  /** `capacityBytes`: what the cache can hold now (its quota in effect), if it can say. */
  readonly cache?: (ChunkCache & { capacityBytes?(): number }) | undefined;
  /** Where first reads are recorded and learned prefetch reads from; none: neither. */
  readonly profiles?: ProfileStore | undefined;
  /**
   * The command will run landmark prefetch (a mount, `fetch`): a layer not indexed yet
   * whose annotations give its region's size has that region fetched with its TOC.
   */
  readonly prefetching?: boolean;
  /** Opened only to index its layers ahead of a mount: their imports let others go first. */
  readonly ahead?: boolean;
  /** A scheduler shared with other images (its registry host's); none: one of its own. */
  readonly scheduler?: FetchScheduler | undefined;
}

export interface WarmResult {
  readonly landmark: readonly PrefetchResult[];
  readonly learned: LearnedResult | undefined;
  readonly background: { readonly fetched: number; readonly failed: number } | undefined;
}

export class OpenImage {
  readonly reader: FileReader;
  readonly progress = new FetchProgress();
  readonly scheduler: Scheduler;
  private readonly recorder: ProfileRecorder | undefined;
  private readonly log: Logger;
  private closed = false;

  private constructor(
    readonly resolved: ResolvedImage,
    readonly layers: readonly LayerState[],
    private readonly table: InodeTable,
    private readonly source: ImageSource,
    private readonly opts: OpenOptions,
    log: Logger,
    /** Landmark regions being fetched ahead, by layer digest, until their prefetch is done. */
    private readonly heads: Map<string, BlobHead>,
  ) {
    this.log = log.child({ mod: 'image' });
    const byLayerId = new Map<number, Descriptor>(layers.flatMap((l) => (l.row ? [[l.row.id, l.desc] as const] : [])));
    for (const l of layers) {
      this.progress.addLayer(l.desc.digest, l.row !== undefined && l.row.data_end > 0 ? l.row.data_end : l.desc.size);
    }
    this.scheduler = opts.scheduler !== undefined
      ? new ScopedScheduler(opts.scheduler)
      : new FetchScheduler({ concurrency: opts.fetch.concurrency, backgroundBytesPerSec: opts.fetch.backgroundBytesPerSec });
    const recorder = opts.profiles !== undefined
      ? new ProfileRecorder(opts.profiles, resolved.manifestDigest, (err) => this.log.warn({ err }, 'access profile not saved'))
      : undefined;
    this.recorder = recorder;
    this.reader = new FileReader(
      table,
      (row) => {
        const desc = byLayerId.get(row.id);
        if (desc === undefined) throw new Error(`layer ${row.digest} is not part of this image`);
        return heads.get(desc.digest) ?? source.blob(desc);
      },
      this.scheduler,
      opts.fetch,
      opts.cache,
      {
        onCacheError: (err) => this.log.warn({ err }, 'chunk cache write failed; the read goes on'),
        onChunksRead: recorder !== undefined
          ? (layer, path, rows) => recorder.record(layer.digest, path, rows)
          : undefined,
        onFetched: (layer, bytes, job) => this.progress.fetched(layer.digest, bytes, PRIORITY_NAMES[job.priority], job.ms, job.ranges),
        onError: (layer, err, background) => {
          if (err instanceof ClosedError) return;
          const code = err instanceof StargzfsError ? err.code : 'SGZ_FETCH';
          const path = err instanceof StargzfsError ? err.path : undefined;
          // A reader's own error is reported by whoever serves the read (CLI, fs/errno); logged here only when nobody waits.
          if (background) this.log.warn({ layer: layer.digest, path, code }, err.message);
          this.progress.error(layer.digest, code, err.message, path);
        },
      },
    );
  }

  /**
   * Indexes every layer in parallel; a layer that fails is recorded, not fatal.
   * `resolving` is `source.resolve(…)`, started by the caller as early as it can.
   */
  static async open(
    source: ImageSource, resolving: Promise<ResolvedImage>, indexer: LayerIndexer, table: InodeTable, log: Logger, opts: OpenOptions,
  ): Promise<OpenImage> {
    const resolved = await resolving;
    // Start-up diagnosis: milliseconds since the process started.
    log.debug({ uptimeMs: Math.round(performance.now()), layers: resolved.layers.length }, 'image resolved');
    const heads = new Map<string, BlobHead>();
    const layers = await Promise.all(
      resolved.layers.map(async (desc, index): Promise<LayerState> => {
        const hint = prefetchSizeHint(desc.annotations);
        let blob = source.blob(desc);
        if (opts.prefetching === true && opts.fetch.prefetch && opts.cache !== undefined && hint !== undefined && table.layerByDigest(desc.digest) === undefined) {
          const head = new BlobHead(source.blob(desc), hint, (err) =>
            log.child({ mod: 'image' }).warn({ layer: desc.digest, err: err.message }, 'the landmark region fetched ahead failed; prefetch fetches it itself'));
          heads.set(desc.digest, head);
          blob = startsAfterFirstRead(blob, () => head.start());
        }
        // Without the annotation the region's size comes from the TOC itself, mid-import:
        // its fetch then runs beside the import instead of after it (the python layer's
        // import took 150-220 ms at 20 ms / 200 Mbit, the link idle meanwhile).
        const early = opts.prefetching === true && opts.fetch.prefetch && opts.cache !== undefined && !heads.has(desc.digest);
        const onLandmark = early
          ? (size: number): void => {
            if (heads.has(desc.digest) || size <= 0) return;
            const head = new BlobHead(source.blob(desc), size, (err) =>
              log.child({ mod: 'image' }).warn({ layer: desc.digest, err: err.message }, 'the landmark region fetched ahead failed; prefetch fetches it itself'));
            heads.set(desc.digest, head);
            head.start();
          }
          : undefined;
        try {
          const { row, reused } = await indexer.open(desc, blob, { ahead: opts.ahead === true, onLandmark });
          const head = heads.get(desc.digest);
          if (head !== undefined && hint !== undefined && (row.landmark !== 'prefetch' || row.prefetch_size !== hint)) {
            log.child({ mod: 'image' }).warn(
              { layer: desc.digest, annotation: hint, toc: row.landmark === 'prefetch' ? row.prefetch_size : null },
              'the prefetch-size annotation disagrees with the TOC; the TOC is followed',
            );
            head.release();
            heads.delete(desc.digest);
          }
          return { index, desc, row, reused, error: undefined };
        } catch (err) {
          heads.get(desc.digest)?.release();
          heads.delete(desc.digest);
          if (!(err instanceof StargzfsError)) throw err;
          // Commands report the layer's error themselves; the log keeps it for mounts.
          log.child({ mod: 'image' }).info({ digest: desc.digest, code: err.code }, err.message);
          return { index, desc, row: undefined, reused: false, error: err };
        }
      }),
    );
    return new OpenImage(resolved, layers, table, source, opts, log, heads);
  }

  /** The image's platform: from the index, else from the config (fetched only now). */
  async platform(): Promise<Platform | undefined> {
    return this.resolved.platform ?? (await this.source.configPlatform?.(this.resolved.config));
  }

  private indexed(): LayerRow[] {
    return this.layers.flatMap((l) => (l.row !== undefined ? [l.row] : []));
  }

  /**
   * Fetches every layer's landmark region (prioritized files) into the chunk cache, all
   * layers in parallel. Layers with .no.prefetch.landmark, or none, fetch nothing.
   */
  async prefetch(): Promise<PrefetchResult[]> {
    if (this.opts.cache === undefined) return [];
    return Promise.all(this.indexed().map((row) => this.landmark(row)));
  }

  private landmark(row: LayerRow): Promise<PrefetchResult> {
    if (!hasLandmarkRegion(row)) {
      this.progress.phase(row.digest, 'landmark', 'none');
      return prefetchLandmarkRegion(this.table, row, this.reader);
    }
    return this.phase(row, 'landmark', () => prefetchLandmarkRegion(this.table, row, this.reader)).finally(() => this.dropHead(row.digest));
  }

  /** The region fetched ahead is in the cache now (or failed): later reads go to the registry. */
  private dropHead(digest: string): void {
    this.heads.get(digest)?.release();
    this.heads.delete(digest);
  }

  /** Fetches the files earlier runs of this image read first, in that order. */
  async prefetchLearned(): Promise<LearnedResult | undefined> {
    if (this.opts.cache === undefined || this.opts.profiles === undefined) return undefined;
    const entries = this.opts.profiles.list(this.resolved.manifestDigest);
    const rows = this.indexed();
    for (const row of rows) this.progress.phase(row.digest, 'learned', 'running');
    const result = await prefetchLearned(entries, new Map(rows.map((r) => [r.digest, r])), this.table, this.reader);
    for (const row of rows) this.progress.phase(row.digest, 'learned', entries.some((e) => e.layer === row.digest) ? 'done' : 'none');
    return result;
  }

  /**
   * What a mount runs in the background: landmark and learned prefetch, then the rest of
   * every layer, each as the fetch configuration allows. Errors are reported as progress
   * events and logged; they never reject.
   */
  async warm(): Promise<WarmResult> {
    const f = this.opts.fetch;
    const rows = this.indexed();
    const off = (phase: 'landmark' | 'learned' | 'background'): void => {
      for (const row of rows) this.progress.phase(row.digest, phase, 'off');
    };
    if (!f.prefetch) off('landmark');
    if (!f.learnedPrefetch) off('learned');
    if (!f.backgroundFetch) off('background');
    // A cache that cannot hold the image makes background fetch a loss: each chunk it
    // fetches evicts one fetched before, and reads fetch those again (on a disk smaller
    // than the image, background fetch nearly doubled what a mount fetched).
    const room = this.opts.cache?.capacityBytes?.();
    const imageBytes = rows.reduce((n, r) => n + r.data_end, 0);
    const background = f.backgroundFetch && !(room !== undefined && imageBytes > room);
    if (f.backgroundFetch && !background) {
      this.log.warn({ imageBytes, cacheBytes: room }, 'no background fetch: the chunk cache cannot hold the image (give it more room with --cache-size or on its disk)');
      off('background');
    }
    const [landmark, learned] = await Promise.all([
      f.prefetch && this.opts.cache !== undefined
        ? Promise.all(rows.map((row) => this.landmark(row).catch(() => undefined)))
          .then((rs) => rs.filter((r): r is PrefetchResult => r !== undefined))
        : Promise.resolve([]),
      f.learnedPrefetch ? this.prefetchLearned().catch((err: unknown) => this.failed(rows, 'learned', err)) : Promise.resolve(undefined),
    ]);
    let fetchedBehind;
    // Planning background fetch queries meta.db on this thread: not while a program starts.
    if (background) await this.scheduler.quiet();
    if (background && this.opts.cache !== undefined && !this.closed) {
      const each = await Promise.all(
        rows.map((row) =>
          this.phase(row, 'background', () => backgroundFetch(this.table, row, this.reader, () => this.closed)).catch(() => ({ fetched: 0, failed: this.closed ? 0 : 1 })),
        ),
      );
      fetchedBehind = each.reduce((a, b) => ({ fetched: a.fetched + b.fetched, failed: a.failed + b.failed }), { fetched: 0, failed: 0 });
    }
    return { landmark, learned: learned ?? undefined, background: fetchedBehind };
  }

  /** Stops background work (what is running finishes) and saves the access profile. */
  /** What each registry host has answered this process (metrics). */
  hostStats(): ReadonlyMap<string, HostStats> {
    return this.source.hostStats?.() ?? new Map();
  }

  close(): void {
    this.closed = true;
    for (const digest of [...this.heads.keys()]) this.dropHead(digest);
    this.scheduler.close();
    // Prefetch, background and read-ahead fetches still on the wire are nobody's any more.
    this.source.abort?.();
    this.recorder?.flush();
  }

  private async phase<T>(row: LayerRow, phase: 'landmark' | 'background', fn: () => Promise<T>): Promise<T> {
    this.progress.phase(row.digest, phase, 'running');
    try {
      const r = await fn();
      this.progress.phase(row.digest, phase, this.closed && phase === 'background' ? 'pending' : 'done');
      return r;
    } catch (err) {
      if (this.closed) {
        this.progress.phase(row.digest, phase, 'pending');
        throw err;
      }
      this.progress.phase(row.digest, phase, 'failed');
      const e = err as Error;
      this.progress.error(row.digest, err instanceof StargzfsError ? err.code : 'SGZ_FETCH', `${phase} fetch failed: ${e.message}`);
      throw err;
    }
  }

  private failed(rows: readonly LayerRow[], phase: 'learned', err: unknown): undefined {
    this.log.warn({ err }, 'learned prefetch failed');
    for (const row of rows) this.progress.phase(row.digest, phase, 'failed');
    return undefined;
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
