// `stargzfs mount <src> <mountpoint>` in its own process: serves the image (merged, or one
// layer with --layer) through FUSE until it is unmounted (`stargzfs unmount`,
// SIGINT/SIGTERM, or umount from outside). The mount itself is service/mounted-image.ts;
// this adds what belongs to a process: signals, the launcher's ready pipe, the progress
// line and the start-up heap.
import type { CommandContext } from '../context.js';
import { MountedImage, type MountSpec } from '../../service/mounted-image.js';
import { followProgress } from '../progress-line.js';
import { signalReady } from '../ready.js';
import { releaseHeap, trimHeap } from '../../fs/fuse-binding.js';

/**
 * How long the start-up heap (see bin.ts) stays after prefetch ends, for the reads that
 * follow it. Short: until released it holds some 30 MiB of freed buffers in RSS (a 202k
 * entry mount, after a walk: 186-213 MiB with 30 s, 165 MiB once released).
 */
const HEAP_RELEASE_DELAY_MS = 3_000;
/** After a signal, how long a reader that still holds a file open gets EIO before the connection goes (ENOTCONN then). */
const STOP_GRACE_MS = 2_000;

export interface MountArgs extends MountSpec {
  /** stderr is a terminal: show a progress line while prefetch runs. */
  readonly tty: boolean;
}

export async function mountCommand(ctx: CommandContext, args: MountArgs): Promise<void> {
  const log = ctx.log.child({ mod: 'mount' });
  // A TOC imported by this process left its thread's memory free but mapped (some 100 MB for 200k entries).
  if (ctx.image.layers.some((l) => l.row !== undefined && !l.reused)) trimHeap();
  const mounted = await MountedImage.start({ image: ctx.image, table: ctx.table, cache: ctx.cache, log: ctx.log }, args);
  // A signal (systemd's stop) fails what readers wait for and whatever they ask next with
  // EIO, and detaches the mount: the session ends once they have closed their files, or
  // after STOP_GRACE_MS. `stargzfs unmount` instead detaches and lets open files finish.
  let ending: NodeJS.Timeout | undefined;
  const stop = (signal: string): void => {
    if (ending !== undefined) return mounted.end(); // a second signal: at once
    const failed = mounted.detach(true);
    log.info({ signal, failed }, 'unmounting: reads still unanswered, and any that come, fail with EIO');
    ending = setTimeout(() => mounted.end(), STOP_GRACE_MS);
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  // A rejection nobody heard is a bug, but one that must not take every reader of the
  // mount down with it: it is logged as an error (tests fail on it) and serving goes on.
  const onUnhandled = (err: unknown): void => log.error({ err }, 'unhandled rejection (a bug); serving on');
  process.on('unhandledRejection', onUnhandled);
  signalReady(args.mountpoint);
  const line = followProgress(ctx.image, `mounted at ${args.mountpoint}`, args.tty);
  line.draw();
  void mounted.warmed.finally(() => {
    line.draw();
    line.stop();
    setTimeout(releaseHeap, HEAP_RELEASE_DELAY_MS).unref();
  });
  try {
    const why = await mounted.ended;
    log.info({ why }, 'FUSE session ended');
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('unhandledRejection', onUnhandled);
    clearTimeout(ending);
    await mounted.close();
  }
}
