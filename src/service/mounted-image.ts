// One image (or one of its layers) served at a mountpoint: the FUSE session over its view,
// prefetch and background fetch behind the reads, status.json, metrics, and an orderly end.
// A one-process `stargzfs mount` runs one of these; the service runs many in one process.
// What belongs to the process (signals, the launcher's ready pipe, the heap) stays with
// whoever runs it.
import { constants } from 'node:os';
import type { Logger } from '../log.js';
import type { OpenImage } from '../layer/image.js';
import type { InodeTable } from '../toc/inode-db.js';
import type { ChunkStore } from '../chunkcache/chunk-store.js';
import type { OverlayEncoding } from '../toc/layer-view.js';
import type { MountMetrics } from '../metrics/metrics.js';
import type { FuseSession, Handover } from '../fs/fuse-binding.js';
import { FsOperations } from '../fs/operations.js';
import { WholeFiles } from '../layer/whole-file.js';
import { mountFs } from '../fs/mount.js';
import { inspectReport } from '../layer/report.js';
import { MountpointBusyError, NotADirectoryError } from '../errors.js';
import { detach, isDeadMount, isDirectory, mountInfo, setReadAhead } from './mountpoint.js';

const { EIO } = constants.errno;

/** How long reads still running when the session ends may take to settle before the image closes under them. */
const READ_DRAIN_MS = 5_000;

export interface MountSpec {
  /** Absolute path of an existing directory. */
  readonly mountpoint: string;
  /** One layer's view (index or digest prefix) instead of the merged image. */
  readonly layer?: string | undefined;
  /** With `layer`: whiteouts and opaque dirs as overlayfs reads them. */
  readonly overlay?: OverlayEncoding | undefined;
  readonly allowOther: boolean;
  /** Serve Prometheus metrics here (HOST:PORT, :PORT, unix:PATH). */
  readonly metrics?: string | undefined;
  /** Passthrough reads of fully cached files (config.fuse.passthrough). */
  readonly passthrough?: boolean | undefined;
}

/** What a mount is made of; the image and what it reads through stay the caller's to close, after the mount ended. */
export interface MountParts {
  readonly image: OpenImage;
  readonly table: InodeTable;
  readonly cache: ChunkStore;
  readonly log: Logger;
}

/** The mount's metrics, read from the counters the image and the registry client keep. */
async function mountMetrics(image: OpenImage, opens: () => { passthrough: number; cached: number }): Promise<MountMetrics> {
  // prom-client is loaded only for --metrics.
  const { MountMetrics } = await import('../metrics/metrics.js');
  const metrics = new MountMetrics({
    layers: () => {
      const progress = new Map(image.progress.snapshot().map((p) => [p.digest, p]));
      return image.layers.map((l) => {
        const p = progress.get(l.desc.digest);
        const c = l.row !== undefined ? image.reader.stats(l.row.id) : undefined;
        return {
          index: l.index, digest: l.desc.digest, totalBytes: p?.totalBytes ?? l.desc.size, progressBytes: p?.fetchedBytes ?? 0, phases: p?.phases,
          requests: c?.requests ?? 0, fetchedBytes: c?.bytesFetched ?? 0, servedBytes: c?.bytesServed ?? 0, cacheHits: c?.cacheHits ?? 0, cacheMisses: c?.cacheMisses ?? 0,
        };
      });
    },
    hosts: () => image.hostStats(),
    opens,
  });
  image.progress.on((e) => {
    if (e.type === 'fetched') metrics.observeFetch(e.priority, e.ms / 1000, e.bytes);
  });
  return metrics;
}

