// Where the repository, the built CLI and the shared fixtures are.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Repository root (tests run from dist/test/…). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
/** The CLI's bundle `make build` writes (scripts/bundle.sh), run with node. */
export const cliPath = resolve(repoRoot, 'dist/bundle/stargzfs.mjs');
/** The executable as it ships: the shell launcher in front of the bundle (src/cli/stargzfs.sh). */
export const launcherPath = resolve(repoRoot, 'dist/bundle/stargzfs');

/** ../shared/fixtures beside the repository, read in place (never copied). */
export function fixturesDir(): string {
  const dir = resolve(repoRoot, '../shared/fixtures');
  if (!existsSync(resolve(dir, 'README.md'))) {
    throw new Error(`fixtures not found at ${dir}: the tests read ../shared/fixtures beside the repository`);
  }
  return dir;
}

export const FIXTURE_VARIANTS = ['esgz', 'esgz-prefetch', 'esgz-chunk64k', 'zstdchunked'] as const;

/** The manifest digest of a fixture variant's OCI layout (its index's first entry). */
export function fixtureManifest(variant: string): string {
  const index = JSON.parse(readFileSync(join(fixturesDir(), variant, 'oci', 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
  return index.manifests[0]?.digest as string;
}
