// `stargzfs convert` run as a person would (the built CLI), between OCI layouts and
// archives on disk. What the reference converter made from the same source is the
// yardstick: the fixtures' eStargz variants were converted by ctr-remote from the `gzip`
// variant, so converting `gzip` here must give the same TOCs (entry for entry), the
// same annotations, media types and footer, and configs whose diff_ids match the blobs.
// The registry and mount side is in test/e2e/convert.test.ts.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, symlinkSync, truncateSync, writeFileSync, linkSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { decompress as zstdDecompress } from 'zstd-napi';
import { fixturesDir } from '../helpers/paths.js';
import { PREFETCH_SIZE_ANNOTATION, TOC_OFFSET_ANNOTATION } from '../../src/toc/blob.js';
import { runCli, cliJson } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';
import { blob, blobPath, copyLayout, indexEntry, json, manifestOf, putImage, sha256, tocBytes, type LayerDesc, type Manifest } from '../helpers/layout.js';

const TOC = 'containerd.io/snapshot/stargz/toc.digest';
const SIZE = 'io.containers.estargz.uncompressed-size';

interface TocEntry { name: string; type: string; uid?: number; gid?: number; userName?: string; groupName?: string; [k: string]: unknown }

/**
 * TOC entries without what depends on compressed sizes (offset, innerOffset), with user
 * and group names made explicit: the reference repeats a name wherever one of its
 * parallel sections starts, which readers resolve the same way.
 */
function normalized(tocJson: Buffer): Array<Record<string, unknown>> {
  const users = new Map<number, string>();
  const groups = new Map<number, string>();
  return (JSON.parse(tocJson.toString('utf8')) as { entries: TocEntry[] }).entries.map((e) => {
    const { offset: _o, innerOffset: _i, userName, groupName, ...rest } = e;
    if (userName !== undefined) users.set(e.uid ?? 0, userName);
    if (groupName !== undefined) groups.set(e.gid ?? 0, groupName);
    return e.type === 'chunk' ? rest : { ...rest, user: users.get(e.uid ?? 0) ?? '', group: groups.get(e.gid ?? 0) ?? '' };
  });
}

const VARIANTS = [
  { variant: 'esgz', args: [] as string[] },
  { variant: 'esgz-prefetch', args: ['--prioritize', join(fixturesDir(), 'source', 'record.jsonl')] },
  { variant: 'esgz-chunk64k', args: ['--chunk-size', '64K'] },
];

