// A registry behind our token server, with the fixture's esgz image pushed to the given
// repositories as `latest`, and a docker config (DOCKER_CONFIG dir) holding the user's
// credentials: the set-up of every test of token auth.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pushLayoutImage } from '../../src/http/push.js';
import { fixtureManifest, fixturesDir } from './paths.js';
import { startRegistry, type TestRegistry } from './registry.js';
import { startTokenServer, type TokenServer } from './token-server.js';
import { testClient } from './client.js';

export interface TokenRegistry {
  readonly reg: TestRegistry;
  readonly tokens: TokenServer;
  /** A DOCKER_CONFIG directory with the user's credentials for the registry. */
  readonly conf: string;
  stop(): Promise<void>;
}

export async function startTokenRegistry(dir: string, user: string, password: string, repos: readonly string[], expiresIn = 300): Promise<TokenRegistry> {
  const tokens = await startTokenServer(dir, { [user]: password }, expiresIn);
  let reg: TestRegistry | undefined;
  const stop = async (): Promise<void> => {
    await reg?.stop();
    await tokens.stop();
  };
  try {
    reg = await startRegistry({ extraConfig: tokens.registryConfig('stargzfs-test-registry') });
    const conf = join(dir, 'docker');
    mkdirSync(conf);
    writeFileSync(join(conf, 'config.json'), JSON.stringify({ auths: { [reg.host]: { username: user, password } } }));
    const client = testClient({}, conf);
    try {
      for (const repository of repos) {
        await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository }, join(fixturesDir(), 'esgz', 'oci'), fixtureManifest('esgz'), 'latest');
      }
    } finally {
      await client.close();
    }
    return { reg, tokens, conf, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}
