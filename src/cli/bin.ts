#!/usr/bin/env node
// The executable. `mount --daemon` only starts the server in the background and waits for
// its "ready": that needs none of the CLI, so it is answered here, before the CLI's
// modules load (they are most of a process's start-up, and the server loads them again).
// Everything else, and any `mount --daemon` this cannot read plainly, goes to main.ts.
import { defaultRoot } from '../config.js';
import { daemonize } from './daemon.js';
import { plainDaemonMount } from './daemon-args.js';

const args = process.argv.slice(2);
const daemon = plainDaemonMount(args);
if (daemon !== undefined) {
  const root = daemon.root ?? defaultRoot({ uid: process.getuid?.() ?? 0, home: process.env['HOME'], xdgCacheHome: process.env['XDG_CACHE_HOME'], arch: process.arch });
  process.exitCode = await daemonize(args.filter((a) => !/^--daemon(=|$)/.test(a)), root, daemon.mountpoint);
} else {
  await import('./main.js');
}
