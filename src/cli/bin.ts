#!/usr/bin/env node
// The bundle's entry. `mount --daemon` only starts the server in the background and waits
// for its "ready": that needs none of the CLI, so it is answered here, before the CLI's
// modules load (they are most of a process's start-up, and the server loads them again).
// Started by the shell launcher (src/cli/stargzfs.sh, STARGZFS_DAEMON=sh), this process
// is that server already. A mount's first registry requests go out from here too, while
// the CLI loads (layer/early-fetch.ts). Everything else, and any `mount` this cannot read plainly, goes to main.ts.
import { closeSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { defaultRoot, TOC_DEFAULTS } from '../config.js';
import { daemonize, daemonLogFile } from './daemon.js';
import { earlyFetchable, plainMount, type PlainMount } from './daemon-args.js';
import { armReadyChannel, LOG_FILE_ENV, READY_FD_ENV } from './ready.js';
import { redirectStdio, reserveHeap } from '../fs/fuse-binding.js';

const EARLY_WIRE_WAIT_MS = 25;

const root = (m: PlainMount): string =>
  m.root ?? defaultRoot({ uid: process.getuid?.() ?? 0, home: process.env['HOME'], xdgCacheHome: process.env['XDG_CACHE_HOME'], arch: process.arch });
const withoutDaemon = (args: readonly string[]): string[] => args.filter((a) => !/^--daemon(=|$)/.test(a));

/** The full CLI, on process.argv. */
async function runCli(): Promise<void> {
  const { runMain } = await import('./main.js');
  runMain();
}

/** This process serves the mount: its first requests go out now, then the CLI runs. */
async function serve(m: PlainMount | undefined): Promise<void> {
  // A server a supervisor started opens the image its mount shows (pinned), not the tag.
  const early = m !== undefined && process.env['STARGZFS_SUPERVISOR_FD'] === undefined ? earlyFetchable(m) : undefined;
  if (early !== undefined && m !== undefined) {
    // Loaded here, not with this entry: it brings meta.db's reader and the TOC reader,
    // which a launcher or any other command does not need.
    const { startEarlyFetch } = await import('../layer/early-fetch.js');
    const onWire = startEarlyFetch({ ...early, toc: TOC_DEFAULTS, metaDb: join(root(m), 'meta.db') });
    // A few milliseconds (a loopback or LAN connect) that the CLI's synchronous start would
    // otherwise add to the first round trip; bounded for a registry slow to accept.
    await Promise.race([onWire, new Promise((resolve) => setTimeout(resolve, EARLY_WIRE_WAIT_MS).unref())]);
  }
  // Freed buffers are reused warm (native/memory.cc). After the early requests: loading
  // the addon for it takes a few milliseconds in a foreground mount.
  if (m !== undefined) void reserveHeap(0);
  armReadyChannel();
  await runCli();
}

/** A `mount … --daemon` whose launcher waits on `readyFd`: this process is its server. */
async function serveLauncher(m: PlainMount, args: readonly string[], readyFd: number): Promise<void> {
  const logFile = daemonLogFile(root(m), m.mountpoint);
  redirectStdio(logFile);
  process.env[READY_FD_ENV] = String(readyFd);
  process.env[LOG_FILE_ENV] = logFile;
  process.argv.splice(2, Infinity, ...withoutDaemon(args));
  await serve(m);
}

const args = process.argv.slice(2);
const mount = plainMount(args);
const fromShell = process.env['STARGZFS_DAEMON'] === 'sh';
delete process.env['STARGZFS_DAEMON'];

if (fromShell && mount?.daemon !== true) {
  // Arguments only the full CLI reads: the shell runs it in the foreground instead.
  writeSync(3, 'use-node\n');
  closeSync(3);
} else if (fromShell && mount !== undefined) {
  await serveLauncher(mount, args, 3);
} else if (mount?.daemon === true) {
  process.exitCode = await daemonize(withoutDaemon(args), root(mount), mount.mountpoint);
} else {
  await serve(mount);
}
