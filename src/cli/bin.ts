#!/usr/bin/env node
// The bundle's entry. `mount --daemon` only starts the server in the background and waits
// for its "ready": that needs none of the CLI, so it is answered here, before the CLI's
// modules load (they are most of a process's start-up, and the server loads them again).
// Started by the shell launcher (src/cli/stargzfs.sh, STARGZFS_DAEMON=sh), this process
// is that server already. A mount's first registry requests go out from here too, while
// the CLI loads (layer/early-fetch.ts). Everything else, and any `mount` this cannot read
// plainly, goes to main.ts.
import { closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { defaultRoot, TOC_DEFAULTS } from '../config.js';
import { daemonize, daemonLogFile } from './daemon.js';
import { earlyFetchable, plainMount, type PlainMount } from './daemon-args.js';
import { armReadyChannel, LOG_FILE_ENV, READY_FD_ENV } from './ready.js';
import { redirectStdio } from '../fs/fuse-binding.js';

const args = process.argv.slice(2);
const mount = plainMount(args);
const root = (m: PlainMount): string =>
  m.root ?? defaultRoot({ uid: process.getuid?.() ?? 0, home: process.env['HOME'], xdgCacheHome: process.env['XDG_CACHE_HOME'], arch: process.arch });
const withoutDaemon = args.filter((a) => !/^--daemon(=|$)/.test(a));
const fromShell = process.env['STARGZFS_DAEMON'] === 'sh';
delete process.env['STARGZFS_DAEMON'];

/** This process serves the mount: its first requests go out now, then the CLI loads. */
async function serve(m: PlainMount | undefined): Promise<void> {
  const early = m !== undefined ? earlyFetchable(m) : undefined;
  if (early !== undefined && m !== undefined) {
    // Loaded here, not with this entry: it brings meta.db's reader and the TOC reader,
    // which a launcher or any other command does not need.
    const { startEarlyFetch } = await import('../layer/early-fetch.js');
    startEarlyFetch({ ...early, toc: TOC_DEFAULTS, metaDb: join(root(m), 'meta.db') });
  }
  armReadyChannel();
  await import('./main.js');
}

if (fromShell && mount?.daemon !== true) {
  // Arguments only the full CLI reads: the shell runs it in the foreground instead.
  writeSync(3, 'use-node\n');
  closeSync(3);
} else if (fromShell && mount !== undefined) {
  const logFile = daemonLogFile(root(mount), mount.mountpoint);
  redirectStdio(logFile);
  process.env[READY_FD_ENV] = '3';
  process.env[LOG_FILE_ENV] = logFile;
  process.argv.splice(2, Infinity, ...withoutDaemon);
  await serve(mount);
} else if (mount?.daemon === true) {
  process.exitCode = await daemonize(withoutDaemon, root(mount), mount.mountpoint);
} else {
  await serve(mount);
}
