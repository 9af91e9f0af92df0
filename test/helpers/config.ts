import { resolveConfig, type Config, type ConfigInput } from '../../src/config.js';

/** A Config for tests: state under `root`, quiet logs. */
export function testConfig(root: string, extra: ConfigInput = {}): Config {
  return resolveConfig({ root, logLevel: 'silent', ...extra }, { uid: 0, home: undefined, xdgCacheHome: undefined, arch: process.arch });
}

/** Registry client options for tests: the defaults, with short timeouts and one retry. */
export function httpOptions(extra: Partial<Config['http']> = {}): Config['http'] {
  return { ...testConfig('/nonexistent').http, timeoutMs: 10_000, retries: 1, dockerConfigDir: undefined, ...extra };
}
