// The long-running service: many mounts in one process over one state (meta.db, chunk
// cache, TOC index), so that a mount costs a lookup and a FUSE mount, not a process start.
// Mounts come from the control socket (`stargzfs mount` hands them over) and from the
// runtime adapters (the containerd snapshotter); each is a MountedImage.
import type { Logger } from '../log.js';
import type { Config } from '../config.js';
import { ImageError, NotFoundError } from '../errors.js';
import { MountedImage, type MountParts, type MountSpec } from './mounted-image.js';
import type { Descriptor, ResolvedImage } from '../http/image.js';
import type { BlobReader } from '../toc/blob.js';
import type { Handover } from '../fs/fuse-binding.js';
import { detach } from './mountpoint.js';

/** A mount as the control socket or an adapter asks for it. */
export interface MountRequest {
  readonly src: string;
  readonly spec: MountSpec;
  /** This mount's configuration: the service's defaults with the request's own options over them. */
  readonly config: Config;
  /** Open only this layer (a digest) of the image, and only if it is lazily readable (a runtime adapter's layer mount). */
  readonly onlyLayer?: string | undefined;
}

export interface OpenedImage {
  readonly parts: MountParts;
  close(): Promise<void>;
}

/** An image as a runtime that pulls it itself sees it (the layer store), without a mount. */
export interface ImageDescription {
  readonly resolved: ResolvedImage;
  /** The config's rootfs.diff_ids, base layer first (one fetch, when first asked). */
  diffIds(): Promise<readonly string[]>;
  /** A layer blob's bytes as the registry serves them (unchecked: the caller verifies). */
  blob(desc: Descriptor): BlobReader;
}

/** A live mount handed to this process (an earlier server of it died, or is being upgraded). */
export interface HandedMount {
  readonly key: string;
  readonly state: { readonly owner: Record<string, unknown> };
  readonly handover: Handover;
}

/**
 * Who keeps the service's mounts across its death or an upgrade (the supervisor,
 * src/supervisor/link.ts; the composition root gives it): a mount is held once it serves,
 * let go when it ends, and handed to the next server, which serves it as it is.
 */
export interface MountHolder {
  adopt(key: string): HandedMount | undefined;
  unclaimed(): string[];
  hold(key: string, state: { readonly minor: number; readonly passthrough: boolean; readonly owner: Record<string, unknown> }, h: Handover): void;
  drop(key: string): void;
  /** A handed-over mount this server cannot serve: its descriptors closed, the supervisor lets go. */
  abandon(a: HandedMount): void;
}

export interface ServiceDeps {
  readonly log: Logger;
  /** Opens an image over the service's shared state (the composition root builds it); `resolved`: the image a handed-over mount shows, no registry round trip. */
  openImage(config: Config, src: string, opts: { layer?: string; prefetching?: boolean; ahead?: boolean; resolved?: ResolvedImage | undefined }): Promise<OpenedImage>;
  /** Resolves an image over the service's registry clients (`fresh`: the tag again, not the minute-old answer). */
  describeImage(config: Config, src: string, fresh?: boolean): Promise<ImageDescription>;
  /** What status.json says about the service (its pid, its control socket). */
  readonly identity: Record<string, unknown>;
  /** Keeps the mounts across a death or an upgrade of this process; none when absent. */
  readonly holder?: MountHolder | undefined;
}

/** A runtime adapter the service runs beside its control socket (containerd's snapshotter): started after the service, stopped before it. */
export interface ServiceAdapter {
  readonly name: string;
  close(): Promise<void>;
  status(): Record<string, unknown>;
}

export interface MountInfo {
  readonly mountpoint: string;
  readonly image: string;
  readonly manifest: string;
  readonly layer: string | null;
  readonly startedAt: string;
}

interface Entry {
  readonly mounted: MountedImage;
  /** Handed over by the supervisor (an earlier server made it): a mount request for it again is answered as done. */
  readonly adopted: boolean;
  readonly opened: OpenedImage;
  /** Settles when the mount is gone and everything it held is closed. */
  readonly gone: Promise<void>;
}

