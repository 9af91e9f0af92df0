// Where the repository, the built CLI and the shared fixtures are.
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/…). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const cliPath = resolve(repoRoot, 'dist/src/cli/main.js');

/** ../shared/fixtures beside the repository, read in place (never copied). */
export function fixturesDir(): string {
  const dir = resolve(repoRoot, '../shared/fixtures');
  if (!existsSync(resolve(dir, 'README.md'))) {
    throw new Error(`fixtures not found at ${dir}: the tests read ../shared/fixtures beside the repository`);
  }
  return dir;
}

export const FIXTURE_VARIANTS = ['esgz', 'esgz-prefetch', 'esgz-chunk64k', 'zstdchunked'] as const;
