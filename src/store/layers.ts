// The layers of the additional layer store: which images podman asked about, which of
// their layers are mounted (each the overlayfs-ready view of one layer, mounted by the
// service at `<root>/layer-store/layers/<hex>`), how many times podman uses each, and when a
// released one is let go. Podman announces nothing: the first lookup of an image
// resolves it and starts mounting all its layers, so that each next lookup finds its
// layer ready.
import { createHash } from 'node:crypto';
import { mkdirSync, rmdirSync, rmSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Descriptor } from '../http/image.js';
import { ClosedError, DigestMismatchError, NotEstargzError, NotFoundError } from '../errors.js';
import type { ImageDescription, Service } from '../service/service.js';
import { LayerUses } from './uses.js';

/** How long an image's manifest answers lookups before it is resolved again (as the service's). */
const IMAGE_TTL_MS = 60_000;
/** A digest the image does not have resolves the tag again (it may have moved), at most this often. */
const REFRESH_MIN_MS = 5_000;
/** Bytes per ranged GET while a blob is copied for `blob` readers. */
const BLOB_PIECE = 8 << 20;
/** containers-storage's archive.Compression numbers. */
const GZIP = 2;
const ZSTD = 4;
const UNCOMPRESSED_SIZE = 'io.containers.estargz.uncompressed-size';

export interface StoreOptions {
  /** How long a layer nobody uses stays mounted, milliseconds. */
  readonly graceMs: number;
}

interface Layer {
  readonly digest: string;
  /** The reference it was last looked up under: its blobs are read through that repository. */
  ref: string;
  readonly mountpoint: string;
  /** Settles when the mount is up (or failed); undefined when not mounted. */
  mounting: Promise<void> | undefined;
  mounted: boolean;
  /** Why the layer cannot be read lazily: it is not mounted again, lookups answer ENOENT. */
  notLazy: string | undefined;
  releaseTimer: NodeJS.Timeout | undefined;
  /** Settles once a let-go mount is detached and its directory removed: a new mount waits for it. */
  going: Promise<void> | undefined;
  /** The blob, copied and checked, for `blob` readers; its open readers. */
  blobFile: Promise<string> | undefined;
  blobReaders: number;
}

export interface StoreLayerStatus {
  readonly digest: string;
  readonly refs: string[];
  readonly uses: number;
  readonly mounted: boolean;
  readonly mountpoint: string;
  readonly notLazy?: string;
}

/** Removes an empty directory; nothing if it is gone, busy or not empty (a mount still on it). */
function removeDir(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // gone already, or still a mountpoint: left as it is
  }
}

/** Creates the directory; a dead mount left on it (ENOTCONN) is the mount's to clear. */
function makeDir(path: string): void {
  try {
    mkdirSync(path, { recursive: true });
  } catch {
    // MountedImage detaches a dead mount itself, and names any other problem
  }
}

export class StoreLayers {
  private readonly images = new Map<string, { at: number; image: Promise<ImageDescription> }>();
  private readonly layers = new Map<string, Layer>();
  /** References each layer was looked up under. */
  private readonly refsOf = new Map<string, Set<string>>();
  private readonly uses: LayerUses;
  private readonly log: Logger;
  private readonly layersDir: string;
  private readonly blobsDir: string;
  private closed = false;

  constructor(private readonly service: Service, private readonly config: Config, private readonly dir: string, private readonly opts: StoreOptions, log: Logger) {
    this.log = log.child({ mod: 'store' });
    this.layersDir = join(dir, 'layers');
    this.blobsDir = join(dir, 'blobs');
    mkdirSync(this.layersDir, { recursive: true });
    // Copies of blobs are kept only while read: those of a service that stopped are stale.
    rmSync(this.blobsDir, { recursive: true, force: true });
    mkdirSync(this.blobsDir, { recursive: true });
    this.uses = new LayerUses(join(dir, 'uses.db'));
  }

  /**
   * Mounts again, in the background, every layer podman still uses (a restarted service):
   * lookups of them wait for their mount instead of resolving the image first.
   */
  restore(): void {
    for (const row of this.uses.inUse()) {
      this.log.info({ layer: row.digest, ref: row.ref, uses: row.uses }, 'mounting a layer in use again');
      void this.image(row.ref).then(
        (image) => {
          const desc = image.resolved.layers.find((l) => l.digest === row.digest);
          if (desc !== undefined) return this.mounted(row.ref, desc).then(() => undefined);
          return undefined;
        },
        () => undefined,
      );
    }
  }

