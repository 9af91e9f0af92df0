// Lint rules, including the architecture: which folder may import which (DESIGN.md).
import tseslint from 'typescript-eslint';

const forbid = (...names) =>
  names.flatMap((n) => [`../${n}/*`, `../../${n}/*`, `../${n}/**`]).map((group) => group);

const layerRule = (folder, banned, extraPaths = []) => ({
  files: [`src/${folder}/**/*.ts`],
  rules: {
    'no-restricted-imports': [
      'error',
      {
        patterns: [{ group: forbid(...banned), message: `src/${folder} must not import ${banned.join(', ')} (DESIGN.md module map)` }],
        paths: extraPaths.map((name) => ({ name, message: `src/${folder} must not use ${name} directly` })),
      },
    ],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'build/**', 'native/**', 'bench/results/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  layerRule('toc', ['http', 'chunkcache', 'layer', 'fs', 'cli']),
  layerRule('http', ['toc', 'chunkcache', 'layer', 'fs', 'cli']),
  layerRule('chunkcache', ['toc', 'http', 'layer', 'fs', 'cli']),
  layerRule('layer', ['fs', 'cli']),
  layerRule('convert', ['chunkcache', 'layer', 'fs', 'cli']),
  layerRule('metrics', ['toc', 'http', 'chunkcache', 'layer', 'fs', 'cli', 'convert']),
  layerRule('fs', ['cli', 'http', 'chunkcache', 'supervisor'], ['undici', 'better-sqlite3', 'node:fs', 'node:fs/promises', 'fs']),
  // The supervisor link: the addon's descriptor passing (fs/fuse-binding.ts), nothing of images.
  layerRule('supervisor', ['cli', 'service', 'snapshotter', 'store', 'toc', 'http', 'chunkcache', 'layer', 'convert', 'metrics']),
  layerRule('service', ['cli', 'snapshotter', 'store']),
  layerRule('snapshotter', ['cli', 'store']),
  // podman's layer store: an adapter of the service, beside the snapshotter.
  layerRule('store', ['cli', 'snapshotter', 'toc', 'chunkcache', 'layer', 'convert']),
  // The snapshotter keeps apart from the service too, but for its two adapters to it
  // (adapter.ts, remote-layers.ts) and the mount table (service/mountpoint.ts).
  {
    ...layerRule('snapshotter', ['cli', 'service']),
    ignores: ['src/snapshotter/adapter.ts', 'src/snapshotter/remote-layers.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: [...forbid('cli', 'service'), '!../service/mountpoint.js'], message: 'src/snapshotter must not import cli, or service but for its mount table (DESIGN.md module map)' }] }],
    },
  },
  {
    files: ['src/**/*.ts'],
    ignores: ['src/cli/**'],
    rules: {
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'only src/cli reads process.env; pass config down' }],
    },
  },
);
