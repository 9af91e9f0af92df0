import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { OciLayoutSource, parseOciRef } from '../../src/http/oci-layout.js';
import { writeOciImage } from '../../src/http/oci-layout-writer.js';
import { OCI_INDEX } from '../../src/http/media-types.js';
import { tempDir } from '../helpers/tmp.js';

const layer = (s: string) => ({ blob: Buffer.from(s), mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', diffId: `sha256:${'0'.repeat(64)}` });

describe('OCI layout source', () => {
  it('parses oci: references', async () => {
    assert.deepEqual(await parseOciRef('oci:/x/y:tag'), { dir: '/x/y', tag: 'tag', digest: undefined });
    assert.deepEqual(await parseOciRef(`oci:/x@sha256:${'a'.repeat(64)}`), { dir: '/x', tag: undefined, digest: `sha256:${'a'.repeat(64)}` });
    assert.deepEqual(await parseOciRef('oci:rel/dir'), { dir: 'rel/dir', tag: undefined, digest: undefined });
    await assert.rejects(parseOciRef('docker://x'), { code: 'SGZ_REFERENCE' });
    await assert.rejects(parseOciRef('oci:/x@sha256:zz'), { code: 'SGZ_REFERENCE' });
  });

  it('picks images by tag, asks for one when there are several, and verifies what it reads', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const a = await writeOciImage(dir, { layers: [layer('a')], refName: 'one' });
      await writeOciImage(dir, { layers: [layer('b'), layer('c')], refName: 'two' });
      const two = await (await OciLayoutSource.open(`oci:${dir}:two`)).resolve('linux/amd64');
      assert.equal(two.layers.length, 2);
      assert.equal((await (await OciLayoutSource.open(`oci:${dir}@${a.digest}`)).resolve('linux/amd64')).manifestDigest, a.digest);
      await assert.rejects((await OciLayoutSource.open(`oci:${dir}`)).resolve('linux/amd64'), /holds 2 images; name one .*one, two/);
      await assert.rejects((await OciLayoutSource.open(`oci:${dir}:three`)).resolve('linux/amd64'), /no image named "three"/);
      writeFileSync(join(dir, 'blobs/sha256', a.digest.slice(7)), '{"tampered":true}');
      await assert.rejects((await OciLayoutSource.open(`oci:${dir}:one`)).resolve('linux/amd64'), { code: 'SGZ_IMAGE', message: /has digest/ });
      await assert.rejects(OciLayoutSource.open(`oci:${join(dir, 'nope')}`), { code: 'SGZ_IMAGE' });
    } finally {
      cleanup();
    }
  });

  it('selects the platform from an index like a runtime does', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const amd = await writeOciImage(dir, { layers: [layer('amd')], architecture: 'amd64' });
      const arm = await writeOciImage(dir, { layers: [layer('arm')], architecture: 'arm64' });
      const index = Buffer.from(JSON.stringify({
        schemaVersion: 2, mediaType: OCI_INDEX,
        manifests: [
          { ...amd, platform: { os: 'linux', architecture: 'amd64' } },
          { ...arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
        ],
      }));
      const digest = `sha256:${createHash('sha256').update(index).digest('hex')}`;
      writeFileSync(join(dir, 'blobs/sha256', digest.slice(7)), index);
      writeFileSync(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: OCI_INDEX, digest, size: index.length }] }));
      const src = await OciLayoutSource.open(`oci:${dir}`);
      assert.equal((await src.resolve('linux/arm64')).manifestDigest, arm.digest);
      assert.equal((await src.resolve('linux/amd64')).manifestDigest, amd.digest);
      await assert.rejects(src.resolve('linux/s390x'), /no image for platform linux\/s390x \(available: linux\/amd64, linux\/arm64\/v8\)/);
      // A layer blob is read by range, bounds-checked.
      const img = await src.resolve('linux/arm64');
      const desc = img.layers[0];
      assert.ok(desc);
      assert.equal((await src.blob(desc).readAt(1, 2)).toString(), 'rm');
      await assert.rejects(src.blob(desc).readAt(2, 5), { code: 'SGZ_RANGE' });
      await src.close();
      rmSync(join(dir, 'blobs/sha256', arm.digest.slice(7)));
      await assert.rejects((await OciLayoutSource.open(`oci:${dir}`)).resolve('linux/arm64'), /is missing/);
    } finally {
      cleanup();
    }
  });
});
