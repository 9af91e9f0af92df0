// The service's wiring (the composition root's, for `stargzfs serve`): one meta.db, chunk
// cache, TOC index and profile store for every mount of the process, registry clients
// and fetch schedulers shared by the images they serve, manifests resolved once a minute.
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { isOciRef, OciLayoutSource } from '../http/oci-layout.js';
import type { ResolvedImage } from '../http/image.js';
import { parseImageRef } from '../http/reference.js';
import { parseJson } from '../http/manifest.js';
import { ImageError, NotEstargzError } from '../errors.js';
import type { RegistryClient } from '../http/registry-client.js';
import { RegistrySource } from '../http/registry-source.js';
import { registryClient } from './registry.js';
import { InodeTable, openMetaDb } from '../toc/inode-db.js';
import { LayerIndexer } from '../toc/layer-index.js';
import { ChunkStore } from '../chunkcache/chunk-store.js';
import { OpenImage, type ImageSource } from '../layer/image.js';
import { FetchScheduler } from '../layer/scheduler.js';
import { ProfileStore } from '../layer/profile.js';
import type { MountParts } from '../service/mounted-image.js';
import type { ImageDescription } from '../service/service.js';

/** `source` answering `resolve` its own way, everything else as it does. */
function resolvingAs(source: ImageSource, resolve: ImageSource['resolve']): ImageSource {
  return {
    resolve,
    configPlatform: source.configPlatform !== undefined ? (c) => (source.configPlatform as NonNullable<ImageSource['configPlatform']>)(c) : undefined,
    blob: (d) => source.blob(d),
    abort: () => source.abort?.(),
    close: () => source.close(),
    hostStats: () => source.hostStats?.() ?? new Map(),
  };
}

/** `source` as if its image had only the layer `digest`. */
function oneLayer(source: ImageSource, digest: string): ImageSource {
  return resolvingAs(source, async (platform) => {
    const r = await source.resolve(platform);
    const layers = r.layers.filter((d) => d.digest === digest);
    if (layers.length === 0) throw new ImageError(`the image has no layer ${digest}`, { layer: digest });
    return { ...r, layers };
  });
}

/** `source` with its image already resolved (a handed-over mount: the image it shows, no registry round trip). */
function pinned(source: ImageSource, resolved: ResolvedImage): ImageSource {
  return resolvingAs(source, () => Promise.resolve(resolved));
}

/** How long the service takes a tag's manifest as resolved (the reference keeps its for 120 s). */
const RESOLVED_TTL_MS = 60_000;

/**
 * The service's state: one meta.db, chunk cache, TOC indexer and profile store that every
 * mount of the process shares (the TOC of a layer is indexed once, a chunk cached once).
 * Each image gets its own source and OpenImage, closed when its mount ends.
 */
export class SharedState {
  private readonly db: Database.Database;
  readonly table: InodeTable;
  readonly cache: ChunkStore;
  private readonly indexer: LayerIndexer;
  /** Refuses plain layers (NOT LAZY) instead of fetching them whole. */
  private readonly lazyIndexer: LayerIndexer;
  private readonly profiles: ProfileStore;
  private readonly clients = new Map<string, RegistryClient>();
  private readonly schedulers = new Map<string, FetchScheduler>();
  private readonly resolved = new Map<string, { at: number; image: Promise<ResolvedImage> }>();

  constructor(config: Config, readonly log: Logger) {
    const dbFile = join(config.state.root, 'meta.db');
    this.db = openMetaDb(dbFile);
    this.table = new InodeTable(this.db);
    this.cache = new ChunkStore(this.db, { root: config.state.root, ...config.cache, writeBehind: true }, log);
    this.indexer = new LayerIndexer(this.db, dbFile, this.table, config.toc, log, (digest, data) => this.cache.put(digest, data));
    this.lazyIndexer = new LayerIndexer(this.db, dbFile, this.table, config.toc, log);
    this.profiles = new ProfileStore(this.db);
  }

