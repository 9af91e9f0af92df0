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

/** How long readers of a mount that still hold files open get EIO before the service's mounts go (ENOTCONN then). */
const STOP_GRACE_MS = 2_000;

export interface ServeArgs {
  /** serve's own command line options: every mount's defaults. */
  readonly globals: GlobalArgs;
  /** Starts the adapters once the service is up (before the control socket answers). */
  readonly adapters: (service: Service, config: Config, log: Logger) => Promise<Adapter[]>;
}

export async function serveCommand(config: Config, args: ServeArgs): Promise<void> {
  const log = createLogger(config.log.level, undefined, config.log.pretty);
  const root = config.state.root;
  const socket = join(root, 'serve.sock');
  const state = new SharedState(config, log);
  keepImportThread();
  const identity = { pid: process.pid, controlSocket: socket };
  const service = new Service({ log, identity, openImage: (cfg, src, opts) => state.openImage(cfg, src, opts), describeImage: (cfg, src, fresh) => state.describeImage(cfg, src, fresh) });
  const onUnhandled = (err: unknown): void => log.error({ err }, 'unhandled rejection (a bug); serving on');
  process.on('unhandledRejection', onUnhandled);
  let adapters: Adapter[] = [];
  let control: ControlServer | undefined;
  let stopping: ((signal: string) => void) | undefined;
  const stopped = new Promise<string>((resolve) => { stopping = resolve; });
  const onInt = (): void => stopping?.('SIGINT');
  const onTerm = (): void => stopping?.('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    adapters = await args.adapters(service, config, log);
    control = await ControlServer.listen(socket, {
      service,
      log,
      parseMount: (line) => parseMountLine(line, args.globals, root),
      exitCodeFor: (err) => exitCodeFor(err instanceof StargzfsError ? err.code : undefined),
      status: () => ({ root, controlSocket: socket, ...Object.fromEntries(adapters.map((a) => [a.name, a.status()])) }),
    });
    log.info({ socket, pid: process.pid, adapters: adapters.map((a) => a.name) }, 'serving');
    process.stderr.write(`stargzfs: serving at ${socket} (pid ${process.pid})${adapters.map((a) => `; ${a.name} ${JSON.stringify(a.status())}`).join('')}\n`);
    const signal = await stopped;
    log.info({ signal }, 'stopping: unmounting every mount');
  } finally {
    await control?.close();
    for (const a of adapters.reverse()) await a.close().catch((err: unknown) => log.warn({ err, adapter: a.name }, 'adapter did not stop cleanly'));
    await service.close(STOP_GRACE_MS);
    await state.close();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.off('unhandledRejection', onUnhandled);
  }
}
