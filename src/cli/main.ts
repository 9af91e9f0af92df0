#!/usr/bin/env node
// The composition root: argv → Config → commands. The only module that reads
// process.env and process.argv.
import { resolve } from 'node:path';
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { config, globalOptions, mountOptions, viewOptions } from './options.js';
import { parseSize } from '../config.js';
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { ConfigError, SupervisorError } from '../errors.js';
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
import { serveCommand } from './commands/serve.js';
import { answerOf, callService, controlSocket } from '../service/client.js';
import type { MountInfo } from '../service/service.js';
import { daemonize, daemonLogFile, sameCommandLine, supervisedEnv } from './daemon.js';
import { SupervisorLink } from '../supervisor/link.js';
import type { ResolvedImage } from '../http/image.js';
import { createLogger } from '../log.js';
import { upgradeCommand } from './commands/upgrade.js';
import { isDaemonServer, signalReady } from './ready.js';
import { convertCommand, convertProgressLine } from './commands/convert.js';
import { parsePrioritized } from '../convert/prioritized.js';
import { parsePlatform } from '../http/image.js';

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

const DEFAULT_SNAPSHOTTER_ADDRESS = '/run/stargzfs/snapshotter.sock';

/** Hands a `mount` command line to the service on `root`; undefined when none answers there. */
async function handToService(root: string, args: readonly string[], cwd: string): Promise<MountInfo | undefined> {
  const answer = await callService(controlSocket(root), 'POST', '/v1/mounts', { args: args.filter((a) => !/^--daemon(=|$)/.test(a)), cwd });
  if (answer === undefined) return undefined;
  return answerOf<MountInfo>(answer);
}

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
  await globalOptions(cli
    .scriptName('stargzfs')
    .usage('$0 <command> [options]\n\nLook inside container images (eStargz, stargz, zstd:chunked) without pulling them.\n<src> is an image reference (registry/repo[:tag][@digest], docker.io by default) or an OCI layout (oci:DIR[:TAG|@DIGEST]).'))
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
      'mount <src> [mountpoint]',
      'serve the image lazily through FUSE until unmounted: the merged image, or with --layer one layer ready for overlayfs',
      (y) => mountOptions(y.positional('src', { type: 'string', demandOption: true }).positional('mountpoint', { type: 'string' })),
      (argv) =>
        run(async () => {
          const cfg = config(argv);
          // `mount --upgrade MOUNTPOINT`: the one argument is the mountpoint.
          if (argv.upgrade) return upgradeCommand(resolve(argv.src));
          if (argv.mountpoint === undefined) throw new ConfigError('mountpoint', 'mount needs <src> <mountpoint> (or --upgrade MOUNTPOINT)');
          const mountpoint = resolve(argv.mountpoint);
          // Started by a supervisor (a restart, an upgrade): the live mount is handed over
          // and served as it is, the image pinned to what the mount shows.
          const link = SupervisorLink.inherited(process.env, createLogger(cfg.log.level, undefined, cfg.log.pretty));
          const adoption = link?.adopt(mountpoint);
          if (link !== undefined && adoption === undefined) throw new SupervisorError(`started by a supervisor that holds no mount at ${mountpoint}`);
          const pinned = adoption?.state.owner['src'];
          const src = typeof pinned === 'string' ? pinned : argv.src;
          const resolved = adoption?.state.owner['resolved'] as ResolvedImage | undefined;
          // A service on this root takes the mount: it serves it from now on, in its process.
          const handed = link === undefined ? await handToService(cfg.state.root, process.argv.slice(2), process.cwd()) : undefined;
          if (handed !== undefined) {
            const said = `stargzfs: mounted at ${handed.mountpoint} (by the service at ${controlSocket(cfg.state.root)})`;
            // A --daemon server's launcher waits for its word; anyone else reads stderr.
            if (isDaemonServer()) signalReady(handed.mountpoint, said);
            else process.stderr.write(`${said}\n`);
            return;
          }
          if (argv.daemon) {
            exitCode = await daemonize(process.argv.slice(2).filter((a) => !/^--daemon(=|$)/.test(a)), cfg.state.root, argv.mountpoint);
            return;
          }
          await withImage(cfg, src, (ctx) =>
            mountCommand(
              ctx,
              {
                src,
                mountpoint,
                layer: argv.layer,
                overlay: argv.layer !== undefined ? (argv.userxattr ? 'user' : 'trusted') : 'none',
                allowOther: argv['allow-other'],
                tty: process.stderr.isTTY === true && !isDaemonServer(),
                metrics: argv.metrics,
                passthrough: cfg.fuse.passthrough,
              },
              {
                link,
                adoption,
                start: cfg.fuse.supervise
                  ? () => SupervisorLink.start(sameCommandLine(), supervisedEnv(process.env), daemonLogFile(cfg.state.root, mountpoint), ctx.log.child({ mod: 'supervisor' }), { standby: cfg.fuse.standby })
                  : undefined,
              },
            ),
          { prefetching: true, resolved });
        }),
    )
    .command(
      'serve',
      'run the service: many mounts in one long-running process (`mount --root` hands them to it through ROOT/serve.sock) and containerd\'s snapshotter',
      (y) =>
        y
          .option('snapshotter-address', { type: 'string', describe: 'serve containerd\'s snapshots API (proxy snapshotter) on this Unix socket (default /run/stargzfs/snapshotter.sock for root)' })
          .option('snapshotter', { type: 'boolean', default: true, describe: '--no-snapshotter: no containerd snapshotter' })
          .option('store', { type: 'string', describe: 'mount podman\'s additional layer store here (storage.conf: additionallayerstores = ["DIR:ref"])' })
          .option('store-grace-ms', { type: 'number', default: 60_000, describe: 'how long a store layer podman no longer uses stays mounted, ms' }),
      (argv) =>
        run(() => {
          const cfg = config(argv);
          const log = createLogger(cfg.log.level, undefined, cfg.log.pretty).child({ mod: 'supervisor' });
          return serveCommand(cfg, {
            globals: argv,
            link: SupervisorLink.inherited(process.env, log),
            startSupervisor: cfg.fuse.supervise ? () => SupervisorLink.start(sameCommandLine(), supervisedEnv(process.env), 'inherit', log, { standby: cfg.fuse.standby }) : undefined,
            adapters: async (service, cfg, log) => {
              const adapters = [];
              if (argv.snapshotter && (argv['snapshotter-address'] !== undefined || process.getuid?.() === 0)) {
                const { startSnapshotter } = await import('../snapshotter/adapter.js');
                adapters.push(await startSnapshotter(service, cfg, log, argv['snapshotter-address'] ?? DEFAULT_SNAPSHOTTER_ADDRESS, argv['snapshotter-address'] !== undefined));
              }
              if (argv.store !== undefined) {
                const { startStore } = await import('../store/adapter.js');
                try {
                  adapters.push(await startStore(service, cfg, log, resolve(argv.store), { graceMs: argv['store-grace-ms'] }));
                } catch (err) {
                  for (const a of adapters) await a.close();
                  throw err;
                }
              }
              return adapters;
            },
          });
        }),
    )
    .command(
      'unmount <mountpoint>',
      'unmount a stargzfs mount and wait for its server to exit',
      (y) => y.positional('mountpoint', { type: 'string', demandOption: true }),
      (argv) => run(() => unmountCommand(argv.mountpoint)),
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