/** What /.stargzfs/status.json and `stargzfs status` show. */
export function mountStatus(parts: MountParts, mountpoint: string, startedAt: string, extra: object = {}): Record<string, unknown> {
  const { image, table } = parts;
  const report = inspectReport(image, table);
  const progress = new Map(image.progress.snapshot().map((p) => [p.digest, p]));
  return {
    mountpoint,
    pid: process.pid,
    startedAt,
    image: report.ref,
    manifest: report.manifest,
    platform: report.platform,
    ...extra,
    layers: report.layers.map((l) => {
      const p = progress.get(l.digest);
      const row = image.layers[l.index]?.row;
      const counters = row !== undefined ? image.reader.stats(row.id) : undefined;
      return {
        index: l.index,
        digest: l.digest,
        format: l.notLazyReason !== null ? 'plain' : l.format,
        verified: l.verified,
        lazy: l.notLazyReason === null && l.error === null,
        notLazyReason: l.notLazyReason,
        fetchedBytes: p?.fetchedBytes ?? 0,
        transferredBytes: p?.transferredBytes ?? 0,
        totalBytes: p?.totalBytes ?? l.size,
        prefetch: p?.phases ?? null,
        servedBytes: counters?.bytesServed ?? 0,
        cacheHits: counters?.cacheHits ?? 0,
        cacheMisses: counters?.cacheMisses ?? 0,
        errors: p?.errors ?? 0,
        lastError: p?.lastError ?? (l.error !== null ? { code: l.error.code, message: l.error.message } : null),
      };
    }),
    cache: parts.cache.health(),
  };
}