export class Service {
  private readonly mounts = new Map<string, Entry>();
  /** Mountpoints being mounted now: a second request for one waits for the first to settle. */
  private readonly starting = new Map<string, Promise<unknown>>();
  private readonly preindexing = new Map<string, Promise<void>>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly deps: ServiceDeps) {
    this.log = deps.log.child({ mod: 'service' });
  }

  /**
   * Mounts and returns once the tree is visible. Errors name the image, layer or
   * mountpoint. A live mount the supervisor handed over at that mountpoint is served as it
   * is (no new mount), and asking for it again once served answers as done.
   */
  async mount(req: MountRequest, handed?: HandedMount): Promise<MountInfo> {
    if (this.closed) throw new ImageError('the service is stopping');
    const at = req.spec.mountpoint;
    await this.starting.get(at)?.catch(() => undefined);
    const e = this.mounts.get(at);
    if (e !== undefined) {
      if (e.adopted && (e.mounted.spec.layer ?? null) === (req.spec.layer ?? null) && handed === undefined) return this.info(at, e.mounted);
      throw new ImageError('already a mount of this service (unmount it first)', { path: at });
    }
    const starting = this.start(req, handed ?? this.deps.holder?.adopt(at));
    this.starting.set(at, starting);
    try {
      return await starting;
    } finally {
      this.starting.delete(at);
    }
  }

  private async start(req: MountRequest, handed: HandedMount | undefined): Promise<MountInfo> {
    const t0 = performance.now();
    const at = req.spec.mountpoint;
    let opened: OpenedImage;
    let mounted: MountedImage;
    try {
      const resolved = handed?.state.owner['resolved'] as ResolvedImage | undefined;
      opened = await this.deps.openImage(req.config, req.src, { ...(req.onlyLayer !== undefined ? { layer: req.onlyLayer } : {}), resolved });
      try {
        mounted = await MountedImage.start(opened.parts, req.spec, () => ({ service: this.deps.identity }), handed?.handover);
      } catch (err) {
        await opened.close();
        throw err;
      }
    } catch (err) {
      if (handed !== undefined) this.abandon(handed, err);
      throw err;
    }
    const gone = mounted.ended.then(async (why) => {
      this.log.info({ mountpoint: at, why }, 'mount ended');
      try {
        this.deps.holder?.drop(at);
      } catch (err) {
        this.log.warn({ err, mountpoint: at }, 'the supervisor was not told the mount ended');
      }
      await mounted.close();
      await opened.close();
      if (this.mounts.get(at)?.mounted === mounted) this.mounts.delete(at);
    });
    this.mounts.set(at, { mounted, opened, gone, adopted: handed !== undefined });
    void this.hold(req, mounted);
    this.log.info({ mountpoint: at, image: opened.parts.image.resolved.ref, layer: req.spec.layer, adopted: handed !== undefined, ms: Math.round(performance.now() - t0) }, 'mounted');
    return this.info(at, mounted);
  }

  /** The supervisor holds the mount from now on, with what a next server needs to serve it (the request, the image as resolved). */
  private async hold(req: MountRequest, mounted: MountedImage): Promise<void> {
    const holder = this.deps.holder;
    if (holder === undefined) return;
    const at = req.spec.mountpoint;
    try {
      const h = await mounted.handover();
      if (this.mounts.get(at)?.mounted !== mounted) return;
      const owner = { kind: 'service', src: req.src, spec: req.spec, onlyLayer: req.onlyLayer ?? null, config: req.config, resolved: mounted.image.resolved };
      holder.hold(at, { minor: h.minor, passthrough: h.passthrough, owner }, h);
    } catch (err) {
      this.log.warn({ err, mountpoint: at }, 'the supervisor does not hold this mount: if the service dies, it dies with it');
    }
  }

  /** A handed-over mount this server cannot serve: let go, and detached (its readers get ENOTCONN, not a wait). */
  private abandon(h: HandedMount, why: unknown): void {
    this.log.error({ err: why, mountpoint: h.key }, 'a mount handed over by the supervisor cannot be served; detaching it');
    try {
      this.deps.holder?.abandon(h);
    } finally {
      try {
        detach(h.key);
      } catch {
        // gone already
      }
    }
  }

  /**
   * Serves every mount the supervisor handed over that no adapter asked for yet (the
   * `mount` hand-offs; adapters' own restores then find theirs served). Before the adapters start.
   */
  async adoptAll(): Promise<void> {
    const holder = this.deps.holder;
    if (holder === undefined) return;
    await Promise.all(holder.unclaimed().map(async (key) => {
      const h = holder.adopt(key);
      if (h === undefined) return;
      const o = h.state.owner;
      if (o['kind'] !== 'service' || typeof o['src'] !== 'string') return this.abandon(h, new ImageError('not a mount of the service'));
      const req: MountRequest = { src: o['src'], spec: o['spec'] as MountSpec, config: o['config'] as Config, onlyLayer: (o['onlyLayer'] as string | null) ?? undefined };
      await this.mount(req, h).catch((err: unknown) => this.log.warn({ err, mountpoint: key }, 'a handed-over mount was not served'));
    }));
  }

  private info(mountpoint: string, m: MountedImage): MountInfo {
    return {
      mountpoint,
      image: m.image.resolved.ref,
      manifest: m.image.resolved.manifestDigest,
      layer: m.spec.layer ?? null,
      startedAt: m.startedAt,
    };
  }

  /**
   * Detaches the mount: open files finish, and the session ends when the last one is
   * closed. Waits until then unless `wait` is false.
   */
  async unmount(mountpoint: string, opts: { wait?: boolean } = {}): Promise<void> {
    await this.starting.get(mountpoint)?.catch(() => undefined);
    const e = this.mounts.get(mountpoint);
    if (e === undefined) throw notMounted(mountpoint);
    e.mounted.detach(false);
    if (opts.wait !== false) await e.gone;
  }

  /**
   * Fetches and indexes one layer's TOC without mounting it (a runtime about to ask for
   * it: its mount then finds the index in meta.db). Concurrent calls for a layer share
   * one; errors are the mount's to report, not this one's.
   */
  preindex(config: Config, src: string, layer: string): Promise<void> {
    const key = `${src}\0${layer}`;
    let p = this.preindexing.get(key);
    if (p === undefined) {
      p = this.deps.openImage(config, src, { layer, prefetching: false, ahead: true }).then(
        (opened) => opened.close(),
        (err: unknown) => this.log.debug({ err, src, layer }, 'layer not indexed ahead'),
      ).finally(() => this.preindexing.delete(key));
      this.preindexing.set(key, p);
    }
    return p;
  }

  describe(config: Config, src: string, fresh = false): Promise<ImageDescription> {
    if (this.closed) return Promise.reject(new ImageError('the service is stopping'));
    return this.deps.describeImage(config, src, fresh);
  }

  /** The preindex() of that layer still running, if any. */
  indexing(src: string, layer: string): Promise<void> | undefined {
    return this.preindexing.get(`${src}\0${layer}`);
  }

  has(mountpoint: string): boolean {
    return this.mounts.has(mountpoint);
  }

  list(): MountInfo[] {
    return [...this.mounts.entries()].map(([at, e]) => this.info(at, e.mounted));
  }

  status(mountpoint: string): Record<string, unknown> {
    const e = this.mounts.get(mountpoint);
    if (e === undefined) throw notMounted(mountpoint);
    return e.mounted.status({ service: this.deps.identity });
  }

  /**
   * Unmounts everything: reads fail with EIO from now on (a stop is a stop), the sessions
   * end once readers let go or after `graceMs`.
   */
  async close(graceMs: number): Promise<void> {
    this.closed = true;
    await Promise.all([...this.starting.values()].map((p) => p.catch(() => undefined)));
    const entries = [...this.mounts.values()];
    for (const e of entries) e.mounted.detach(true);
    const timer = setTimeout(() => {
      for (const e of entries) e.mounted.end();
    }, graceMs);
    try {
      await Promise.all(entries.map((e) => e.gone.catch((err: unknown) => this.log.warn({ err }, 'a mount did not close cleanly'))));
    } finally {
      clearTimeout(timer);
    }
  }
}

const notMounted = (mountpoint: string): NotFoundError => new NotFoundError({ path: `${mountpoint} (no mount of this service there)` });
