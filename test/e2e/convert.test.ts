// convert against a real registry, then mounted: every fixture variant made by our
// converter from the unconverted `gzip` image (registry to registry) mounts to the
// fixtures' EXPECTED tree; and the optimize loop without a sandbox: a workload on a
// mount is recorded, exported, used by convert --prioritize, and on a cold machine the
// new image's landmark prefetch brings the workload's files before it asks (counted at
// the proxy in front of the registry).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { entry } from '../helpers/entries.js';
import { fixturesDir } from '../helpers/paths.js';
import { fixtureRegistry, type FixtureRegistry } from '../helpers/fixture-registry.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { cliJson, runCli } from '../helpers/cli.js';
import { compareTree, mountDaemon, type TestMount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';
import type { TarEntry } from '../../src/toc/tar.js';

describe('stargzfs convert, then mount (real registry, real FUSE)', () => {
  let fx: FixtureRegistry;
  const fresh = (name: string): string => fx.fresh(name);

  before(async () => {
    fx = await fixtureRegistry(['gzip']);
  });
  after(async () => {
    await fx?.stop();
  });

  const variants = [
    { name: 'esgz', args: [] as string[] },
    { name: 'esgz-prefetch', args: ['--prioritize', join(fixturesDir(), 'source', 'record.jsonl')] },
    { name: 'esgz-chunk64k', args: ['--chunk-size', '64K'] },
    { name: 'esgz-min-chunk', args: ['--min-chunk-size', '16K'] },
    { name: 'zstdchunked', args: ['--format', 'zstdchunked'] },
  ];
  for (const v of variants) {
    it(`gzip converted by stargzfs (${v.name}) from the registry to the registry mounts to EXPECTED.tsv`, async () => {
      const dst = `${fx.reg.host}/converted/${v.name}:latest`;
      const r = await runCli(['--root', fresh('root'), 'convert', ...v.args, fx.ref('gzip'), dst]);
      assert.equal(r.code, 0, r.stderr);
      const inspect = await cliJson<{ layers: Array<{ format: string; verified: boolean; landmark: string }> }>(['--root', fresh('root'), 'inspect', '--json', dst]);
      const format = v.name === 'zstdchunked' ? 'zstd:chunked (flavor A)' : 'eStargz';
      assert.deepEqual(inspect.layers.map((l) => [l.format, l.verified, l.landmark]), [0, 1, 2].map(() => [format, true, v.name === 'esgz-prefetch' ? 'prefetch' : 'no-prefetch']));
      let m: TestMount | undefined;
      try {
        m = await mountDaemon(['--root', fresh('root'), dst], fresh('mnt'));
        const cmp = compareTree(m.mountpoint, join(fixturesDir(), 'gzip', 'EXPECTED.tsv'));
        assert.ok(cmp.ok, cmp.report);
        assert.match(cmp.report, / 0 failed/);
      } finally {
        await m?.stop();
      }
    });
  }

  describe('the optimize loop: record, export, convert --prioritize, prefetch on a cold machine', () => {
    let img: ServedImage;
    const r = rng(66);
    // 120 modules of 24 KiB each: far apart in the blob unless prioritized.
    const files: TarEntry[] = [entry({ name: 'app/', type: 'dir' })];
    for (let i = 0; i < 120; i++) files.push(entry({ name: `app/mod-${String(i).padStart(3, '0')}.py`, body: bytes(r, 24 << 10) }));
    const workload = [97, 3, 55, 110, 21, 76, 42, 8, 64, 119].map((i) => `app/mod-${String(i).padStart(3, '0')}.py`);
    const body = (p: string): Buffer => (files.find((f) => f.header.name === p) as TarEntry).body;
    const runWorkload = async (mnt: string): Promise<void> => {
      // In order, awaited one by one: a start-up reads its files as it imports them.
      for (const p of workload) assert.ok((await readFile(join(mnt, p))).equals(body(p)), p);
    };

    before(async () => {
      img = await serveImage('loop/app', [files]);
    });
    after(async () => {
      await img?.stop();
    });

    it('the recorded files come first in the converted image and arrive by prefetch before the workload reads them', async () => {
      const root1 = fresh('root');
      let m: TestMount | undefined;
      try {
        m = await mountDaemon(['--root', root1, '--no-background-fetch', img.ref], fresh('mnt'));
        await runWorkload(m.mountpoint);
      } finally {
        await m?.stop();
      }
      const profile = fresh('profile.txt');
      const exp = await runCli(['--root', root1, 'profile', 'export', img.ref, '--out', profile]);
      assert.equal(exp.code, 0, exp.stderr);
      assert.deepEqual(readFileSync(profile, 'utf8').trim().split('\n'), workload.map((p) => `/${p}`), 'the profile is the workload, in its order');

      const optimized = `${img.proxy.host}/loop/app:optimized`;
      const conv = await runCli(['--root', root1, 'convert', '--prioritize', profile, img.ref, optimized]);
      assert.equal(conv.code, 0, conv.stderr);
      const inspect = await cliJson<{ layers: Array<{ landmark: string; prefetchSize: number; size: number }> }>(['--root', fresh('root'), 'inspect', '--json', optimized]);
      const layer = inspect.layers[0] as { landmark: string; prefetchSize: number; size: number };
      assert.equal(layer.landmark, 'prefetch');
      assert.ok(layer.prefetchSize < layer.size / 5, `prefetch region ${layer.prefetchSize} of ${layer.size} bytes: the workload's files, not the layer`);

      // A cold machine: new state root (no cache, no profile), learned prefetch off too.
      let m2: TestMount | undefined;
      try {
        img.proxy.reset();
        m2 = await mountDaemon(['--root', fresh('root'), '--no-background-fetch', '--no-learned-prefetch', optimized], fresh('mnt'));
        const statusFile = join(m2.mountpoint, '.stargzfs', 'status.json');
        const deadline = Date.now() + 20_000;
        for (;;) {
          const s = JSON.parse(await readFile(statusFile, 'utf8')) as { layers: Array<{ prefetch: { landmark: string } | null }> };
          const state = s.layers[0]?.prefetch?.landmark;
          if (state === 'done') break;
          assert.notEqual(state, 'failed');
          assert.ok(Date.now() < deadline, `landmark prefetch still ${state}`);
          await new Promise((res) => setTimeout(res, 50));
        }
        const before = img.proxy.stats.ranges.length;
        const prefetched = img.proxy.stats.blobBytes;
        assert.ok(before > 0, 'the prefetch fetched ranges');
        await runWorkload(m2.mountpoint);
        assert.deepEqual(img.proxy.stats.ranges.slice(before), [], 'the workload needed no range request: its files were prefetched');
        assert.ok(prefetched < layer.size / 4, `prefetch moved ${prefetched} bytes`);
      } finally {
        await m2?.stop();
      }
    });
  });
});
