// Wiring for one-shot commands: config → logger → meta.db → image source → OpenImage.
// This file and main.ts are the only places that construct instances.
import { existsSync } from 'node:fs';
import { mkdir, stat } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import type { Config } from '../config.js';
import { createLogger, type Logger } from '../log.js';
import { isOciRef, OciLayoutSource, parseOciRef } from '../http/oci-layout.js';
import type { ResolvedImage } from '../http/image.js';
import { parsePlatform } from '../http/image.js';
import { formatImageRef, parseImageRef } from '../http/reference.js';
import { ImageReferenceError } from '../errors.js';
import type { ImageStore } from '../convert/input.js';
import { DirFiles, TarFiles } from '../convert/files.js';
import { LayoutStore } from '../convert/layout-store.js';
import { DockerArchiveStore } from '../convert/docker-archive.js';
import { DirStore } from '../convert/dir-store.js';
import { RegistryStore } from '../convert/registry-store.js';
import { LayoutSink, RegistrySink, type ImageSink } from '../convert/output.js';
import { Converter, type ConvertOptions, type ConvertProgress } from '../convert/convert.js';
import { RegistrySource } from '../http/registry-source.js';
import { registryClient } from './registry.js';
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
  /** The chunk cache (a mount's status shows how its writes go). */
  readonly cache: ChunkStore;
}

async function openSource(ref: string, config: Config, log: Logger): Promise<ImageSource> {
  if (isOciRef(ref)) return OciLayoutSource.open(ref);
  const client = registryClient(config.http, log);
  return new RegistrySource(ref, client);
}

export async function withImage<T>(
  config: Config,
  ref: string,
  fn: (ctx: CommandContext) => Promise<T>,
  opts: { prefetching?: boolean; resolved?: ResolvedImage | undefined } = {},
): Promise<T> {
  const log = createLogger(config.log.level, undefined, config.log.pretty);
  log.debug({ uptimeMs: Math.round(performance.now()) }, 'command starting');
  const dbFile = join(config.state.root, 'meta.db');
  let db: Database.Database | undefined;
  let source: ImageSource | undefined;
  let cache: ChunkStore | undefined;
  let opened: OpenImage | undefined;
  try {
    source = await openSource(ref, config, log);
    // The manifest request goes out first, and the state opens (synchronously, some 20 ms)
    // while it is on the wire: one turn of the event loop lets the connection complete
    // and the request be written before that.
    // Already resolved (a new server of a live mount: the image the mount shows, with no
    // registry round trip, and none needed if the registry is away).
    const resolving = opts.resolved !== undefined ? Promise.resolve(opts.resolved) : source.resolve(config.image.platform);
    resolving.catch(() => undefined); // awaited (and reported) by OpenImage.open
    await new Promise((next) => setImmediate(next));
    db = openMetaDb(dbFile);
    const table = new InodeTable(db);
    const store = new ChunkStore(db, { root: config.state.root, ...config.cache, writeBehind: true }, log);
    cache = store;
    const indexer = new LayerIndexer(db, dbFile, table, config.toc, log, (digest, data) => store.put(digest, data));
    const profiles = new ProfileStore(db);
    const image = await OpenImage.open(source, resolving, indexer, table, log, { fetch: config.fetch, cache: store, profiles, prefetching: opts.prefetching === true });
    opened = image;
    if (!isOciRef(ref)) {
      try {
        profiles.rememberRef(ref, image.resolved.manifestDigest);
      } catch (err) {
        log.debug({ err }, 'the image this reference names not noted; the next mount resolves it first');
      }
    }
    for (const l of image.layers) {
      if (l.row !== undefined && l.row.verified !== 1) {
        process.stderr.write(`stargzfs: warning: layer ${l.index} (${l.desc.digest}) is UNVERIFIED: its TOC has no digest annotation\n`);
      }
    }
    return await fn({ config, log, image, table, profiles, cache: store });
  } finally {
    opened?.close();
    await cache?.drain();
    cache?.close();
    await source?.close();
    db?.close();
  }
}

