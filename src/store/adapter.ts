// podman's additional layer store as an adapter of the service: the store filesystem
// mounted at the directory podman is told (`additionallayerstore=DIR:ref`), its layers
// mounted by the service under `<root>/layer-store/layers`, their uses counted in
// `<root>/layer-store/uses.db`. Stopping unmounts the store; the service unmounts the layers.
import { mkdirSync } from 'node:fs';
import { constants } from 'node:os';
import { isAbsolute, join, resolve } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { ConfigError } from '../errors.js';
import { openSession, type FuseSession } from '../fs/fuse-binding.js';
import type { Service, ServiceAdapter } from '../service/service.js';
import { detach, isDeadMount, mountInfo } from '../service/mountpoint.js';
import { StoreLayers, type StoreOptions } from './layers.js';
import { StoreFs } from './store-fs.js';

/** How long a stop waits for the store's session to end after it is detached. */
const STOP_WAIT_MS = 5_000;
const EIO = constants.errno.EIO;
/** Largest read of `info` or `blob` (the max_read option must equal what init says). */
const MAX_READ = 1 << 20;

export async function startStore(service: Service, config: Config, log: Logger, dir: string, opts: StoreOptions): Promise<ServiceAdapter> {
  const slog = log.child({ mod: 'store' });
  if (!isAbsolute(dir)) throw new ConfigError('store', `must be an absolute path (podman requires it), got ${JSON.stringify(dir)}`);
  if (isDeadMount(dir)) {
    slog.warn({ dir }, 'the store directory holds a dead mount (a service that was killed); detaching it');
    detach(dir);
  } else if (mountInfo(dir)?.fstype.startsWith('fuse') === true) {
    throw new ConfigError('store', `${dir} is a FUSE mount already (another layer store?)`);
  }
  // The layers' own mounts and uses.db live in the state root, beside (never under) the store.
  const own = join(resolve(config.state.root), 'layer-store');
  if (own === dir || own.startsWith(`${dir}/`)) throw new ConfigError('store', `${dir} would hide the service's own ${own}: choose another directory`);
  mkdirSync(dir, { recursive: true });
  const layers = new StoreLayers(service, config, own, opts, log);
  layers.restore();
  let exited!: (why: string) => void;
  const ended = new Promise<string>((resolve) => { exited = resolve; });
  const fs = new StoreFs(layers, log, (why) => exited(why));
  let session: FuseSession;
  try {
    // Not read-only: podman creates `use` and removes layer directories (the store answers both).
    session = openSession(dir, ['default_permissions', 'allow_other', 'fsname=stargzfs-store', 'subtype=stargzfs', `max_read=${MAX_READ}`], fs.handle, {
      // Nothing of the store's is read from a chunk file.
      passthrough: false,
      maxRead: MAX_READ, maxBackground: 64, threads: 4, cacheSymlinks: false,
    });
  } catch (err) {
    layers.close();
    throw err;
  }
  fs.attach(session);
  void ended.then((why) => slog.info({ dir, why }, 'layer store session ended'));
  slog.info({ dir, graceMs: opts.graceMs }, 'layer store mounted');
  return {
    name: 'store',
    status: () => ({ dir, layers: layers.status(), openFiles: fs.openFiles() }),
    close: async () => {
      // Detached as the image mounts are: the loop ends once the kernel lets the mount go.
      session.stop(EIO);
      try {
        detach(dir);
      } catch (err) {
        slog.warn({ dir, err: (err as Error).message }, 'the layer store could not be detached');
      }
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => { timer = setTimeout(() => resolve('late'), STOP_WAIT_MS); });
      if ((await Promise.race([ended, late])) === 'late') {
        slog.warn({ dir }, 'the layer store session did not end after its unmount; ending it');
        session.end();
        await ended;
      }
      clearTimeout(timer);
      session.destroy();
      layers.close();
    },
  };
}
