// `stargzfs serve`: the long-running service in the foreground (systemd runs it so). One
// state for every mount, the control socket `<root>/serve.sock` that `stargzfs mount`
// hands its mounts to, and the runtime adapters (containerd's snapshotter). SIGTERM or
// SIGINT: stop taking requests, unmount everything, exit.
import { join } from 'node:path';
import type { Config } from '../../config.js';
import { createLogger, type Logger } from '../../log.js';
import { SharedState } from '../shared-state.js';
import { Service, type ServiceAdapter as Adapter } from '../../service/service.js';
import { ControlServer } from '../../service/control.js';
import { parseMountLine } from '../mount-line.js';
import { exitCodeFor } from '../exit-codes.js';
import { StargzfsError } from '../../errors.js';
import { keepImportThread } from '../../toc/import-thread.js';
import type { GlobalArgs } from '../options.js';
import type { SupervisorLink } from '../../supervisor/link.js';

/** How long readers of a mount that still hold files open get EIO before the service's mounts go (ENOTCONN then). */
const STOP_GRACE_MS = 2_000;

export interface ServeArgs {
  /** serve's own command line options: every mount's defaults. */
  readonly globals: GlobalArgs;
  /** The supervisor that started this process (a restart, an upgrade), if one did. */
  readonly link?: SupervisorLink | undefined;
  /** Starts a supervisor for this service; absent: none (--no-supervise). */
  readonly startSupervisor?: (() => SupervisorLink) | undefined;
  /** Starts the adapters once the service is up (before the control socket answers). */
  readonly adapters: (service: Service, config: Config, log: Logger) => Promise<Adapter[]>;
}

export async function serveCommand(config: Config, args: ServeArgs): Promise<void> {
  const log = createLogger(config.log.level, undefined, config.log.pretty);
  const root = config.state.root;
  const socket = join(root, 'serve.sock');
  const state = new SharedState(config, log);
  keepImportThread();
  // The supervisor holds every mount's /dev/fuse: a service killed or dying of a bug is
  // replaced, and its mounts' readers see a pause (src/supervisor/, native/supervisor.c).
  let link = args.link;
  if (link === undefined && args.startSupervisor !== undefined) {
    try {
      link = args.startSupervisor();
    } catch (err) {
      log.warn({ err }, 'no supervisor: if the service dies, its mounts die with it');
    }
  }
  const identity = { pid: process.pid, controlSocket: socket, supervisorPid: link?.pid ?? null };
  const service = new Service({
    log, identity, holder: link,
    openImage: (cfg, src, opts) => state.openImage(cfg, src, opts),
    describeImage: (cfg, src, fresh) => state.describeImage(cfg, src, fresh),
  });
  const onUnhandled = (err: unknown): void => log.error({ err }, 'unhandled rejection (a bug); serving on');
  process.on('unhandledRejection', onUnhandled);
  let adapters: Adapter[] = [];
  let control: ControlServer | undefined;
  let stopping: ((signal: string) => void) | undefined;
  const stopped = new Promise<string>((resolve) => { stopping = resolve; });
  const onInt = (): void => stopping?.('SIGINT');
  const onTerm = (): void => stopping?.('SIGTERM');
  // SIGHUP: replaced by a new service started from the installed binary, the mounts kept.
  const onHup = (): void => {
    if (link === undefined) return void log.warn('SIGHUP: no supervisor holds the mounts, nothing to upgrade');
    log.info('SIGHUP: upgrading (a new service takes over the mounts, then this one goes)');
    try {
      link.upgrade();
    } catch (err) {
      log.warn({ err }, 'the upgrade did not start');
    }
  };
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  process.on('SIGHUP', onHup);
  let clean = false;
  try {
    // Mounts a killed or upgraded service left, served as they are before anything asks.
    await service.adoptAll();
    adapters = await args.adapters(service, config, log);
    control = await ControlServer.listen(socket, {
      service,
      log,
      parseMount: (line) => parseMountLine(line, args.globals, root),
      exitCodeFor: (err) => exitCodeFor(err instanceof StargzfsError ? err.code : undefined),
      status: () => ({ root, controlSocket: socket, pid: process.pid, supervisorPid: link?.pid ?? null, ...Object.fromEntries(adapters.map((a) => [a.name, a.status()])) }),
    });
    link?.ready();
    log.info({ socket, pid: process.pid, adapters: adapters.map((a) => a.name) }, 'serving');
    process.stderr.write(`stargzfs: serving at ${socket} (pid ${process.pid})${adapters.map((a) => `; ${a.name} ${JSON.stringify(a.status())}`).join('')}\n`);
    const signal = await stopped;
    log.info({ signal }, 'stopping: unmounting every mount');
    clean = true;
  } finally {
    await control?.close();
    for (const a of adapters.reverse()) await a.close().catch((err: unknown) => log.warn({ err, adapter: a.name }, 'adapter did not stop cleanly'));
    await service.close(STOP_GRACE_MS);
    // Stopped on purpose (or failed to start): nobody is to take over. A crash never gets here.
    if (clean || link !== undefined) link?.done();
    await state.close();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('SIGHUP', onHup);
    process.off('unhandledRejection', onUnhandled);
  }
}
