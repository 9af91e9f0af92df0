// `stargzfs mount <src> <mountpoint>`: serves the image (merged, or one layer with
// --layer) through FUSE until it is unmounted (`stargzfs unmount`, SIGINT/SIGTERM, or
// umount from outside), with prefetch and background fetch running behind the reads.
// `--daemon` returns once the mount serves, or fails with the reason.
import type { CommandContext } from '../context.js';
import { selectView } from '../context.js';
import { FsOperations } from '../../fs/operations.js';
import { mountFs } from '../../fs/mount.js';
import { detach, isDeadMount, isDirectory, setReadAhead } from '../mountpoint.js';
import { NotADirectoryError } from '../../errors.js';
import { inspectReport } from './inspect.js';
import { followProgress } from '../progress-line.js';
import { signalReady } from '../ready.js';
import type { MountMetrics } from '../../metrics/metrics.js';
import { releaseHeap, trimHeap } from '../../fs/fuse-binding.js';
import { constants } from 'node:os';

const { EIO } = constants.errno;

/**
 * How long the start-up heap (see bin.ts) stays after prefetch ends, for the reads that
 * follow it. Short: until released it holds some 30 MiB of freed buffers in RSS (a 202k
 * entry mount, after a walk: 186-213 MiB with 30 s, 165 MiB once released).
 */
const HEAP_RELEASE_DELAY_MS = 3_000;
/** How long reads still running when the session ends may take to settle before meta.db closes under them. */
const READ_DRAIN_MS = 5_000;
/** After a signal, how long a reader that still holds a file open gets EIO before the connection goes (ENOTCONN then). */
const STOP_GRACE_MS = 2_000;

export interface MountArgs {
  readonly mountpoint: string;
  readonly layer?: string | undefined;
  readonly overlay?: string | undefined;
  readonly allowOther: boolean;
  /** stderr is a terminal: show a progress line while prefetch runs. */
  readonly tty: boolean;
  /** Serve Prometheus metrics here (HOST:PORT, :PORT, unix:PATH). */
  readonly metrics?: string | undefined;
}

/** The mount's metrics, read from the counters the image and the registry client keep. */
async function mountMetrics(ctx: CommandContext): Promise<MountMetrics> {
  // prom-client is loaded only for --metrics.
  const { MountMetrics } = await import('../../metrics/metrics.js');
  const metrics = new MountMetrics({
    layers: () => {
      const progress = new Map(ctx.image.progress.snapshot().map((p) => [p.digest, p]));
      return ctx.image.layers.map((l) => {
        const p = progress.get(l.desc.digest);
        const c = l.row !== undefined ? ctx.image.reader.stats(l.row.id) : undefined;
        return {
          index: l.index, digest: l.desc.digest, totalBytes: p?.totalBytes ?? l.desc.size, progressBytes: p?.fetchedBytes ?? 0, phases: p?.phases,
          requests: c?.requests ?? 0, fetchedBytes: c?.bytesFetched ?? 0, servedBytes: c?.bytesServed ?? 0, cacheHits: c?.cacheHits ?? 0, cacheMisses: c?.cacheMisses ?? 0,
        };
      });
    },
    hosts: () => ctx.image.hostStats(),
  });
  ctx.image.progress.on((e) => {
    if (e.type === 'fetched') metrics.observeFetch(e.priority, e.ms / 1000, e.bytes);
  });
  return metrics;
}