  /**
   * The image `ref` names, resolved once a minute. Its layers not seen before start
   * mounting at once: podman looks them up one after another, and finds each ready. One
   * let go stays unmounted until it is looked up again.
   */
  image(ref: string, fresh = false): Promise<ImageDescription> {
    const hit = this.images.get(ref);
    if (!fresh && hit !== undefined && Date.now() - hit.at < IMAGE_TTL_MS) return hit.image;
    const image = this.service.describe(this.config, ref, fresh);
    this.images.set(ref, { at: Date.now(), image });
    image.then(
      (img) => {
        for (const desc of img.resolved.layers) if (!this.layers.has(desc.digest)) void this.mounted(ref, desc).catch(() => undefined);
        // `info` needs the config's diff_ids: fetched beside the TOCs, not after them.
        void img.diffIds().catch(() => undefined);
      },
      (err: unknown) => {
        this.images.delete(ref);
        this.log.warn({ ref, err: (err as Error).message }, 'image not resolved: its lookups answer ENOENT (podman pulls it)');
      },
    );
    return image;
  }

  /**
   * Layer `digest` of `ref`, mounted; undefined if the image has no such layer or it
   * cannot be read lazily (podman then pulls it). A tag that moved is resolved again once.
   */
  async layer(ref: string, digest: string): Promise<{ desc: Descriptor; index: number; image: ImageDescription } | undefined> {
    let image = await this.image(ref);
    let index = image.resolved.layers.findIndex((l) => l.digest === digest);
    if (index < 0 && Date.now() - (this.images.get(ref)?.at ?? 0) > REFRESH_MIN_MS) {
      image = await this.image(ref, true);
      index = image.resolved.layers.findIndex((l) => l.digest === digest);
    }
    if (index < 0) {
      this.log.info({ ref, layer: digest }, 'no such layer in the image: ENOENT');
      return undefined;
    }
    const desc = image.resolved.layers[index] as Descriptor;
    try {
      await this.mounted(ref, desc);
    } catch {
      return undefined;
    }
    return { desc, index, image };
  }

  /** The directory `diff` points at, mounted (again, if it was let go). */
  async diffTarget(ref: string, digest: string): Promise<string> {
    const l = await this.layer(ref, digest);
    if (l === undefined) throw new NotFoundError({ layer: digest, path: 'diff' });
    return this.mountpointOf(digest);
  }

  mountpointOf(digest: string): string {
    return join(this.layersDir, digest.replace(/^sha256:/, ''));
  }

  /** `info`: the layer record podman decodes (containers-storage's `Layer`), as the reference writes it. */
  async info(ref: string, digest: string): Promise<Buffer> {
    const l = await this.layer(ref, digest);
    if (l === undefined) throw new NotFoundError({ layer: digest, path: 'info' });
    const diffIds = await l.image.diffIds();
    const size = Number(l.desc.annotations?.[UNCOMPRESSED_SIZE] ?? 0);
    return Buffer.from(JSON.stringify({
      'compressed-diff-digest': digest,
      'compressed-size': l.desc.size,
      'diff-digest': diffIds[l.index],
      'diff-size': Number.isSafeInteger(size) && size > 0 ? size : 0,
      compression: l.desc.mediaType.includes('zstd') ? ZSTD : GZIP,
    }));
  }

  /**
   * A file holding the layer blob, copied from the registry once and checked against its
   * digest before anyone reads it (a ranged read cannot be checked, and `blob` is read
   * whole: a push, a save). Released with blobClosed(); gone when the layer is let go.
   */
  async blobOpened(ref: string, digest: string): Promise<string> {
    const l = await this.layer(ref, digest);
    const layer = this.layers.get(digest);
    if (l === undefined || layer === undefined) throw new NotFoundError({ layer: digest, path: 'blob' });
    layer.blobReaders++;
    layer.blobFile ??= this.copyBlob(l.image, l.desc).catch((err: unknown) => {
      layer.blobFile = undefined;
      throw err;
    });
    try {
      return await layer.blobFile;
    } catch (err) {
      layer.blobReaders--;
      throw err;
    }
  }

  blobClosed(digest: string): void {
    const layer = this.layers.get(digest);
    if (layer !== undefined) layer.blobReaders = Math.max(0, layer.blobReaders - 1);
  }

  private async copyBlob(image: ImageDescription, desc: Descriptor): Promise<string> {
    const file = join(this.blobsDir, desc.digest.replace(/^sha256:/, ''));
    const part = `${file}.part`;
    const reader = image.blob(desc);
    const hash = createHash('sha256');
    const fh = await open(part, 'w', 0o600);
    try {
      for (let off = 0; off < desc.size; off += BLOB_PIECE) {
        const piece = await reader.readAt(off, Math.min(BLOB_PIECE, desc.size - off));
        hash.update(piece);
        await fh.write(piece, 0, piece.length, off);
      }
    } finally {
      await fh.close();
    }
    const got = `sha256:${hash.digest('hex')}`;
    if (got !== desc.digest) {
      await rm(part, { force: true });
      throw new DigestMismatchError('layer blob', desc.digest, got, { layer: desc.digest });
    }
    await rename(part, file);
    this.log.info({ layer: desc.digest, bytes: desc.size }, 'layer blob copied for a reader of `blob`');
    return file;
  }

