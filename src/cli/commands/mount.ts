// `stargzfs mount <src> <mountpoint>`: serves the image (merged, or one layer with
// --layer) through FUSE until it is unmounted (`stargzfs unmount`, SIGINT/SIGTERM, or
// umount from outside), with prefetch and background fetch running behind the reads.
// `--daemon` returns once the mount serves, or fails with the reason.
import { closeSync, writeSync } from 'node:fs';
import type { CommandContext } from '../context.js';
import { selectView } from '../context.js';
import { FsOperations } from '../../fs/operations.js';
import { mountFs } from '../../fs/mount.js';
import { detach, isDeadMount } from '../mountpoint.js';
import { inspectReport } from './inspect.js';

export interface MountArgs {
  readonly mountpoint: string;
  readonly layer?: string | undefined;
  readonly overlay?: string | undefined;
  readonly allowOther: boolean;
  /** File descriptor to write "ready" to once serving (--daemon's child). */
  readonly readyFd?: number | undefined;
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
        totalBytes: p?.totalBytes ?? l.size,
        prefetch: p?.phases ?? null,
        servedBytes: counters?.bytesServed ?? 0,
        cacheHits: counters?.cacheHits ?? 0,
        cacheMisses: counters?.cacheMisses ?? 0,
        errors: p?.errors ?? 0,
        lastError: p?.lastError ?? (l.error !== null ? { code: l.error.code, message: l.error.message } : null),
      };
    }),
  };
}

export async function mountCommand(ctx: CommandContext, args: MountArgs): Promise<void> {
  const log = ctx.log.child({ mod: 'mount' });
  const view = selectView(ctx.image, args);
  const startedAt = new Date().toISOString();
  let ended!: (why: string) => void;
  const exited = new Promise<string>((resolve) => { ended = resolve; });
  const ops = new FsOperations(view, ctx.image.reader, ctx.log.child({ mod: 'fs' }), {
    status: () => mountStatus(ctx, args.mountpoint, startedAt),
    onExit: (why) => ended(why),
  });
  if (isDeadMount(args.mountpoint)) {
    log.warn({ mountpoint: args.mountpoint }, 'the mountpoint holds a dead mount (transport endpoint is not connected); detaching it');
    detach(args.mountpoint);
  }
  const session = mountFs(args.mountpoint, ops, { allowOther: args.allowOther, maxRead: 1 << 20 }, log);
  const stop = (signal: string): void => {
    log.info({ signal }, 'unmounting');
    session.unmount();
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  log.info({ mountpoint: args.mountpoint, image: ctx.image.resolved.ref }, 'mounted');
  if (args.readyFd !== undefined) {
    writeSync(args.readyFd, 'ready\n');
    closeSync(args.readyFd);
  }
  const warming = ctx.image.warm().catch((err: unknown) => log.warn({ err }, 'prefetch stopped'));
  try {
    const why = await exited;
    log.info({ why }, 'FUSE session ended');
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    session.destroy();
    ctx.image.close();
    await warming;
  }
}