/** What /.stargzfs/status.json and `stargzfs status` show. */
export function mountStatus(ctx: CommandContext, mountpoint: string, startedAt: string): unknown {
  const report = inspectReport(ctx.image, ctx.table);
  const progress = new Map(ctx.image.progress.snapshot().map((p) => [p.digest, p]));
  return {
    mountpoint,
    pid: process.pid,
    startedAt,
    image: report.ref,
    manifest: report.manifest,
    platform: report.platform,
    layers: report.layers.map((l) => {
      const p = progress.get(l.digest);
      const counters = ctx.image.layers[l.index]?.row !== undefined ? ctx.image.reader.stats(ctx.image.layers[l.index]?.row?.id ?? -1) : undefined;
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
    cache: ctx.cache.health(),
  };
}

export async function mountCommand(ctx: CommandContext, args: MountArgs): Promise<void> {
  const log = ctx.log.child({ mod: 'mount' });
  // A TOC imported by this process left its thread's memory free but mapped (some 100 MB for 200k entries).
  if (ctx.image.layers.some((l) => l.row !== undefined && !l.reused)) trimHeap();
  const view = selectView(ctx.image, args);
  const startedAt = new Date().toISOString();
  let ended!: (why: string) => void;
  const exited = new Promise<string>((resolve) => { ended = resolve; });
  const metrics = args.metrics !== undefined ? await mountMetrics(ctx) : undefined;
  const endpoint = metrics !== undefined ? await (await import('../../metrics/server.js')).serveMetrics(args.metrics as string, metrics, log) : undefined;
  const ops: FsOperations = new FsOperations(view, ctx.image.reader, ctx.log.child({ mod: 'fs' }), {
    observeOp: metrics !== undefined ? (op, seconds, errno) => metrics.observeOp(op, seconds, errno) : undefined,
    status: (): unknown => ({ ...(mountStatus(ctx, args.mountpoint, startedAt) as object), servedByAddon: ops.addonReads(), metrics: endpoint?.address ?? null }),
    onExit: (why) => ended(why),
    onRequest: () => ctx.image.scheduler.activity(),
    size: {
      bytes: ctx.image.layers.reduce((n, l) => n + Number(l.desc.annotations?.['io.containers.estargz.uncompressed-size'] ?? l.desc.size), 0),
      files: ctx.image.layers.reduce((n, l) => n + (l.row?.node_count ?? 0), 0),
    },
  });
  if (!isDeadMount(args.mountpoint) && !isDirectory(args.mountpoint)) {
    throw new NotADirectoryError({ path: `${args.mountpoint} (the mountpoint must be an existing directory)` });
  }
  if (isDeadMount(args.mountpoint)) {
    log.warn({ mountpoint: args.mountpoint }, 'the mountpoint holds a dead mount (transport endpoint is not connected); detaching it');
    detach(args.mountpoint);
  }
  const session = mountFs(args.mountpoint, ops, { allowOther: args.allowOther, maxRead: 1 << 20 }, log);
  // A signal (systemd's stop) fails what readers wait for and whatever they ask next with
  // EIO, and detaches the mount: the session ends once they have closed their files, or
  // after STOP_GRACE_MS. `stargzfs unmount` instead detaches and lets open files finish.
  let ending: NodeJS.Timeout | undefined;
  const stop = (signal: string): void => {
    if (ending !== undefined) return session.end(); // a second signal: at once
    const failed = session.stop(EIO);
    log.info({ signal, failed }, 'unmounting: reads still unanswered, and any that come, fail with EIO');
    try {
      detach(args.mountpoint);
    } catch (err) {
      log.warn({ err }, 'the mount could not be detached; the session ends anyway');
    }
    ending = setTimeout(() => session.end(), STOP_GRACE_MS);
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // A rejection nobody heard is a bug, but one that must not take every reader of the
  // mount down with it: it is logged as an error (tests fail on it) and serving goes on.
  const onUnhandled = (err: unknown): void => log.error({ err }, 'unhandled rejection (a bug); serving on');
  process.on('unhandledRejection', onUnhandled);
  // Never stat the mountpoint here: that would be a FUSE request to this very thread.
  const readAheadKib = setReadAhead(args.mountpoint, 1024);
  if (readAheadKib === undefined) log.info('kernel read-ahead left at its default (could not set read_ahead_kb)');
  log.info({ mountpoint: args.mountpoint, image: ctx.image.resolved.ref, readAheadKib, uptimeMs: Math.round(performance.now()) }, 'mounted');
  // Whoever mounted it is about to use it: background fetch waits its quiet period from here.
  ctx.image.scheduler.activity();
  signalReady(args.mountpoint);
  const line = followProgress(ctx.image, `mounted at ${args.mountpoint}`, args.tty);
  line.draw();
  const warming = ctx.image
    .warm()
    .catch((err: unknown) => log.warn({ err }, 'prefetch stopped'))
    .finally(() => {
      line.draw();
      line.stop();
      setTimeout(releaseHeap, HEAP_RELEASE_DELAY_MS).unref();
    });
  try {
    const why = await exited;
    log.info({ why }, 'FUSE session ended');
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('unhandledRejection', onUnhandled);
    clearTimeout(ending);
    // The connection is gone: what is still unanswered fails now (the addon drops the
    // replies that come later), and the reads still running settle before the image and
    // meta.db close under them.
    const failed = session.pending();
    session.destroy();
    ctx.image.close();
    const unsettled = await ops.drain(READ_DRAIN_MS);
    log.info({ failed, unsettled }, 'session freed');
    if (unsettled > 0) log.warn({ unsettled, waitedMs: READ_DRAIN_MS }, 'reads still running as the image closes');
    await warming;
    await endpoint?.close();
  }
}
