// Starts a FUSE session serving FsOperations at a mountpoint, with the options a
// read-only image wants. Ending it is the session's unmount()/destroy().
import type { Logger } from '../log.js';
import { openSession, type FuseSession, type Handover } from './fuse-binding.js';
import type { FsOperations } from './operations.js';

/**
 * libfuse worker threads. Reads of mapped chunk files are answered on these threads
 * (native/read_map.h), so they bound how many such reads run at once.
 */
const WORKER_THREADS = 16;

export interface MountOptions {
  readonly allowOther: boolean;
  /** Largest read, bytes. */
  readonly maxRead: number;
  /** Ask the kernel for passthrough reads of files one verified chunk file holds. */
  readonly passthrough: boolean;
  /** Serve a live connection another server of this mount left (no mount is made). */
  readonly adopt?: Handover | undefined;
}

export function mountFs(mountpoint: string, ops: FsOperations, opts: MountOptions, log: Logger): FuseSession {
  // default_permissions: the kernel checks mode bits, so access() and open() need no JavaScript round trip for that.
  const options = ['ro', 'default_permissions', 'fsname=stargzfs', 'subtype=stargzfs', `max_read=${opts.maxRead}`];
  if (opts.allowOther) options.push('allow_other');
  const session = openSession(mountpoint, options, ops.handle, { maxRead: opts.maxRead, maxBackground: 128, threads: WORKER_THREADS, passthrough: opts.passthrough, adopt: opts.adopt });
  ops.attach(session);
  log.debug({ mountpoint, options, adopted: opts.adopt !== undefined }, 'FUSE session started');
  return session;
}
