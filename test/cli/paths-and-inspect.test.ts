// The CLI on hostile images built in the test (issue 22, item 9): cat and ls follow a
// symlink in the middle of a path inside the image; a link cycle is "too many levels of
// symbolic links" with exit 3 (it was "no such file"); inspect reporting an unreadable
// layer exits with that error's code (it exited 0).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { entries } from '../helpers/entries.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { blobPath, manifestOf, sha256, type Manifest } from '../helpers/layout.js';

const TOC_DIGEST = 'containerd.io/snapshot/stargz/toc.digest';

describe('paths and inspect on built images', () => {
  let dir = '';
  let cleanup = (): void => undefined;
  let img = '';
  before(async () => {
    ({ dir, cleanup } = tempDir());
    img = join(dir, 'img');
    await buildEstargzImage(img, [entries([
      { name: 'usr/', type: 'dir' },
      { name: 'usr/lib/', type: 'dir' },
      { name: 'usr/lib/os-release', body: 'ID=test\n' },
      { name: 'lib', link: 'usr/lib' },
      { name: 'loop/', type: 'dir' },
      { name: 'loop/a', link: 'b' },
      { name: 'loop/b', link: 'a' },
    ])]);
  });
  after(() => cleanup());
  const sgz = (...args: string[]) => runCli(['--root', join(dir, 'root'), ...args]);

  it('cat and ls follow a symlink in the middle of the path', async () => {
    const cat = await sgz('cat', `oci:${img}`, 'lib/os-release');
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout.toString(), 'ID=test\n');
    const ls = await sgz('ls', `oci:${img}`, 'lib/os-release');
    assert.equal(ls.code, 0, ls.stderr);
    const st = await sgz('stat', '--json', `oci:${img}`, 'lib/os-release');
    assert.equal(st.code, 0, st.stderr);
  });

  it('a link cycle: too many levels of symbolic links, exit 3', async () => {
    for (const p of ['loop/a', 'loop/a/x']) {
      const r = await sgz('cat', `oci:${img}`, p);
      assert.equal(r.code, 3, r.stderr);
      assert.match(r.stderr, /too many levels of symbolic links \(SGZ_SYMLINK_LOOP\)/);
    }
  });

  it('inspect of an image with an unreadable layer exits with its error code (5: TOC digest mismatch)', async () => {
    // The same image with a wrong TOC digest annotation: a new manifest, and index.json naming it.
    const bad = join(dir, 'bad');
    const { cpSync } = await import('node:fs');
    cpSync(img, bad, { recursive: true });
    const m = manifestOf(bad);
    const layer = m.layers[0] as Manifest['layers'][number];
    layer.annotations = { ...layer.annotations, [TOC_DIGEST]: `sha256:${'0'.repeat(64)}` };
    const bytes = Buffer.from(JSON.stringify(m));
    const digest = sha256(bytes);
    writeFileSync(blobPath(bad, digest), bytes);
    const index = JSON.parse(readFileSync(join(bad, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string; size: number }> };
    index.manifests = index.manifests.map((d) => ({ ...d, digest, size: bytes.length }));
    writeFileSync(join(bad, 'index.json'), JSON.stringify(index));

    const human = await sgz('inspect', `oci:${bad}`);
    assert.equal(human.code, 5, human.stderr);
    assert.match(human.stdout.toString(), /unreadable/);
    const json = await sgz('inspect', '--json', `oci:${bad}`);
    assert.equal(json.code, 5, json.stderr);
    assert.notEqual((JSON.parse(json.stdout.toString()) as { layers: Array<{ error: unknown }> }).layers[0]?.error, null);
    const good = await sgz('inspect', `oci:${img}`);
    assert.equal(good.code, 0, good.stderr);
  });
});
