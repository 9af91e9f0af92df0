#!/usr/bin/env node
// The bundle's entry. `mount --daemon` only starts the server in the background and waits
// for its "ready": that needs none of the CLI, so it is answered here, before the CLI's
// modules load (they are most of a process's start-up, and the server loads them again).
// Started by the shell launcher (src/cli/stargzfs.sh, STARGZFS_DAEMON=sh), this process
// is that server already. Everything else, and any `mount --daemon` this cannot read
// plainly, goes to main.ts.
import { closeSync, writeSync } from 'node:fs';
import { defaultRoot } from '../config.js';
import { daemonize, daemonLogFile } from './daemon.js';
import { plainDaemonMount } from './daemon-args.js';
import { armReadyChannel, LOG_FILE_ENV, READY_FD_ENV } from './ready.js';
import { redirectStdio } from '../fs/fuse-binding.js';

const args = process.argv.slice(2);
const daemon = plainDaemonMount(args);
const root = (): string =>
  daemon?.root ?? defaultRoot({ uid: process.getuid?.() ?? 0, home: process.env['HOME'], xdgCacheHome: process.env['XDG_CACHE_HOME'], arch: process.arch });
const withoutDaemon = args.filter((a) => !/^--daemon(=|$)/.test(a));
const fromShell = process.env['STARGZFS_DAEMON'] === 'sh';
delete process.env['STARGZFS_DAEMON'];

if (fromShell && daemon === undefined) {
  // Arguments only the full CLI reads: the shell runs it in the foreground instead.
  writeSync(3, 'use-node\n');
  closeSync(3);
} else if (fromShell && daemon !== undefined) {
  const logFile = daemonLogFile(root(), daemon.mountpoint);
  redirectStdio(logFile);
  process.env[READY_FD_ENV] = '3';
  process.env[LOG_FILE_ENV] = logFile;
  process.argv.splice(2, Infinity, ...withoutDaemon);
  armReadyChannel();
  await import('./main.js');
} else if (daemon !== undefined) {
  process.exitCode = await daemonize(withoutDaemon, root(), daemon.mountpoint);
} else {
  armReadyChannel();
  await import('./main.js');
}
