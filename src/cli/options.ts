// The options every command shares and the ones a mount adds, and the Config they make:
// one definition for the CLI's parser and for the service's parser of handed-over mounts.
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Argv } from 'yargs';
import { resolveConfig, type Config } from '../config.js';
import { isDaemonServer } from './ready.js';

export interface GlobalArgs {
  root?: string | undefined;
  platform?: string | undefined;
  'allow-unverified'?: boolean | undefined;
  'log-level'?: string | undefined;
  'log-format'?: string | undefined;
  'max-toc-bytes'?: number | undefined;
  'neighbour-bytes'?: string | undefined;
  'plain-http'?: boolean | undefined;
  insecure?: boolean | undefined;
  timeout?: number | undefined;
  retries?: number | undefined;
  'read-timeout'?: number | undefined;
  'stall-timeout'?: number | undefined;
  mirror?: string | string[] | undefined;
  'cache-size'?: string | undefined;
  'cache-memory'?: string | undefined;
  prefetch?: boolean | undefined;
  'learned-prefetch'?: boolean | undefined;
  'background-fetch'?: boolean | undefined;
  'background-bandwidth'?: string | undefined;
  passthrough?: boolean | undefined;
  supervise?: boolean | undefined;
  standby?: boolean | undefined;
}

export function config(argv: GlobalArgs): Config {
  return resolveConfig(
    {
      root: argv.root,
      platform: argv.platform,
      allowUnverified: argv['allow-unverified'],
      logLevel: argv['log-level'],
      logFormat: argv['log-format'],
      maxTocBytes: argv['max-toc-bytes'],
      neighbourBytes: argv['neighbour-bytes'],
      plainHttp: argv['plain-http'],
      insecure: argv.insecure,
      timeoutMs: argv.timeout !== undefined ? argv.timeout * 1000 : undefined,
      retries: argv.retries,
      readTimeoutMs: argv['read-timeout'] !== undefined ? argv['read-timeout'] * 1000 : undefined,
      stallTimeoutMs: argv['stall-timeout'] !== undefined ? argv['stall-timeout'] * 1000 : undefined,
      mirror: argv.mirror === undefined ? undefined : [argv.mirror].flat(),
      cacheSize: argv['cache-size'],
      cacheMemory: argv['cache-memory'],
      prefetch: argv.prefetch,
      learnedPrefetch: argv['learned-prefetch'],
      backgroundFetch: argv['background-fetch'],
      backgroundBandwidth: argv['background-bandwidth'],
      passthrough: argv.passthrough,
      supervise: argv.supervise,
      standby: argv.standby,
    },
    {
      uid: process.getuid?.() ?? 0,
      home: process.env['HOME'],
      xdgCacheHome: process.env['XDG_CACHE_HOME'],
      arch: process.arch,
      dockerConfig: process.env['DOCKER_CONFIG'],
      registryAuthFile: process.env['REGISTRY_AUTH_FILE'],
      xdgRuntimeDir: process.env['XDG_RUNTIME_DIR'],
      // The --daemon child logs to a file: JSON there, whatever the parent's terminal.
      stderrIsTTY: process.stderr.isTTY === true && !isDaemonServer(),
      freeBytes: freeBytes(argv.root ?? (process.getuid?.() === 0 ? '/var/lib/stargzfs' : (process.env['XDG_CACHE_HOME'] ?? `${process.env['HOME'] ?? '/tmp'}/.cache`))),
    },
  );
}

/** Free bytes on the filesystem that holds `path` (or its nearest existing parent). */
function freeBytes(path: string): number | undefined {
  for (let p = resolve(path); ; p = dirname(p)) {
    try {
      const s = statfsSync(p);
      return s.bavail * s.bsize;
    } catch {
      if (p === dirname(p)) return undefined;
    }
  }
}

export const viewOptions = <T>(y: Argv<T>) =>
  y
    .option('layer', { type: 'string', describe: "one layer's own tree instead of the merged image: index (0 = base, -1 = top) or digest prefix" })
    .option('overlay', {
      type: 'string',
      choices: ['none', 'trusted', 'user', 'both'],
      default: 'none',
      describe: 'with --layer: show whiteouts and opaque dirs as overlayfs sees them (opaque xattr namespace)',
    });

