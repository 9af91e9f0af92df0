// The reference converter's images (../shared/fixtures): the tree `ls -R -l --json`
// reports equals EXPECTED.tsv (merged) and LAYERS.tsv (per layer) in every column, and
// every regular file reads back with the recorded sha256.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EntryInfo } from '../../src/cli/entry-info.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import type { ImageView } from '../../src/toc/view.js';
import type { FileReader } from '../../src/layer/file-reader.js';
import { cliJson, runCli } from '../helpers/cli.js';
import { testConfig } from '../helpers/config.js';
import { FIXTURE_VARIANTS, fixturesDir } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';
import { diffLines, readTsv, toTsvLines, type TreeRow } from '../helpers/treetsv.js';

const fixtures = fixturesDir();
const ref = (variant: string): string => `oci:${join(fixtures, variant, 'oci')}`;

async function shaOf(view: ImageView, reader: FileReader, path: string): Promise<string> {
  const node = resolvePath(view, path);
  const h = createHash('sha256');
  for await (const piece of reader.stream(node, path)) h.update(piece);
  return h.digest('hex');
}

async function tree(variant: string, root: string, layer?: number): Promise<EntryInfo[]> {
  const layerArgs = layer !== undefined ? ['--layer', String(layer)] : [];
  const rootInfo = await cliJson<EntryInfo>(['stat', '--root', root, '--json', ...layerArgs, ref(variant), '/']);
  const children = await cliJson<EntryInfo[]>(['ls', '--root', root, '-R', '-l', '--json', ...layerArgs, ref(variant), '/']);
  return [rootInfo, ...children];
}

async function withShas(variant: string, root: string, infos: EntryInfo[], layer?: number): Promise<TreeRow[]> {
  return withImage(testConfig(root), ref(variant), async ({ image }) => {
    const view = layer === undefined ? image.merged() : image.layer(String(layer));
    const rows: TreeRow[] = [];
    for (const info of infos) {
      rows.push({ info, sha256: info.type === 'reg' ? await shaOf(view, image.reader, info.path) : null });
    }
    return rows;
  });
}

for (const variant of FIXTURE_VARIANTS) {
  describe(`fixture ${variant}`, () => {
    let root: string;
    let cleanup: () => void;
    before(() => ({ dir: root, cleanup } = tempDir()));
    after(() => cleanup());

    it('merged tree equals EXPECTED.tsv in every column, contents included', async () => {
      const rows = await withShas(variant, root, await tree(variant, root));
      const diff = diffLines(toTsvLines(rows), readTsv(join(fixtures, variant, 'EXPECTED.tsv')));
      assert.equal(diff, '', `differences (- expected, + stargzfs):\n${diff}`);
    });

    for (const layer of [0, 1, 2]) {
      it(`layer ${layer} equals LAYERS.tsv`, async () => {
        const rows = await withShas(variant, root, await tree(variant, root, layer), layer);
        const diff = diffLines(toTsvLines(rows, layer), readTsv(join(fixtures, variant, 'LAYERS.tsv'), layer));
        assert.equal(diff, '', `differences (- expected, + stargzfs):\n${diff}`);
      });
    }

    it('inspect agrees with the converter: TOC digest, entries, landmark offset', async () => {
      const report = await cliJson<{ layers: Array<{ tocDigest: string; entries: number; landmark: string; prefetchSize: number; format: string }> }>([
        'inspect', '--root', root, '--json', ref(variant),
      ]);
      for (const [i, l] of report.layers.entries()) {
        const json = readFileSync(join(fixtures, variant, 'toc', `layer-${i}.json`));
        assert.equal(l.tocDigest, `sha256:${createHash('sha256').update(json).digest('hex')}`);
        const entries = (JSON.parse(json.toString()) as { entries: Array<{ name: string; offset?: number }> }).entries;
        assert.equal(l.entries, entries.length);
        const landmark = entries.find((e) => e.name === '.prefetch.landmark');
        assert.equal(l.landmark, landmark !== undefined ? 'prefetch' : 'no-prefetch');
        assert.equal(l.prefetchSize, landmark?.offset ?? 0);
        assert.equal(l.format, variant === 'zstdchunked' ? 'zstd:chunked (flavor A)' : 'eStargz');
      }
    });

    it('the second open reuses meta.db without reading the TOC again', async () => {
      const report = await cliJson<{ layers: Array<{ indexedFromCache: boolean; verified: boolean }> }>([
        'inspect', '--root', root, '--json', ref(variant),
      ]);
      assert.deepEqual(report.layers.map((l) => [l.indexedFromCache, l.verified]), [[true, true], [true, true], [true, true]]);
    });
  });
}

describe('fixture gzip (plain layers, fetched whole)', () => {
  let root: string;
  let cleanup: () => void;
  before(() => ({ dir: root, cleanup } = tempDir()));
  after(() => cleanup());

  it('merged tree equals EXPECTED.tsv in every column, contents included', async () => {
    const rows = await withShas('gzip', root, await tree('gzip', root));
    const diff = diffLines(toTsvLines(rows), readTsv(join(fixtures, 'gzip', 'EXPECTED.tsv')));
    assert.equal(diff, '', `differences (- expected, + stargzfs):\n${diff}`);
  });

  for (const layer of [0, 1, 2]) {
    it(`layer ${layer} equals LAYERS.tsv`, async () => {
      const rows = await withShas('gzip', root, await tree('gzip', root, layer), layer);
      const diff = diffLines(toTsvLines(rows, layer), readTsv(join(fixtures, 'gzip', 'LAYERS.tsv'), layer));
      assert.equal(diff, '', `differences (- expected, + stargzfs):\n${diff}`);
    });
  }

  it('with the chunk cache cleared, the blob is fetched again and reads exactly', async () => {
    const cleared = await runCli(['--root', root, 'cache', 'clear']);
    assert.equal(cleared.code, 0, cleared.stderr);
    const r = await runCli(['--root', root, 'cat', ref('gzip'), '/files/size-9MiB+12345']);
    assert.equal(r.code, 0, r.stderr);
    const want = readFileSync(join(fixtures, 'gzip', 'EXPECTED.tsv'), 'utf8').split('\n').find((l) => l.startsWith('files/size-9MiB+12345\t'))?.split('\t')[8];
    assert.equal(createHash('sha256').update(r.stdout).digest('hex'), want);
  });
});

describe('fixture gzip (plain layers)', () => {
  it('inspect reports every layer NOT LAZY with the reason', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const report = await cliJson<{ layers: Array<{ lazy: boolean; format: string; notLazyReason: string | null }> }>([
        'inspect', '--root', dir, '--json', ref('gzip'),
      ]);
      assert.equal(report.layers.length, 3);
      for (const l of report.layers) {
        assert.equal(l.lazy, false);
        assert.match(l.notLazyReason ?? '', /plain gzip layer/);
      }
      const human = await runCli(['inspect', '--root', dir, ref('gzip')]);
      assert.equal(human.code, 0);
      assert.match(human.stdout.toString(), /NOT LAZY: plain gzip layer/);
      const ls = await runCli(['ls', '--root', dir, ref('gzip')]);
      assert.equal(ls.code, 0, ls.stderr);
    } finally {
      cleanup();
    }
  });
});