describe('stargzfs convert (OCI layouts and archives)', () => {
  let dir: string;
  let cleanup: () => void;
  let n = 0;
  const fresh = (name: string): string => join(dir, `${name}-${++n}`);
  const gzipLayout = (): string => join(fixturesDir(), 'gzip', 'oci');
  const convert = async (src: string, dst: string, args: readonly string[] = []): Promise<void> => {
    const r = await runCli(['--root', fresh('root'), 'convert', ...args, src, dst]);
    assert.equal(r.code, 0, r.stderr);
  };

  before(() => ({ dir, cleanup } = tempDir()));
  after(() => cleanup?.());

  for (const { variant, args } of VARIANTS) {
    it(`gzip → ${variant}: the TOCs, annotations, media types and footer the reference converter wrote`, async () => {
      const out = fresh('out');
      await convert(`oci:${gzipLayout()}`, `oci:${out}:${variant}`, args);
      const ours = manifestOf(out, variant);
      const refDir = join(fixturesDir(), variant, 'oci');
      const ref = manifestOf(refDir);
      assert.equal(ours.mediaType, ref.mediaType);
      assert.equal(ours.config.mediaType, ref.config.mediaType);
      assert.equal(ours.layers.length, ref.layers.length);
      const config = json<{ rootfs: { diff_ids: string[] }; history: unknown }>(out, ours.config.digest);
      assert.deepEqual(config.history, json<{ history: unknown }>(refDir, ref.config.digest).history, 'the rest of the config is kept');
      for (const [i, l] of ours.layers.entries()) {
        const r = ref.layers[i] as LayerDesc;
        const b = blob(out, l.digest);
        assert.equal(l.mediaType, r.mediaType);
        const toc = tocBytes(b);
        // The reference's keys, plus our hints (a reader that does not know them ignores them):
        // the TOC offset, and the prioritized region's size when the layer has one.
        const landmark = (JSON.parse(toc.json.toString('utf8')) as { entries: Array<{ name: string; offset?: number }> }).entries.find((e) => e.name === '.prefetch.landmark');
        const hints = landmark !== undefined ? [TOC_OFFSET_ANNOTATION, PREFETCH_SIZE_ANNOTATION] : [TOC_OFFSET_ANNOTATION];
        assert.deepEqual(Object.keys(l.annotations ?? {}).sort(), [...Object.keys(r.annotations ?? {}), ...hints].sort(), `layer ${i} annotation keys`);
        if (landmark !== undefined) assert.equal(l.annotations?.[PREFETCH_SIZE_ANNOTATION], String(landmark.offset), `layer ${i}: the region ends at the landmark`);
        assert.equal(l.annotations?.[TOC_OFFSET_ANNOTATION], String(toc.tocOffset), `layer ${i}: the TOC offset hint is the footer's`);
        assert.equal(l.annotations?.[TOC], sha256(toc.json), `layer ${i}: the TOC digest annotation is the TOC's sha256`);
        const tar = gunzipSync(b);
        assert.equal(l.annotations?.[SIZE], String(tar.length), `layer ${i}: uncompressed size`);
        assert.equal(config.rootfs.diff_ids[i], sha256(tar), `layer ${i}: diff_id`);
        const refToc = readFileSync(join(fixturesDir(), variant, 'toc', `layer-${i}.json`));
        assert.deepEqual(normalized(toc.json), normalized(refToc), `layer ${i}: TOC entries as the reference's`);
        // The footer: the same gzip member with only the TOC offset differing.
        const refFooter = blob(refDir, r.digest).subarray(-51);
        assert.deepEqual(Buffer.concat([toc.footer.subarray(0, 16), toc.footer.subarray(32)]), Buffer.concat([refFooter.subarray(0, 16), refFooter.subarray(32)]));
        assert.equal(toc.footer.toString('latin1', 16, 32), toc.tocOffset.toString(16).padStart(16, '0'));
      }
    });
  }

  it('gzip → zstdchunked: the TOCs, annotations, media type and trailer the reference converter wrote', async () => {
    const out = fresh('out');
    await convert(`oci:${gzipLayout()}`, `oci:${out}:z`, ['--format', 'zstdchunked']);
    const ours = manifestOf(out, 'z');
    const refDir = join(fixturesDir(), 'zstdchunked', 'oci');
    const ref = manifestOf(refDir);
    const config = json<{ rootfs: { diff_ids: string[] } }>(out, ours.config.digest);
    for (const [i, l] of ours.layers.entries()) {
      const r = ref.layers[i] as LayerDesc;
      assert.equal(l.mediaType, r.mediaType);
      assert.deepEqual(Object.keys(l.annotations ?? {}), Object.keys(r.annotations ?? {}), `layer ${i} annotation keys, in the reference's order`);
      const b = blob(out, l.digest);
      const trailer = b.subarray(-48);
      const refTrailer = blob(refDir, r.digest).subarray(-48);
      assert.deepEqual([trailer.subarray(0, 8), trailer.subarray(32)], [refTrailer.subarray(0, 8), refTrailer.subarray(32)], 'skippable frame header, manifest type 1, GnUlInUx');
      const [off, clen, ulen] = [8, 16, 24].map((o) => Number(trailer.readBigUInt64LE(o)));
      assert.equal(l.annotations?.['io.containers.zstd-chunked.manifest-position'], `${off}:${clen}:${ulen}:1`);
      const compressedToc = b.subarray(off as number, (off as number) + (clen as number));
      assert.equal(l.annotations?.['io.containers.zstd-chunked.manifest-checksum'], sha256(compressedToc));
      const tocJson = zstdDecompress(compressedToc);
      assert.equal(tocJson.length, ulen);
      assert.equal(l.annotations?.[TOC], sha256(tocJson));
      const tar = zstdDecompress(b);
      assert.equal(l.annotations?.[SIZE], String(tar.length));
      assert.equal(config.rootfs.diff_ids[i], sha256(tar));
      assert.deepEqual(normalized(tocJson), normalized(readFileSync(join(fixturesDir(), 'zstdchunked', 'toc', `layer-${i}.json`))), `layer ${i}: TOC entries as the reference's`);
    }
  });

  it('layers that are eStargz already are copied byte for byte; --rebuild writes them anew with the same TOC', async () => {
    const refDir = join(fixturesDir(), 'esgz', 'oci');
    const ref = manifestOf(refDir);
    const kept = fresh('out');
    const r = await cliJson<{ images: Array<{ layers: Array<{ kept: boolean }> }> }>(['--root', fresh('root'), 'convert', '--json', `oci:${refDir}`, `oci:${kept}:x`]);
    assert.deepEqual(r.images[0]?.layers.map((l) => l.kept), [true, true, true]);
    assert.deepEqual(manifestOf(kept, 'x').layers, ref.layers);
    assert.equal(manifestOf(kept, 'x').config.digest, ref.config.digest, 'the config is unchanged too');
    const rebuilt = fresh('out');
    await convert(`oci:${refDir}`, `oci:${rebuilt}:x`, ['--rebuild']);
    const m = manifestOf(rebuilt, 'x');
    for (const [i, l] of m.layers.entries()) {
      assert.notEqual(l.digest, ref.layers[i]?.digest);
      assert.deepEqual(normalized(tocBytes(blob(rebuilt, l.digest)).json), normalized(readFileSync(join(fixturesDir(), 'esgz', 'toc', `layer-${i}.json`))));
    }
  });

  it('zstd:chunked layers are rewritten as eStargz with the same entries', async () => {
    const out = fresh('out');
    await convert(`oci:${join(fixturesDir(), 'zstdchunked', 'oci')}`, `oci:${out}:x`);
    for (const [i, l] of manifestOf(out, 'x').layers.entries()) {
      assert.equal(l.mediaType, 'application/vnd.oci.image.layer.v1.tar+gzip');
      assert.deepEqual(normalized(tocBytes(blob(out, l.digest)).json), normalized(readFileSync(join(fixturesDir(), 'esgz', 'toc', `layer-${i}.json`))));
    }
  });

  it('an OCI archive and a docker save archive of the same image convert to the same manifest as its layout', async () => {
    const fromLayout = fresh('out');
    await convert(`oci:${gzipLayout()}`, `oci:${fromLayout}:x`);
    const ociTar = `${fresh('oci')}.tar`;
    execFileSync('tar', ['-cf', ociTar, '-C', gzipLayout(), '.']);
    const fromOciTar = fresh('out');
    await convert(ociTar, `oci:${fromOciTar}:x`);
    // docker save: manifest.json, the config, and uncompressed layer.tar files; the last
    // layer is a symbolic link to a copy, as docker writes repeated layers.
    const src = manifestOf(gzipLayout());
    const save = fresh('save');
    mkdirSync(save);
    const configName = `${src.config.digest.slice(7)}.json`;
    writeFileSync(join(save, configName), blob(gzipLayout(), src.config.digest));
    const layers = src.layers.map((l, i) => {
      mkdirSync(join(save, `l${i}`));
      writeFileSync(join(save, `l${i}`, 'layer.tar'), gunzipSync(blob(gzipLayout(), l.digest)));
      return `l${i}/layer.tar`;
    });
    mkdirSync(join(save, 'dup'));
    execFileSync('mv', [join(save, 'l2', 'layer.tar'), join(save, 'dup', 'layer.tar')]);
    symlinkSync('../dup/layer.tar', join(save, 'l2', 'layer.tar'));
    writeFileSync(join(save, 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: ['fixture:gzip'], Layers: layers }]));
    const saveTar = `${save}.tar`;
    execFileSync('tar', ['-cf', saveTar, '-C', save, '.']);
    const fromSave = fresh('out');
    await convert(`docker-archive:${saveTar}:fixture:gzip`, `oci:${fromSave}:x`);
    const want = indexEntry(fromLayout, 'x').digest;
    assert.equal(indexEntry(fromOciTar, 'x').digest, want);
    assert.equal(indexEntry(fromSave, 'x').digest, want);
  });

  it('a directory becomes a one-layer image: files, modes, links, hard links, a fifo, empty dirs', async () => {
    const root = fresh('rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    mkdirSync(join(root, 'empty'));
    writeFileSync(join(root, 'bin', 'tool'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
    writeFileSync(join(root, 'data'), Buffer.alloc(5 << 20, 7));
    linkSync(join(root, 'data'), join(root, 'data-link'));
    symlinkSync('bin/tool', join(root, 'tool'));
    execFileSync('mkfifo', [join(root, 'pipe')]);
    const out = fresh('out');
    await convert(`dir:${root}`, `oci:${out}:x`);
    const img = `oci:${out}:x`;
    const state = fresh('root');
    const cat = await runCli(['--root', state, 'cat', img, '/data-link']);
    assert.equal(cat.code, 0, cat.stderr);
    assert.ok(cat.stdout.equals(Buffer.alloc(5 << 20, 7)));
    const st = (p: string): Promise<{ type: string; mode: string; nlink: number; target?: string }> => cliJson(['--root', state, 'stat', '--json', img, p]);
    assert.equal((await st('/bin/tool')).mode, '0755');
    assert.equal((await st('/data')).nlink, 2);
    assert.equal((await st('/tool')).type, 'symlink');
    assert.equal((await st('/pipe')).type, 'fifo');
    assert.equal((await st('/empty')).type, 'dir');
    const m = manifestOf(out, 'x');
    assert.equal(m.layers.length, 1);
    assert.equal(json<{ rootfs: { diff_ids: string[] } }>(out, m.config.digest).rootfs.diff_ids[0], sha256(gunzipSync(blob(out, m.layers[0]?.digest as string))));
  });

  it('a multi-platform index converts every platform, or those asked, into an index', async () => {
    const src = copyLayout(gzipLayout(), fresh('multi'));
    const amd = indexEntry(src);
    const m = json<Manifest>(src, amd.digest);
    const cfg = json<Record<string, unknown>>(src, m.config.digest);
    const arm = putImage(src, Buffer.from(JSON.stringify({ ...cfg, architecture: 'arm64' })), m.layers);
    writeFileSync(join(src, 'index.json'), JSON.stringify({
      schemaVersion: 2,
      manifests: [
        { ...amd, annotations: undefined, platform: { os: 'linux', architecture: 'amd64' } },
        { ...arm, platform: { os: 'linux', architecture: 'arm64' } },
      ],
    }));
    const all = fresh('out');
    const r = await cliJson<{ images: Array<{ layers: Array<{ desc: LayerDesc }> }> }>(['--root', fresh('root'), 'convert', '--json', `oci:${src}`, `oci:${all}:x`]);
    const index = manifestOf(all, 'x');
    assert.equal(index.mediaType, 'application/vnd.oci.image.index.v1+json');
    assert.deepEqual(index.manifests?.map((d) => d.platform?.architecture), ['amd64', 'arm64']);
    assert.deepEqual(r.images[0]?.layers.map((l) => l.desc.digest), r.images[1]?.layers.map((l) => l.desc.digest), 'shared layers are converted once');
    const one = fresh('out');
    await convert(`oci:${src}`, `oci:${one}:x`, ['--platform', 'linux/arm64']);
    assert.deepEqual(manifestOf(one, 'x').manifests?.map((d) => d.platform?.architecture), ['arm64']);
  });

  it('a layer whose bytes do not match its digest, or whose content does not match the diff_id, fails naming the layer; nothing is tagged', async () => {
    const bad = copyLayout(gzipLayout(), fresh('bad'));
    const m = manifestOf(bad);
    const l1 = m.layers[1] as LayerDesc;
    const bytes = blob(bad, l1.digest);
    bytes[bytes.length - 5] = (bytes[bytes.length - 5] as number) ^ 0xff;
    writeFileSync(blobPath(bad, l1.digest), bytes);
    const out = fresh('out');
    const r = await runCli(['--root', fresh('root'), 'convert', `oci:${bad}`, `oci:${out}:x`]);
    assert.equal(r.code, 5, r.stderr);
    assert.match(r.stderr, new RegExp(`layer 1 .*${l1.digest}`));
    assert.throws(() => indexEntry(out, 'x'));

    const wrongDiff = copyLayout(gzipLayout(), fresh('diff'));
    const cfg = json<{ rootfs: { diff_ids: string[] } }>(wrongDiff, m.config.digest);
    cfg.rootfs.diff_ids[2] = `sha256:${'ab'.repeat(32)}`;
    const d = putImage(wrongDiff, Buffer.from(JSON.stringify(cfg)), m.layers);
    writeFileSync(join(wrongDiff, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [d] }));
    const r2 = await runCli(['--root', fresh('root'), 'convert', `oci:${wrongDiff}`, `oci:${fresh('out')}:x`]);
    assert.equal(r2.code, 5, r2.stderr);
    assert.match(r2.stderr, /layer 2 uncompressed content \(the config's diff_id\) digest mismatch/);
  });

  it('a 512 MiB file converts in bounded memory (streamed, never held whole)', async () => {
    const root = fresh('big');
    mkdirSync(root);
    writeFileSync(join(root, 'zeros'), '');
    truncateSync(join(root, 'zeros'), 512 << 20);
    const hook = join(dir, 'rss.cjs');
    writeFileSync(hook, "process.on('exit', () => process.stderr.write(`maxrss ${process.resourceUsage().maxRSS}\\n`));\n");
    const out = fresh('out');
    const r = await runCli(['--root', fresh('root'), 'convert', '--compression-level', '1', `dir:${root}`, `oci:${out}:x`], { nodeArgs: ['--require', hook] });
    assert.equal(r.code, 0, r.stderr);
    const kib = Number(/maxrss (\d+)/.exec(r.stderr)?.[1]);
    assert.ok(kib > 0 && kib < 300 * 1024, `peak RSS ${kib} KiB for a 512 MiB layer`);
    process.stderr.write(`# convert of a 512 MiB layer: peak RSS ${(kib / 1024).toFixed(0)} MiB\n`);
    const l = manifestOf(out, 'x').layers[0] as LayerDesc;
    const size = Number(l.annotations?.[SIZE]);
    assert.ok(size > 512 * 2 ** 20 && size < 512 * 2 ** 20 + (64 << 10), `uncompressed size ${size}: the file, headers and the TOC`);
    assert.equal(tocBytes(blob(out, l.digest)).json.toString().match(/"type": "chunk"/g)?.length, 127, '128 chunks of 4 MiB');
  });
});