export const globalOptions = <T>(y: Argv<T>) =>
  y
    .option('root', { type: 'string', describe: 'state root holding meta.db (default /var/lib/stargzfs for root, else $XDG_CACHE_HOME/stargzfs)' })
    .option('platform', { type: 'string', describe: 'os/arch[/variant] to pick from a multi-platform image (default: this machine; convert: every platform, or a comma-separated list)' })
    .option('allow-unverified', { type: 'boolean', describe: 'use layers whose TOC has no digest annotation (shown as unverified)' })
    .option('log-level', { type: 'string', describe: 'fatal|error|warn|info|debug|trace|silent (logs go to stderr; default warn)' })
    .option('log-format', { type: 'string', choices: ['json', 'pretty'], describe: 'log lines as JSON or for people (default: pretty on a terminal, else JSON)' })
    .option('plain-http', { type: 'boolean', describe: 'speak plain HTTP to the registry (always allowed for loopback registries)' })
    .option('insecure', { type: 'boolean', describe: 'accept self-signed TLS certificates from the registry' })
    .option('timeout', { type: 'number', describe: 'per-request timeout in seconds (default 30)' })
    .option('retries', { type: 'number', describe: 'retries for connection errors, 429 and 5xx (default 4)' })
    .option('read-timeout', { type: 'number', describe: 'seconds a file read waits for its bytes, retries included, before it fails with EIO (default 30)' })
    .option('stall-timeout', { type: 'number', describe: 'seconds a registry response may send nothing before it is aborted and retried (default 5)' })
    .option('mirror', { type: 'string', describe: 'REGISTRY=HOST[:PORT]: read REGISTRY’s images through this mirror first (repeatable, tried in order)' })
    .option('cache-size', { type: 'string', describe: 'chunk cache quota, e.g. 2G (default: a fifth of the free disk, at least 512M)' })
    .option('cache-memory', { type: 'string', describe: 'memory kept for recently used chunks, e.g. 256M (default 64M)' })
    .option('prefetch', { type: 'boolean', describe: 'prefetch each layer’s landmark region (prioritized files); --no-prefetch: off' })
    .option('learned-prefetch', { type: 'boolean', describe: 'prefetch the files earlier runs of this image read first; --no-learned-prefetch: off' })
    .option('background-fetch', { type: 'boolean', describe: 'fetch the rest of every layer in the background; --no-background-fetch: off' })
    .option('background-bandwidth', { type: 'string', describe: 'limit background fetch to this many bytes per second, e.g. 10M (default: unlimited)' })
    .option('passthrough', { type: 'boolean', describe: 'the kernel reads fully cached files from the cache itself (FUSE passthrough, Linux 6.9+); --no-passthrough: every read comes to stargzfs' })
    .option('supervise', { type: 'boolean', describe: 'a small supervisor holds the mount and starts a new server if this one dies; --no-supervise: a killed server leaves a dead mount' })
    .option('standby', { type: 'boolean', describe: 'the supervisor keeps a second server loaded to take over at once (some 65 MB); --no-standby: a new one starts when needed (some 250 ms)' })
    .option('max-toc-bytes', { type: 'number', describe: 'largest TOC accepted, uncompressed bytes (default 150 MiB)', hidden: true })
    .option('neighbour-bytes', { type: 'string', describe: 'bytes fetched after a miss along with it, e.g. 256K, or auto (default: what arrives within a round trip)', hidden: true });

export const mountOptions = <T>(y: Argv<T>) =>
  y
    .option('layer', { type: 'string', describe: 'serve one layer (index, 0 = base, -1 = top, or digest prefix), whiteouts and opaque dirs encoded for overlayfs' })
    .option('userxattr', { type: 'boolean', default: false, describe: 'with --layer: opaque dirs as user.overlay.opaque (overlayfs -o userxattr) instead of trusted.overlay.opaque' })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users see the mount (FUSE allow_other)' })
    .option('upgrade', { type: 'boolean', default: false, describe: '`mount --upgrade MOUNTPOINT`: replace the mount\'s server with one started from the installed binary, without unmounting' })
    .option('daemon', { type: 'boolean', default: false, describe: 'return once the mount serves (exit 0), or fail with the reason; the server stays in the background' })
    .option('metrics', { type: 'string', describe: 'serve Prometheus metrics at /metrics on HOST:PORT, :PORT (loopback) or unix:PATH' });
