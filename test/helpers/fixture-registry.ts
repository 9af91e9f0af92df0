// A real registry holding fixture variants (pushed from their OCI layouts, byte for
// byte) and a scratch directory: the set-up of the e2e tests that mount fixtures.
import { join } from 'node:path';
import { pushLayoutImage } from '../../src/http/push.js';
import { fixtureManifest, fixturesDir } from './paths.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { withClient } from './client.js';
import { tempDir } from './tmp.js';

export interface FixtureRegistry {
  readonly reg: TestRegistry;
  /** `<host>/fixture/<variant>:latest` */
  ref(variant: string): string;
  /** A new path in the scratch directory. */
  fresh(name: string): string;
  stop(): Promise<void>;
}

export async function fixtureRegistry(variants: readonly string[]): Promise<FixtureRegistry> {
  const { dir, cleanup } = tempDir();
  let n = 0;
  const reg = await startRegistry();
  try {
    await withClient(async (client) => {
      for (const v of variants) {
        await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: `fixture/${v}` }, join(fixturesDir(), v, 'oci'), fixtureManifest(v), 'latest');
      }
    });
  } catch (err) {
    await reg.stop();
    cleanup();
    throw err;
  }
  return {
    reg,
    ref: (v) => `${reg.host}/fixture/${v}:latest`,
    fresh: (name) => join(dir, `${name}-${++n}`),
    stop: async () => {
      await reg.stop();
      cleanup();
    },
  };
}
