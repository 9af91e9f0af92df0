// containerd's proxy snapshotter as an adapter of the service: metadata under
// `<root>/snapshotter`, remote layers mounted by the service, the gRPC socket answering
// only once the remote snapshots of before a restart are mounted again (containers that
// were running keep their lowerdirs).
import { connect } from 'node:net';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { ConfigError } from '../errors.js';
import type { Service, ServiceAdapter } from '../service/service.js';
import { Snapshotter } from './snapshotter.js';
import { serveSnapshotter } from './grpc-server.js';
import { ServiceLayers } from './remote-layers.js';

/** Whether a process answers on the Unix socket `path`. */
function answers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/**
 * Starts the snapshotter at `address`. Another live snapshotter there is an error when the
 * address was asked for, and leaves this service without one when it was the default.
 */
export async function startSnapshotter(service: Service, config: Config, log: Logger, address: string, explicit: boolean): Promise<ServiceAdapter> {
  const slog = log.child({ mod: 'snapshotter' });
  if (await answers(address)) {
    const why = `another process serves ${address} already`;
    if (explicit) throw new ConfigError('snapshotter-address', why);
    slog.warn({ address }, `${why}: no containerd snapshotter in this service`);
    return { name: 'snapshotter', close: async () => {}, status: () => ({ address: null, why }) };
  }
  const snapshotter = await Snapshotter.open(join(config.state.root, 'snapshotter'), new ServiceLayers(service, config, log), log);
  const t0 = performance.now();
  await snapshotter.restore();
  slog.info({ ms: Math.round(performance.now() - t0) }, 'remote snapshots restored');
  const server = await serveSnapshotter(address, snapshotter, log);
  return {
    name: 'snapshotter',
    status: () => ({ address }),
    close: async () => {
      await server.close();
      snapshotter.close();
    },
  };
}
