#!/usr/bin/env node
// The composition root: argv → Config → commands. The only module that reads
// process.env and process.argv.
import { statfsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { parseSize, resolveConfig, type Config } from '../config.js';
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConfigError } from '../errors.js';
import { StargzfsError } from '../errors.js';
import { selectView, withCache, withConverter, withImage } from './context.js';
import { cacheCommand } from './commands/cache.js';
import { EXIT, exitCodeFor } from './exit-codes.js';
import { ls } from './commands/ls.js';
import { stat } from './commands/stat.js';
import { cat } from './commands/cat.js';
import { inspect } from './commands/inspect.js';
import { fetchCommand } from './commands/fetch.js';
import { profileClear, profileExport } from './commands/profile.js';
import { mountCommand } from './commands/mount.js';
import { statusCommand, unmountCommand } from './commands/unmount.js';
import { spareCommand } from './commands/spare.js';
import { daemonize } from './daemon.js';
import { isDaemonServer } from './ready.js';
import { convertCommand, convertProgressLine } from './commands/convert.js';
import { parsePrioritized } from '../convert/prioritized.js';
import { parsePlatform } from '../http/image.js';

interface GlobalArgs {
  root?: string | undefined;
  platform?: string | undefined;
  'allow-unverified'?: boolean | undefined;
  'log-level'?: string | undefined;
  'log-format'?: string | undefined;
  'max-toc-bytes'?: number | undefined;
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
}

function config(argv: GlobalArgs): Config {
  return resolveConfig(
    {
      root: argv.root,
      platform: argv.platform,
      allowUnverified: argv['allow-unverified'],
      logLevel: argv['log-level'],
      logFormat: argv['log-format'],
      maxTocBytes: argv['max-toc-bytes'],
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
    },
    {
      uid: process.getuid?.() ?? 0,
      home: process.env['HOME'],
      xdgCacheHome: process.env['XDG_CACHE_HOME'],
      arch: process.arch,
      dockerConfig: process.env['DOCKER_CONFIG'],
      // The --daemon child logs to a file: JSON there, whatever the parent's terminal.
      stderrIsTTY: process.stderr.isTTY === true && !isDaemonServer(),
      freeBytes: freeBytes(argv.root ?? (process.getuid?.() === 0 ? '/var/lib/stargzfs' : (process.env['XDG_CACHE_HOME'] ?? `${process.env['HOME'] ?? '/tmp'}/.cache`))),
    },
  );
}

/**
 * Our package.json's version. yargs looks for a package.json upwards from the working
 * directory, which names some other package or none ("unknown"). dist/src/cli/ and
 * dist/bundle/chunks/ are both three levels below the package.
 */
function ownVersion(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
  } catch {
    return 'unknown';
  }
}

function readPrioritized(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError('prioritize', `cannot read ${path}: ${(err as Error).message}`);
  }
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

const viewOptions = <T>(y: Argv<T>) =>
  y
    .option('layer', { type: 'string', describe: "one layer's own tree instead of the merged image: index (0 = base, -1 = top) or digest prefix" })
    .option('overlay', {
      type: 'string',
      choices: ['none', 'trusted', 'user', 'both'],
      default: 'none',
      describe: 'with --layer: show whiteouts and opaque dirs as overlayfs sees them (opaque xattr namespace)',
    });

