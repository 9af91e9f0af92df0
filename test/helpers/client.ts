import { RegistryClient } from '../../src/http/registry-client.js';
import { DockerConfigCredentials } from '../../src/http/credentials.js';
import { createLogger } from '../../src/log.js';
import type { Config } from '../../src/config.js';
import { httpOptions } from './config.js';

/** A registry client for tests: quiet, short timeouts; credentials from `dockerConfig` if given. */
export function testClient(extra: Partial<Config['http']> = {}, dockerConfig?: string): RegistryClient {
  const log = createLogger('silent');
  return new RegistryClient(httpOptions(extra), new DockerConfigCredentials(dockerConfig, log), log);
}

/** Runs `fn` with a fresh client and closes it after, also on failure. */
export async function withClient<T>(fn: (c: RegistryClient) => Promise<T>, extra: Partial<Config['http']> = {}, dockerConfig?: string): Promise<T> {
  const client = testClient(extra, dockerConfig);
  try {
    return await fn(client);
  } finally {
    await client.close();
  }
}