  /**
   * Opens `ref` with this mount's configuration (registry options, fetch policy) over the
   * shared state. With `layer` (a digest), only that layer of the image is opened, and only
   * if it can be read lazily: a runtime adapter mounts layers one by one, and a plain layer
   * is theirs to unpack, not ours to fetch whole (NotEstargzError says why).
   */
  async openImage(config: Config, ref: string, opts: { layer?: string; prefetching?: boolean; ahead?: boolean; resolved?: ResolvedImage | undefined } = {}): Promise<{ parts: MountParts; close(): Promise<void> }> {
    const base = isOciRef(ref) ? await OciLayoutSource.open(ref) : this.registrySource(ref, config);
    const full = opts.resolved !== undefined ? pinned(base, opts.resolved) : base;
    const source = opts.layer !== undefined ? oneLayer(full, opts.layer) : full;
    try {
      const image = await OpenImage.open(source, source.resolve(config.image.platform), opts.layer !== undefined ? this.lazyIndexer : this.indexer, this.table, this.log, {
        fetch: config.fetch, cache: this.cache, profiles: this.profiles, prefetching: opts.prefetching !== false, ahead: opts.ahead === true,
        scheduler: isOciRef(ref) ? undefined : this.hostScheduler(parseImageRef(ref).registry, config),
      });
      const l = image.layers[0];
      if (opts.layer !== undefined && l !== undefined) {
        if (l.error !== undefined) throw l.error;
        if (l.row?.format.startsWith('plain-') === true) throw new NotEstargzError(`plain ${l.row.format.slice(6)} layer (indexed whole by an earlier mount), no TOC to read lazily`, { layer: l.desc.digest });
      }
      if (!isOciRef(ref)) {
        try {
          this.profiles.rememberRef(ref, image.resolved.manifestDigest);
        } catch (err) {
          this.log.debug({ err }, 'the image this reference names not noted');
        }
      }
      return {
        parts: { image, table: this.table, cache: this.cache, log: this.log },
        close: async () => {
          image.close();
          await source.close();
        },
      };
    } catch (err) {
      await source.close();
      throw err;
    }
  }

  /**
   * The fetch scheduler of every image read from `host`: one concurrency cap and one
   * background budget for them all, and background fetch waits for any of their reads.
   * The first mount's fetch settings make it.
   */
  private hostScheduler(host: string, config: Config): FetchScheduler {
    let s = this.schedulers.get(host);
    if (s === undefined) {
      s = new FetchScheduler({ concurrency: config.fetch.concurrency, backgroundBytesPerSec: config.fetch.backgroundBytesPerSec });
      this.schedulers.set(host, s);
    }
    return s;
  }

  /**
   * `ref` through the registry client this configuration's mounts share (connections and
   * tokens stay warm between mounts), its manifest resolved once per RESOLVED_TTL_MS: a
   * runtime mounts an image's layers one by one, each a mount of its own. Closing or
   * aborting the source leaves the shared client alone.
   */
  private registrySource(ref: string, config: Config): ImageSource {
    const { source, resolve } = this.registry(ref, config);
    return {
      resolve: (platform) => resolve(platform),
      configPlatform: (c) => source.configPlatform(c),
      blob: (d) => source.blob(d),
      close: async () => {},
      hostStats: () => source.hostStats(),
    };
  }

  private registry(ref: string, config: Config): { source: RegistrySource; resolve: (platform: string, fresh?: boolean) => Promise<ResolvedImage> } {
    const key = JSON.stringify(config.http);
    let client = this.clients.get(key);
    if (client === undefined) {
      client = registryClient(config.http, this.log);
      this.clients.set(key, client);
    }
    const source = new RegistrySource(ref, client);
    const resolve = (platform: string, fresh = false): Promise<ResolvedImage> => {
      const k = `${key}\0${ref}\0${platform}`;
      const hit = this.resolved.get(k);
      if (!fresh && hit !== undefined && Date.now() - hit.at < RESOLVED_TTL_MS) return hit.image;
      const image = source.resolve(platform);
      this.resolved.set(k, { at: Date.now(), image });
      image.catch(() => this.resolved.delete(k));
      return image;
    };
    return { source, resolve };
  }

  /**
   * What a runtime that pulls `ref` itself needs to know of it without a mount (the layer
   * store's `info` and `blob`): its manifest (resolved as the mounts resolve it), its
   * config's diff_ids, fetched once asked for, and its blobs. `fresh` resolves the tag again.
   */
  async describeImage(config: Config, ref: string, fresh = false): Promise<ImageDescription> {
    if (isOciRef(ref)) throw new ImageError('only registry images are described', { path: ref });
    const { source, resolve } = this.registry(ref, config);
    const resolved = await resolve(config.image.platform, fresh);
    let diffIds: Promise<readonly string[]> | undefined;
    return {
      resolved,
      diffIds: () => (diffIds ??= source.smallBlob(resolved.config).then((bytes) => {
        const rootfs = parseJson(bytes, `config ${resolved.config.digest}`)['rootfs'] as { diff_ids?: unknown } | undefined;
        const ids = Array.isArray(rootfs?.diff_ids) ? rootfs.diff_ids.filter((d): d is string => typeof d === 'string') : [];
        if (ids.length !== resolved.layers.length) throw new ImageError(`config ${resolved.config.digest} lists ${ids.length} diff_ids for ${resolved.layers.length} layers`);
        return ids;
      })),
      blob: (desc) => source.blob(desc),
    };
  }

  async close(): Promise<void> {
    for (const s of this.schedulers.values()) s.close();
    await Promise.all([...this.clients.values()].map((c) => c.close()));
    await this.cache.drain();
    this.cache.close();
    this.db.close();
  }
}
