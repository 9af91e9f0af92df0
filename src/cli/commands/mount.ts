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
import type { Adoption, SupervisorLink } from '../../supervisor/link.js';
import type { ResolvedImage } from '../../http/image.js';
import { parseImageRef } from '../../http/reference.js';

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
  /** The image as given on the command line. */
  readonly src: string;
}

/** Who holds the mount across a crash or an upgrade of this process (src/supervisor/). */
export interface Supervision {
  /** The supervisor that started this process, if one did (a restart, an upgrade). */
  readonly link?: SupervisorLink | undefined;
  /** The live mount it handed over for this mountpoint: served, not mounted again. */
  readonly adoption?: Adoption | undefined;
  /** Starts a supervisor for a mount this process made; absent: none (--no-supervise). */
  readonly start?: (() => SupervisorLink) | undefined;
}

/**
 * The image a new server of this mount must open: the same manifest, whatever the tag
 * names by then (the kernel holds inode numbers of this one's files).
 */
export function pinnedSource(src: string, resolved: ResolvedImage): string {
  if (/^[a-z-]+:\//.test(src) || /^(oci|oci-archive|docker-archive|dir):/.test(src)) return src;
  try {
    const ref = parseImageRef(src);
    return `${ref.registry}/${ref.repository}@${resolved.manifestDigest}`;
  } catch {
    return src;
  }
}

export async function mountCommand(ctx: CommandContext, args: MountArgs, supervision: Supervision = {}): Promise<void> {
  const log = ctx.log.child({ mod: 'mount' });
  // A TOC imported by this process left its thread's memory free but mapped (some 100 MB for 200k entries).
  if (ctx.image.layers.some((l) => l.row !== undefined && !l.reused)) trimHeap();
  let link = supervision.link;
  const mounted = await MountedImage.start(
    { image: ctx.image, table: ctx.table, cache: ctx.cache, log: ctx.log },
    args,
    () => ({ serverPid: process.pid, supervisorPid: link?.pid ?? null }),
    supervision.adoption?.handover,
  );
  if (link === undefined && supervision.start !== undefined) {
    try {
      link = supervision.start();
    } catch (err) {
      log.warn({ err }, 'no supervisor: if this server dies, the mount is dead until mounted again');
    }
  }
  try {
    const h = await mounted.handover();
    link?.hold(args.mountpoint, { minor: h.minor, passthrough: h.passthrough, owner: { src: pinnedSource(args.src, ctx.image.resolved), resolved: ctx.image.resolved } }, h);
    if (supervision.adoption !== undefined) link?.ready();
  } catch (err) {
    log.warn({ err }, 'the supervisor does not hold this mount: if this server dies, the mount is dead until mounted again');
  }
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
    // Ended on purpose (unmounted, a signal): nobody is to take over.
    link?.done();
    await mounted.close();
  }
}
