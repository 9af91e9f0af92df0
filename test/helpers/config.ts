import { resolveConfig, type Config, type ConfigInput } from '../../src/config.js';

/** A Config for tests: state under `root`, quiet logs. */
export function testConfig(root: string, extra: ConfigInput = {}): Config {
  return resolveConfig({ root, logLevel: 'silent', ...extra }, { uid: 0, home: undefined, xdgCacheHome: undefined, arch: process.arch });
}