  /** podman took the layer into use (it created `use`). */
  use(ref: string, digest: string): void {
    const n = this.uses.add(digest, ref);
    const l = this.layers.get(digest);
    if (l?.releaseTimer !== undefined) {
      clearTimeout(l.releaseTimer);
      l.releaseTimer = undefined;
    }
    this.log.debug({ layer: digest, uses: n }, 'layer used');
  }

  /** podman let the layer go (rmdir of its directory). */
  release(digest: string): void {
    const n = this.uses.release(digest);
    this.log.debug({ layer: digest, uses: n }, 'layer released');
    if (n === 0) this.releaseLater(digest);
  }

  /** Mounts the layer unless it is; concurrent calls share one mount. */
  private mounted(ref: string, desc: Descriptor): Promise<void> {
    if (this.closed) return Promise.reject(new ClosedError('the layer store'));
    let refs = this.refsOf.get(desc.digest);
    if (refs === undefined) this.refsOf.set(desc.digest, (refs = new Set()));
    refs.add(ref);
    let l = this.layers.get(desc.digest);
    if (l === undefined) {
      l = { digest: desc.digest, ref, mountpoint: this.mountpointOf(desc.digest), mounting: undefined, mounted: false, notLazy: undefined, releaseTimer: undefined, going: undefined, blobFile: undefined, blobReaders: 0 };
      this.layers.set(desc.digest, l);
    }
    const layer = l;
    if (layer.notLazy !== undefined) return Promise.reject(new NotEstargzError(layer.notLazy, { layer: desc.digest }));
    if (layer.mounting !== undefined && (!layer.mounted || this.service.has(layer.mountpoint))) return layer.mounting;
    layer.ref = ref;
    layer.mounted = false;
    const t0 = performance.now();
    layer.mounting = (async () => {
      await layer.going;
      makeDir(layer.mountpoint);
      await this.service.mount({
        src: ref,
        spec: { mountpoint: layer.mountpoint, layer: desc.digest, overlay: 'trusted', allowOther: true },
        config: this.config,
        onlyLayer: desc.digest,
      });
      layer.mounted = true;
      this.log.info({ layer: desc.digest, ref, ms: Math.round(performance.now() - t0) }, 'layer mounted');
      if (this.uses.get(desc.digest) === 0) this.releaseLater(desc.digest);
    })().catch((err: unknown) => {
      layer.mounting = undefined;
      removeDir(layer.mountpoint);
      if (err instanceof NotEstargzError) {
        layer.notLazy = err.reason;
        this.log.info({ layer: desc.digest, ref }, `${err.message}: podman pulls it`);
      } else {
        this.log.warn({ layer: desc.digest, ref, err: (err as Error).message }, 'layer not mounted: ENOENT (podman pulls it)');
      }
      throw err;
    });
    return layer.mounting;
  }

  /** Lets the layer go after the grace period, unless podman uses it again meanwhile. */
  private releaseLater(digest: string): void {
    const l = this.layers.get(digest);
    if (l === undefined || this.closed) return;
    if (l.releaseTimer !== undefined) clearTimeout(l.releaseTimer);
    l.releaseTimer = setTimeout(() => {
      l.releaseTimer = undefined;
      if (this.uses.get(digest) > 0 || l.blobReaders > 0) return;
      void this.letGo(l);
    }, this.opts.graceMs);
    l.releaseTimer.unref();
  }

  private async letGo(l: Layer): Promise<void> {
    const mounting = l.mounting;
    if (mounting === undefined) return;
    await mounting.catch(() => undefined);
    if (l.mounting !== mounting || this.uses.get(l.digest) > 0) return;
    // From here a lookup mounts it anew, once this detach is done.
    l.mounting = undefined;
    l.mounted = false;
    l.blobFile = undefined;
    const going = (async () => {
      try {
        if (this.service.has(l.mountpoint)) await this.service.unmount(l.mountpoint, { wait: false });
        // No directory left behind: a `diff` followed after this finds nothing, never an empty layer.
        removeDir(l.mountpoint);
        await rm(join(this.blobsDir, l.digest.replace(/^sha256:/, '')), { force: true });
        this.log.info({ layer: l.digest }, 'layer let go (unused)');
      } catch (err) {
        this.log.warn({ layer: l.digest, err: (err as Error).message }, 'layer not let go');
      }
    })();
    l.going = going;
    await going;
    if (l.going === going) l.going = undefined;
  }

  status(): StoreLayerStatus[] {
    return [...this.layers.values()].map((l) => ({
      digest: l.digest,
      refs: [...(this.refsOf.get(l.digest) ?? [])],
      uses: this.uses.get(l.digest),
      mounted: l.mounted && this.service.has(l.mountpoint),
      mountpoint: l.mountpoint,
      ...(l.notLazy !== undefined ? { notLazy: l.notLazy } : {}),
    }));
  }

  /** Stops letting layers go; the service unmounts them as it stops. */
  close(): void {
    this.closed = true;
    for (const l of this.layers.values()) if (l.releaseTimer !== undefined) clearTimeout(l.releaseTimer);
    this.uses.close();
  }
}
