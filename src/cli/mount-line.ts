// A `stargzfs mount …` command line handed to the service (its control socket), parsed
// with the very options the CLI's own `mount` has: the request's options over the
// service's (`serve`'s flags are every mount's defaults), the mountpoint resolved against
// the caller's working directory.
import { isAbsolute, resolve } from 'node:path';
import yargs from 'yargs';
import { ConfigError } from '../errors.js';
import type { MountCommandLine } from '../service/control.js';
import type { MountRequest } from '../service/service.js';
import { config, globalOptions, mountOptions, type GlobalArgs } from './options.js';

/** Options that are the service's own: a mount cannot move the state root or the logs. */
const SERVICE_ONLY = new Set(['root', 'log-level', 'log-format', 'cache-size', 'cache-memory']);

/**
 * The request, or undefined when the line is not a mount the service runs (another
 * command, or a root other than the service's: the caller then runs it itself). A bad
 * option throws ConfigError, as the CLI would fail on it.
 */
export function parseMountLine(line: MountCommandLine, serveArgs: GlobalArgs, serveRoot: string): MountRequest | undefined {
  // Help and version are the CLI's to print.
  if (line.args.some((a) => a === '--help' || a === '-h' || a === '--version')) return undefined;
  let failure: string | undefined;
  const argv = mountOptions(globalOptions(yargs([...line.args])))
    .help(false)
    .version(false)
    .exitProcess(false)
    .strictOptions()
    .fail((msg, err) => {
      failure = err?.message ?? msg;
    })
    .parseSync();
  const [command, src, mountpoint, ...rest] = argv._.map(String);
  if (command !== 'mount') return undefined;
  if (failure !== undefined) throw new ConfigError('mount', failure);
  if (src === undefined || mountpoint === undefined || rest.length > 0) throw new ConfigError('mount', 'expected: mount <src> <mountpoint>');
  const given = argv as unknown as Record<string, unknown>;
  if (given['root'] !== undefined && resolve(line.cwd, String(given['root'])) !== serveRoot) return undefined;
  const merged: Record<string, unknown> = { ...serveArgs };
  for (const [k, v] of Object.entries(given)) {
    if (v !== undefined && !SERVICE_ONLY.has(k) && k !== '_' && k !== '$0') merged[k] = v;
  }
  const layer = argv.layer;
  return {
    src,
    spec: {
      mountpoint: isAbsolute(mountpoint) ? resolve(mountpoint) : resolve(line.cwd, mountpoint),
      layer,
      overlay: layer !== undefined ? (argv.userxattr ? 'user' : 'trusted') : 'none',
      allowOther: argv['allow-other'],
      metrics: argv.metrics,
    },
    config: config(merged as GlobalArgs),
  };
}