export async function main(args: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const run = (fn: () => Promise<void>): Promise<void> =>
    // Started at once, inside yargs' handler call: yargs renders its help text right after
    // that call returns (to show on a later error), which then overlaps the first network
    // round trip instead of delaying it. A synchronous throw (a bad option value) still
    // becomes a rejection.
    new Promise<void>((resolve) => resolve(fn()))
      .catch((err: unknown) => {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
      if (err instanceof StargzfsError) {
        process.stderr.write(`stargzfs: ${err.message} (${err.code})\n`);
        exitCode = exitCodeFor(err.code);
        return;
      }
      throw err;
    });

  const cli = yargs(args);
  // yargs renders its whole help text after every command's handler is called, to show it
  // on a later error: 0.1 s of a mount's start-up. Our errors never show it (see fail()).
  (cli as unknown as { getInternalMethods(): { getUsageInstance(): { cacheHelpMessage(): void } } })
    .getInternalMethods().getUsageInstance().cacheHelpMessage = () => {};
  await cli
    .scriptName('stargzfs')
    .usage('$0 <command> [options]\n\nLook inside container images (eStargz, stargz, zstd:chunked) without pulling them.\n<src> is an image reference (registry/repo[:tag][@digest], docker.io by default) or an OCI layout (oci:DIR[:TAG|@DIGEST]).')
    .option('root', { type: 'string', describe: 'state root holding meta.db (default /var/lib/stargzfs for root, else $XDG_CACHE_HOME/stargzfs)' })
    .option('platform', { type: 'string', describe: 'os/arch[/variant] to pick from a multi-platform image (default: this machine; convert: every platform, or a comma-separated list)' })
    .option('allow-unverified', { type: 'boolean', describe: 'use layers whose TOC has no digest annotation (shown as unverified)' })
    .option('log-level', { type: 'string', describe: 'fatal|error|warn|info|debug|trace|silent (logs go to stderr)', default: 'warn' })
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
    .option('max-toc-bytes', { type: 'number', describe: 'largest TOC accepted, uncompressed bytes (default 150 MiB)', hidden: true })
    .command(
      'inspect <src>',
      'show each layer: format, TOC, verification, prefetch region; NOT LAZY layers with the reason',
      (y) => y.positional('src', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      (argv) => run(() => withImage(config(argv), argv.src, ({ image, table }) => inspect(image, table, argv.json))),
    )
    .command(
      'ls <src> [paths..]',
      'list directories of the image (merged layers, whiteouts applied)',
      (y) =>
        viewOptions(y.positional('src', { type: 'string', demandOption: true }).positional('paths', { type: 'string', array: true, default: ['/'] }))
          .option('long', { alias: 'l', type: 'boolean', default: false, describe: 'long listing' })
          .option('recursive', { alias: 'R', type: 'boolean', default: false, describe: 'list subdirectories recursively' })
          .option('json', { type: 'boolean', default: false }),
      (argv) =>
        run(() =>
          withImage(config(argv), argv.src, ({ image }) =>
            ls(selectView(image, argv), argv.paths, { long: argv.long, recursive: argv.recursive, json: argv.json }),
          ),
        ),
    )
    .command(
      'stat <src> <path>',
      'show one file’s attributes (without following symlinks)',
      (y) =>
        viewOptions(y.positional('src', { type: 'string', demandOption: true }).positional('path', { type: 'string', demandOption: true })).option(
          'json',
          { type: 'boolean', default: false },
        ),
      (argv) => run(() => withImage(config(argv), argv.src, ({ image }) => stat(image, selectView(image, argv), argv.path, argv.json))),
    )
    .command(
      'cat <src> <paths..>',
      'write files’ bytes to stdout, every chunk verified against its digest',
      (y) =>
        viewOptions(y.positional('src', { type: 'string', demandOption: true }).positional('paths', { type: 'string', array: true, demandOption: true })),
      (argv) => run(() => withImage(config(argv), argv.src, ({ image }) => cat(selectView(image, argv), image.reader, argv.paths))),
    )
    .command(
      'mount <src> <mountpoint>',
      'serve the image lazily through FUSE until unmounted: the merged image, or with --layer one layer ready for overlayfs',
      (y) =>
        y
          .positional('src', { type: 'string', demandOption: true })
          .positional('mountpoint', { type: 'string', demandOption: true })
          .option('layer', { type: 'string', describe: 'serve one layer (index, 0 = base, -1 = top, or digest prefix), whiteouts and opaque dirs encoded for overlayfs' })
          .option('userxattr', { type: 'boolean', default: false, describe: 'with --layer: opaque dirs as user.overlay.opaque (overlayfs -o userxattr) instead of trusted.overlay.opaque' })
          .option('allow-other', { type: 'boolean', default: false, describe: 'let other users see the mount (FUSE allow_other)' })
          .option('daemon', { type: 'boolean', default: false, describe: 'return once the mount serves (exit 0), or fail with the reason; the server stays in the background' })
          .option('metrics', { type: 'string', describe: 'serve Prometheus metrics at /metrics on HOST:PORT, :PORT (loopback) or unix:PATH' }),
      (argv) =>
        run(async () => {
          const cfg = config(argv);
          if (argv.daemon) {
            exitCode = await daemonize(process.argv.slice(2).filter((a) => !/^--daemon(=|$)/.test(a)), cfg.state.root, argv.mountpoint);
            return;
          }
          await withImage(cfg, argv.src, (ctx) =>
            mountCommand(ctx, {
              mountpoint: resolve(argv.mountpoint),
              layer: argv.layer,
              overlay: argv.layer !== undefined ? (argv.userxattr ? 'user' : 'trusted') : 'none',
              allowOther: argv['allow-other'],
              tty: process.stderr.isTTY === true && !isDaemonServer(),
              metrics: argv.metrics,
            }),
          { prefetching: true });
        }),
    )
    .command(
      'unmount <mountpoint>',
      'unmount a stargzfs mount and wait for its server to exit',
      (y) => y.positional('mountpoint', { type: 'string', demandOption: true }),
      (argv) => run(() => unmountCommand(argv.mountpoint)),
    )
    .command(
      'spare',
      'start a spare server that the next `mount … --daemon` takes over (no Node start-up or CLI loading on its path); --list, --stop',
      (y) =>
        y
          .option('count', { type: 'number', default: 1, describe: 'how many to start (each one taken is replaced after a moment)' })
          .option('list', { type: 'boolean', default: false, describe: 'list the spares waiting' })
          .option('stop', { type: 'boolean', default: false, describe: 'stop every spare waiting' })
          .option('json', { type: 'boolean', default: false }),
      (argv) => run(() => spareCommand(process.argv[1] as string, { count: argv.count, list: argv.list, stop: argv.stop, json: argv.json })),
    )
    .command(
      'status <mountpoint>',
      'a mount’s layers: format, verified, lazy or NOT LAZY and why, bytes fetched of the total, prefetch state, errors',
      (y) => y.positional('mountpoint', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      (argv) => run(() => statusCommand(argv.mountpoint, argv.json)),
    )
    .command(
      'fetch <src>',
      'fetch the image into the chunk cache now: landmark and learned prefetch, then the rest (as a mount does in the background)',
      (y) => y.positional('src', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      (argv) =>
        run(async () => {
          await withImage(config(argv), argv.src, ({ image }) => fetchCommand(image, argv.json, process.stderr.isTTY === true), { prefetching: true });
        }),
    )
    .command(
      'profile <action> <src>',
      'the learned access profile of an image: export (paths in first-read order, for convert --prioritize) or clear',
      (y) =>
        y
          .positional('action', { type: 'string', choices: ['export', 'clear'], demandOption: true })
          .positional('src', { type: 'string', demandOption: true })
          .option('out', { type: 'string', describe: 'write to this file instead of stdout' })
          .option('json', { type: 'boolean', default: false, describe: 'entries with their layers, as JSON' }),
      (argv) =>
        run(() =>
          withImage(config(argv), argv.src, ({ image, profiles }) =>
            argv.action === 'export' ? profileExport(image, profiles, argv.out, argv.json) : profileClear(image, profiles),
          ),
        ),
    )
    .command(
      'convert <src> <dst>',
      'write the image as eStargz to a registry or an OCI layout (from a registry, oci:DIR, an OCI or docker save archive, or a directory)',
      (y) =>
        y
          .positional('src', { type: 'string', demandOption: true, describe: 'image reference, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE[:TAG], dir:DIR, or a path' })
          .positional('dst', { type: 'string', demandOption: true, describe: 'image reference (pushed) or oci:DIR[:TAG]' })
          .option('chunk-size', { type: 'string', describe: 'uncompressed chunk size, e.g. 4M (default 4M)' })
          .option('min-chunk-size', { type: 'string', describe: 'small files share a gzip member until it holds this much, e.g. 64K (default 0: one member per file)' })
          .option('prioritize', { type: 'string', describe: 'file listing paths to put first (a profile export: one path per line, or its JSON, or JSON lines with "path")' })
          .option('format', { type: 'string', choices: ['estargz', 'zstdchunked'], default: 'estargz', describe: 'layer format: eStargz (gzip) or zstd:chunked (stargz-snapshotter flavor)' })
          .option('compression-level', { type: 'number', describe: 'gzip level 1-9 (default 6), or zstd level 1-19 (default 3)' })
          .option('rebuild', { type: 'boolean', default: false, describe: 'rewrite layers that are eStargz already (default: copy them, unless --prioritize is given)' })
          .option('json', { type: 'boolean', default: false }),
      (argv) =>
        run(async () => {
          const cfg = config(argv);
          const level = argv['compression-level'];
          const format = argv.format as 'estargz' | 'zstdchunked';
          const maxLevel = format === 'zstdchunked' ? 19 : 9;
          if (level !== undefined && (!Number.isInteger(level) || level < 1 || level > maxLevel)) throw new ConfigError('compression-level', `must be 1-${maxLevel} for ${format}, got ${level}`);
          const prioritized = argv.prioritize === undefined ? [] : parsePrioritized(readPrioritized(argv.prioritize), argv.prioritize);
          const progress = convertProgressLine(process.stderr.isTTY === true);
          const opts = {
            chunkSize: argv['chunk-size'] !== undefined ? parseSize('chunk-size', argv['chunk-size']) : undefined,
            minChunkSize: argv['min-chunk-size'] !== undefined && argv['min-chunk-size'] !== '0' ? parseSize('min-chunk-size', argv['min-chunk-size']) : undefined,
            compressionLevel: level,
            format,
            prioritized,
            rebuild: argv.rebuild,
            platforms: argv.platform === undefined || argv.platform === 'all' ? undefined : argv.platform.split(',').map((p) => parsePlatform(p.trim())),
          };
          try {
            await withConverter(cfg, argv.src, argv.dst, opts, progress.onProgress, (c) => convertCommand(c, argv.src, argv.dst, argv.json));
          } finally {
            progress.stop();
          }
        }),
    )
    .command(
      'cache <action>',
      'the chunk cache shared by every image on this state root: du (usage), gc (quota, strays), clear (everything)',
      (y) => y.positional('action', { type: 'string', choices: ['du', 'gc', 'clear'], demandOption: true }).option('json', { type: 'boolean', default: false }),
      (argv) => run(() => withCache(config(argv), (cache) => cacheCommand(cache, argv.action as 'du' | 'gc' | 'clear', argv.json))),
    )
    .demandCommand(1, 'name a command')
    .strict()
    .recommendCommands()
    .fail((msg, err, y) => {
      if (err !== undefined && err !== null) throw err;
      process.stderr.write(`${y.help() !== undefined ? '' : ''}stargzfs: ${msg}\nRun 'stargzfs --help' for usage.\n`);
      exitCode = EXIT.usage;
    })
    .help()
    .alias('help', 'h')
    .version(ownVersion())
    .wrap(Math.min(110, process.stdout.columns ?? 100))
    .parseAsync();
  return exitCode;
}

/** Runs the command on process.argv and sets the exit code (the bundle's entry, bin.ts, calls it). */
export function runMain(): void {
  // Node exits with 0 when nothing is left to wait for, even with the command unfinished
  // (a promise that never settles): that is an internal error, never a success.
  process.exitCode = EXIT.error;
  const unfinished = (): void => {
    process.stderr.write('stargzfs: internal error: the command stopped before it finished (nothing left to wait for)\n');
  };
  process.once('beforeExit', unfinished);
  main(hideBin(process.argv)).finally(() => process.off('beforeExit', unfinished)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`stargzfs: internal error: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = EXIT.error;
    },
  );
}

/** Whether this module is the script node was started with (dist/src/cli/main.js, tsc's output), not imported by the bundle's entry. */
function runAsScript(): boolean {
  try {
    return process.argv[1] !== undefined && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href;
  } catch {
    return false;
  }
}

if (runAsScript()) runMain();