export class MountedImage {
  /** Settles with why the session ended (unmounted by us, from outside, or the connection broke). */
  readonly ended: Promise<string>;
  /** Settles when prefetch and background fetch are over (never rejects). */
  readonly warmed: Promise<void>;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly spec: MountSpec,
    readonly startedAt: string,
    private readonly statusOf: (extra: object) => Record<string, unknown>,
    private readonly parts: MountParts,
    private readonly ops: FsOperations,
    private readonly session: FuseSession,
    ended: Promise<string>,
    private readonly init: Promise<void>,
    private readonly endpoint: { address: string; close(): Promise<void> } | undefined,
    private readonly log: Logger,
  ) {
    this.ended = ended;
    this.warmed = parts.image
      .warm()
      .then(() => undefined)
      .catch((err: unknown) => log.warn({ err }, 'prefetch stopped'));
  }

  /**
   * Mounts and starts serving; prefetch starts behind. `extraStatus` adds fields to
   * status.json (the service names itself there).
   */
  static async start(parts: MountParts, spec: MountSpec, extraStatus: () => object = () => ({}), adopt?: Handover): Promise<MountedImage> {
    const log = parts.log.child({ mod: 'mount', mountpoint: spec.mountpoint });
    const view = spec.layer === undefined ? parts.image.merged() : parts.image.layer(spec.layer, spec.overlay ?? 'none');
    let ended!: (why: string) => void;
    const exited = new Promise<string>((resolve) => { ended = resolve; });
    let initialised!: () => void;
    const init = new Promise<void>((resolve) => { initialised = resolve; });
    // A handed-over connection was initialised by the server that mounted it.
    if (adopt !== undefined) initialised();
    const metrics = spec.metrics !== undefined
      ? await mountMetrics(parts.image, () => {
        const p = ops.passthroughStatus();
        return { passthrough: p.opens, cached: p.cachedOpens, cachedWhy: p.cachedWhy };
      })
      : undefined;
    const endpoint = metrics !== undefined ? await (await import('../metrics/server.js')).serveMetrics(spec.metrics as string, metrics, log) : undefined;
    const startedAt = new Date().toISOString();
    const status = (extra: object): Record<string, unknown> =>
      ({ ...mountStatus(parts, spec.mountpoint, startedAt, extra), servedByAddon: ops.addonReads(), passthrough: ops.passthroughStatus(), recoveredInodes: ops.recoveredInodes(), metrics: endpoint?.address ?? null });
    const ops: FsOperations = new FsOperations(view, parts.image.reader, parts.log.child({ mod: 'fs' }), {
      observeOp: metrics !== undefined ? (op, seconds, errno) => metrics.observeOp(op, seconds, errno) : undefined,
      status: (): unknown => status(extraStatus()),
      onExit: (why) => {
        initialised();
        ended(why);
      },
      onInit: () => initialised(),
      onRequest: () => parts.image.scheduler.activity(),
      wholeFiles: new WholeFiles(parts.table, parts.cache),
      size: {
        bytes: parts.image.layers.reduce((n, l) => n + Number(l.desc.annotations?.['io.containers.estargz.uncompressed-size'] ?? l.desc.size), 0),
        files: parts.image.layers.reduce((n, l) => n + (l.row?.node_count ?? 0), 0),
      },
    });
    let session: FuseSession;
    try {
      // A handed-over mount is alive with nobody serving it: a stat of it would wait for us.
      if (adopt !== undefined) {
        session = mountFs(spec.mountpoint, ops, { allowOther: spec.allowOther, maxRead: 1 << 20, passthrough: spec.passthrough ?? true, adopt }, log);
        log.info({ image: parts.image.resolved.ref, layer: spec.layer, uptimeMs: Math.round(performance.now()) }, 'serving the mount an earlier server left (handed over by the supervisor)');
        return new MountedImage(spec, startedAt, status, parts, ops, session, exited, init, endpoint, log);
      }
      if (!isDeadMount(spec.mountpoint) && !isDirectory(spec.mountpoint)) {
        throw new NotADirectoryError({ path: `${spec.mountpoint} (the mountpoint must be an existing directory)` });
      }
      if (isDeadMount(spec.mountpoint)) {
        log.warn('the mountpoint holds a dead mount (transport endpoint is not connected); detaching it');
        detach(spec.mountpoint);
      } else if (mountInfo(spec.mountpoint)?.fstype === 'fuse.stargzfs') {
        // Stacked on it, a second mount hid the first, whose server served on unseen.
        throw new MountpointBusyError(spec.mountpoint);
      }
      session = mountFs(spec.mountpoint, ops, { allowOther: spec.allowOther, maxRead: 1 << 20, passthrough: spec.passthrough ?? true }, log);
    } catch (err) {
      await endpoint?.close();
      throw err;
    }
    // Never stat the mountpoint here: that would be a FUSE request to this very thread.
    const readAheadKib = setReadAhead(spec.mountpoint, 1024);
    if (readAheadKib === undefined) log.info('kernel read-ahead left at its default (could not set read_ahead_kb)');
    log.info({ image: parts.image.resolved.ref, layer: spec.layer, readAheadKib, uptimeMs: Math.round(performance.now()) }, 'mounted');
    // Whoever mounted it is about to use it: background fetch waits its quiet period from here.
    parts.image.scheduler.activity();
    return new MountedImage(spec, startedAt, status, parts, ops, session, exited, init, endpoint, log);
  }

  get image(): OpenImage {
    return this.parts.image;
  }

  /**
   * What the supervisor holds for this mount (native/supervisor.c), once the kernel has
   * initialised the connection (a new server cannot ask it again what was agreed).
   */
  async handover(): Promise<Handover> {
    await this.init;
    return this.session.handover();
  }

  status(extra: object = {}): Record<string, unknown> {
    return this.statusOf(extra);
  }

  /**
   * Ends serving: reads waiting, and any that come, fail with EIO (`failReads`, a signal's
   * stop) or finish (an unmount), and the mount is detached. `ended` settles once the
   * kernel lets go (when open files are closed).
   */
  detach(failReads: boolean): number {
    const failed = failReads ? this.session.stop(EIO) : 0;
    try {
      detach(this.spec.mountpoint);
    } catch (err) {
      this.log.warn({ err }, 'the mount could not be detached; the session ends anyway');
    }
    return failed;
  }

  /** Ends the session now, whether or not files are open (a second signal, a grace period over). */
  end(): void {
    this.session.end();
  }

  /**
   * After `ended`: fails what is still unanswered, closes the image and waits (bounded) for
   * the reads still running, then for prefetch. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      const failed = this.session.pending();
      this.session.destroy();
      this.parts.image.close();
      const unsettled = await this.ops.drain(READ_DRAIN_MS);
      this.log.info({ failed, unsettled }, 'session freed');
      if (unsettled > 0) this.log.warn({ unsettled, waitedMs: READ_DRAIN_MS }, 'reads still running as the image closes');
      await this.warmed;
      await this.endpoint?.close();
    })();
    return this.closing;
  }
}
