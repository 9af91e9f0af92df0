// An image built with our writer and pushed to a real registry behind the fault proxy:
// the set-up of every test that reads an image over HTTP and counts what it fetched.
import { join } from 'node:path';
import { buildEstargzImage, type BuildOptions } from '../../src/layer/build-image.js';
import { pushLayoutImage } from '../../src/http/push.js';
import type { TarEntry } from '../../src/toc/tar.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { startFaultProxy, type FaultProxy } from './fault-proxy.js';
import { withClient } from './client.js';
import { tempDir } from './tmp.js';

export interface ServedImage {
  readonly reg: TestRegistry;
  readonly proxy: FaultProxy;
  /** A scratch directory the test may use (removed by stop). */
  readonly dir: string;
  /** The image's reference through the proxy. */
  readonly ref: string;
  stop(): Promise<void>;
}

export async function serveImage(repository: string, layers: readonly (readonly TarEntry[])[], opts: BuildOptions = {}): Promise<ServedImage> {
  const { dir, cleanup } = tempDir();
  let reg: TestRegistry | undefined;
  let proxy: FaultProxy | undefined;
  const stop = async (): Promise<void> => {
    await proxy?.stop();
    await reg?.stop();
    cleanup();
  };
  try {
    reg = await startRegistry();
    proxy = await startFaultProxy(reg.host);
    const built = await buildEstargzImage(join(dir, 'img'), layers, opts);
    const r = reg;
    await withClient((c) => pushLayoutImage(c, { endpoint: r.host, registry: r.host, repository }, join(dir, 'img'), built.manifest.digest, 'v1'));
    return { reg, proxy, dir, ref: `${proxy.host}/${repository}:v1`, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