/** The chunk cache alone, for `stargzfs cache …`. */
export async function withCache<T>(config: Config, fn: (cache: ChunkStore) => Promise<T>): Promise<T> {
  const log = createLogger(config.log.level, undefined, config.log.pretty);
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

/**
 * convert's input: `oci:DIR[:TAG|@DIGEST]`, `oci-archive:FILE[:TAG]`,
 * `docker-archive:FILE[:TAG]`, `dir:DIR`, an existing path (a tar file: OCI archive or
 * docker save; a directory: OCI layout or root filesystem), or an image reference.
 */
export async function openConvertStore(src: string, config: Config, log: Logger): Promise<ImageStore> {
  const platform = parsePlatform(config.image.platform);
  const [scheme, rest] = splitScheme(src);
  if (scheme === 'oci') {
    const ref = await parseOciRef(src);
    return new LayoutStore(new DirFiles(ref.dir), { tag: ref.tag, digest: ref.digest });
  }
  if (scheme === 'oci-archive' || scheme === 'docker-archive') {
    const { path, tag } = splitTag(rest);
    const files = await TarFiles.open(path);
    return scheme === 'oci-archive' ? new LayoutStore(files, { tag }) : new DockerArchiveStore(files, tag);
  }
  if (scheme === 'dir') return new DirStore(rest, platform);
  const s = await stat(src).catch(() => undefined);
  if (s?.isFile() === true) {
    const files = await TarFiles.open(src);
    return (await files.read('oci-layout')) !== undefined ? new LayoutStore(files, {}) : new DockerArchiveStore(files, undefined);
  }
  if (s?.isDirectory() === true) {
    return existsSync(join(src, 'oci-layout')) ? new LayoutStore(new DirFiles(src), {}) : new DirStore(src, platform);
  }
  const client = registryClient(config.http, log);
  return new RegistryStore(new RegistrySource(src, client));
}

/** convert's output: `oci:DIR[:TAG]` or an image reference (tag `latest` when none is given). */
export async function openConvertSink(dst: string, config: Config, log: Logger): Promise<{ sink: ImageSink; close: () => Promise<void> }> {
  if (isOciRef(dst)) {
    const ref = await parseOciRef(dst);
    if (ref.digest !== undefined) throw new ImageReferenceError(`${dst}: name the output with a tag, not a digest`);
    return { sink: new LayoutSink(ref.dir, ref.tag), close: async () => {} };
  }
  const ref = parseImageRef(dst);
  if (ref.digest !== undefined) throw new ImageReferenceError(`${dst}: name the output with a tag, not a digest`);
  const client = registryClient(config.http, log);
  const target = { endpoint: ref.endpoint, registry: ref.registry, repository: ref.repository };
  return { sink: new RegistrySink(formatImageRef(ref), client, target, ref.tag ?? 'latest'), close: () => client.close() };
}

function splitScheme(src: string): [string | undefined, string] {
  const m = /^(oci|oci-archive|docker-archive|dir):(.*)$/s.exec(src);
  return m === null ? [undefined, src] : [m[1], m[2] as string];
}

/** `FILE[:TAG]`, where a tag may hold colons itself (`repo:tag`): the longest existing FILE wins. */
function splitTag(s: string): { path: string; tag: string | undefined } {
  if (existsSync(s)) return { path: s, tag: undefined };
  for (let i = s.lastIndexOf(':'); i > 0; i = s.lastIndexOf(':', i - 1)) {
    if (existsSync(s.slice(0, i))) return { path: s.slice(0, i), tag: s.slice(i + 1) };
  }
  return { path: s, tag: undefined };
}

/** A Converter from `src` to `dst` with its tmp dir under the state root; everything closed after `fn`. */
export async function withConverter<T>(
  config: Config, src: string, dst: string, opts: Omit<ConvertOptions, 'tmpDir' | 'parallel'>, onProgress: (p: ConvertProgress) => void,
  fn: (converter: Converter) => Promise<T>,
): Promise<T> {
  const log = createLogger(config.log.level, undefined, config.log.pretty);
  const tmpDir = join(config.state.root, 'tmp');
  await mkdir(tmpDir, { recursive: true });
  const store = await openConvertStore(src, config, log);
  try {
    const out = await openConvertSink(dst, config, log);
    try {
      const parallel = Math.max(2, availableParallelism());
      return await fn(new Converter(store, out.sink, { ...opts, tmpDir, parallel }, log, onProgress));
    } finally {
      await out.close();
    }
  } finally {
    await store.close();
  }
}
