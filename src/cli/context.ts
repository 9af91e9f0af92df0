// Wiring for one-shot commands: config → logger → meta.db → image source → OpenImage.
// This file and main.ts are the only places that construct instances.
import { join } from 'node:path';
import type { Config } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { isOciRef, OciLayoutSource } from '../http/oci-layout.js';
import { RegistryClient } from '../http/registry-client.js';
import { RegistrySource } from '../http/registry-source.js';
import { DockerConfigCredentials } from '../http/credentials.js';
import { InodeTable, openMetaDb } from '../toc/inode-db.js';
import { LayerIndexer } from '../toc/layer-index.js';
import { ChunkStore } from '../chunkcache/chunk-store.js';
import { OpenImage, type ImageSource } from '../layer/image.js';
import { ProfileStore } from '../layer/profile.js';
import type { ImageView } from '../toc/view.js';
import type { OverlayEncoding } from '../toc/layer-view.js';

export interface CommandContext {
  readonly config: Config;
  readonly log: Logger;
  readonly image: OpenImage;
  readonly table: InodeTable;
  readonly profiles: ProfileStore;
}

async function openSource(ref: string, config: Config, log: Logger): Promise<ImageSource> {
  if (isOciRef(ref)) return OciLayoutSource.open(ref);
  const client = new RegistryClient(config.http, new DockerConfigCredentials(config.http.dockerConfigDir, log), log);
  return new RegistrySource(ref, client);
}

export async function withImage<T>(config: Config, ref: string, fn: (ctx: CommandContext) => Promise<T>): Promise<T> {
  const log = createLogger(config.log.level);
  const dbFile = join(config.state.root, 'meta.db');
  const db = openMetaDb(dbFile);
  let source: ImageSource | undefined;
  let cache: ChunkStore | undefined;
  let opened: OpenImage | undefined;
  try {
    source = await openSource(ref, config, log);
    const table = new InodeTable(db);
    const store = new ChunkStore(db, { root: config.state.root, ...config.cache, writeBehind: true }, log);
    cache = store;
    const indexer = new LayerIndexer(db, dbFile, table, config.toc, log, (digest, data) => store.put(digest, data));
    const profiles = new ProfileStore(db);
    const image = await OpenImage.open(source, config.image.platform, indexer, table, log, { fetch: config.fetch, cache: store, profiles });
    opened = image;
    for (const l of image.layers) {
      if (l.row !== undefined && l.row.verified !== 1) {
        process.stderr.write(`stargzfs: warning: layer ${l.index} (${l.desc.digest}) is UNVERIFIED: its TOC has no digest annotation\n`);
      }
    }
    return await fn({ config, log, image, table, profiles });
  } finally {
    opened?.close();
    await cache?.drain();
    cache?.close();
    await source?.close();
    db.close();
  }
}

/** The chunk cache alone, for `stargzfs cache …`. */
export async function withCache<T>(config: Config, fn: (cache: ChunkStore) => Promise<T>): Promise<T> {
  const log = createLogger(config.log.level);
  const db = openMetaDb(join(config.state.root, 'meta.db'));
  const cache = new ChunkStore(db, { root: config.state.root, ...config.cache }, log);
  try {
    return await fn(cache);
  } finally {
    cache.close();
    db.close();
  }
}

export interface ViewOptions {
  layer?: string | undefined;
  overlay?: string | undefined;
}

/** The merged view, or one layer's with `--layer`. */
export function selectView(image: OpenImage, opts: ViewOptions): ImageView {
  if (opts.layer === undefined) return image.merged();
  return image.layer(opts.layer, (opts.overlay ?? 'none') as OverlayEncoding);
}
