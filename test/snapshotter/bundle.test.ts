// The snapshotter inside an esbuild bundle, laid out as scripts/bundle.sh lays out
// dist/bundle: the code in chunks/, the .proto files copied to proto/ beside them. Checks
// that @grpc/grpc-js and @grpc/proto-loader bundle, that the bundled code finds the protos
// from a chunk (../proto), and that a client gets answers from it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { build } from 'esbuild';
import { createLogger } from '../../src/log.js';
import { client, grpcCode, RecordingProvider } from './harness.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..', '..');

describe('the snapshotter bundled', () => {
  it('bundles without errors, finds its protos beside the chunks and serves', async () => {
    // Inside the repository, so that the external better-sqlite3 resolves from node_modules.
    const out = mkdtempSync(join(here, '.bundle-'));
    try {
      const entry = join(out, 'entry.js');
      writeFileSync(entry, [
        `export { serveSnapshotter } from ${JSON.stringify(join(repo, 'dist/src/snapshotter/grpc-server.js'))};`,
        `export { Snapshotter } from ${JSON.stringify(join(repo, 'dist/src/snapshotter/snapshotter.js'))};`,
      ].join('\n'));
      const res = await build({
        entryPoints: [entry], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: join(out, 'chunks', 'snap.mjs'),
        external: ['better-sqlite3'], logLevel: 'silent',
        banner: { js: "import { createRequire as __r } from 'node:module'; const require = __r(import.meta.url);" },
      });
      assert.deepEqual([res.errors, res.warnings], [[], []]);
      cpSync(join(repo, 'src', 'snapshotter', 'proto'), join(out, 'proto'), { recursive: true });

      const mod = (await import(pathToFileURL(join(out, 'chunks', 'snap.mjs')).href)) as typeof import('../../src/snapshotter/grpc-server.js') & typeof import('../../src/snapshotter/snapshotter.js');
      const log = createLogger('silent');
      const s = await mod.Snapshotter.open(join(out, 'root'), new RecordingProvider(), log);
      try {
        const address = join(out, 'snapshotter.sock');
        const server = await mod.serveSnapshotter(address, s, log);
        const api = client(address);
        try {
          await assert.rejects(api.Stat({ key: 'nope' }), grpcCode(grpc.status.NOT_FOUND));
          await api.Prepare({ key: 'a' });
          assert.equal((await api.Usage({ key: 'a' })).inodes, 1);
        } finally {
          api.close();
          await server.close();
        }
      } finally {
        s.close();
      }

      // Without the copied protos, the error names every place looked at.
      rmSync(join(out, 'proto'), { recursive: true });
      const s2 = await mod.Snapshotter.open(join(out, 'root'), new RecordingProvider(), log);
      try {
        await assert.rejects(mod.serveSnapshotter(join(out, 'x.sock'), s2, log), (err: Error) =>
          err.message.includes(join(out, 'chunks', 'proto/')) && err.message.includes(join(out, 'proto/')) && /snapshots\.proto not found/.test(err.message));
      } finally {
        s2.close();
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  });
});
