// The footers and flavors the fixtures do not cover: legacy stargz (47-byte footer, no
// chunk digests) and zstd:chunked flavor B (72-byte trailer, endOffset, holes).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { withImage } from '../../src/cli/context.js';
import { inspectReport } from '../../src/layer/report.js';
import { resolvePath } from '../../src/toc/view.js';
import { OCI_LAYER_ZSTD } from '../../src/http/media-types.js';
import { entries } from '../helpers/entries.js';
import { layoutWith, tocOf, withToc, writerBlob } from '../helpers/blobs.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';

const zstd = createRequire(import.meta.url)('zstd-napi') as { compress(b: Buffer): Buffer };
const hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

function legacyFooter(tocOffset: number): Buffer {
  // CRFS: Extra holds the 22 bytes raw, no RFC 1952 subfield header.
  return Buffer.concat([
    Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 22, 0]),
    Buffer.from(tocOffset.toString(16).padStart(16, '0') + 'STARGZ', 'latin1'),
    Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0, 0]),
  ]);
}

describe('legacy stargz', () => {
  it('47-byte footer, file digests only: readable when unverified layers are allowed', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const { blob } = writerBlob(entries([{ name: 'a/b.txt', body: 'legacy stargz content\n' }]));
      const toc = tocOf(blob);
      for (const e of toc.entries) delete e['chunkDigest'];
      const t = withToc(blob, toc);
      const tocOffset = Number.parseInt(t.blob.toString('latin1', t.blob.length - 35, t.blob.length - 19), 16);
      const legacy = Buffer.concat([t.blob.subarray(0, t.blob.length - 51), legacyFooter(tocOffset)]);
      assert.equal(legacy.length, t.blob.length - 4);
      const ref = await layoutWith(dir, [{ blob: legacy }]);
      await withImage(testConfig(join(dir, 'root'), { allowUnverified: true }), ref, async ({ image, table }) => {
        const [l] = inspectReport(image, table).layers;
        assert.equal(l?.format, 'stargz (legacy)');
        assert.equal(l?.footer?.size, 47);
        assert.equal(l?.verified, false);
        const node = resolvePath(image.merged(), 'a/b.txt');
        assert.equal((await image.reader.read(node, 'a/b.txt', 0, 100)).toString(), 'legacy stargz content\n');
      });
    } finally {
      cleanup();
    }
  });
});

function skippable(payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt32LE(0x184d2a50, 0);
  h.writeUInt32LE(payload.length, 4);
  return Buffer.concat([h, payload]);
}

/** A flavor B blob: payload frames hold only file bytes; TOC and tar-split in skippable frames. */
function flavorB(files: Array<{ name: string; body: Buffer; holeAfter?: number }>): { blob: Buffer; checksum: string } {
  const parts: Buffer[] = [zstd.compress(Buffer.alloc(512))]; // a header frame
  let off = parts[0]?.length ?? 0;
  const tocEntries: Array<Record<string, unknown>> = [{ type: 'dir', name: 'data/', mode: 0o755, modtime: '2024-05-01T10:20:30.123456789Z' }];
  for (const f of files) {
    const frame = zstd.compress(f.body);
    const digest = `sha256:${hex(f.body)}`;
    const size = f.body.length + (f.holeAfter ?? 0);
    const full = Buffer.concat([f.body, Buffer.alloc(f.holeAfter ?? 0)]);
    tocEntries.push({
      type: 'reg', name: f.name, mode: 0o644, size, modtime: '2024-05-01T10:20:30.5Z', digest: `sha256:${hex(full)}`,
      offset: off, endOffset: off + frame.length, chunkSize: f.body.length, chunkDigest: digest,
    });
    if (f.holeAfter) {
      tocEntries.push({ type: 'chunk', name: f.name, chunkOffset: f.body.length, chunkSize: f.holeAfter, chunkType: 'zeros' });
    }
    parts.push(frame);
    off += frame.length;
  }
  const tocJson = Buffer.from(JSON.stringify({ version: 1, entries: tocEntries }));
  const tocComp = zstd.compress(tocJson);
  const tocOffset = off + 8;
  parts.push(skippable(tocComp));
  off += 8 + tocComp.length;
  const tarSplit = zstd.compress(Buffer.from('{"type":1}\n'));
  const tarSplitOffset = off + 8;
  parts.push(skippable(tarSplit));
  const trailer = Buffer.alloc(64);
  [tocOffset, tocComp.length, tocJson.length, 1, tarSplitOffset, tarSplit.length, 11].forEach((v, i) => trailer.writeBigUInt64LE(BigInt(v), i * 8));
  Buffer.from('GNUlInUx', 'latin1').copy(trailer, 56);
  parts.push(skippable(trailer));
  return { blob: Buffer.concat(parts), checksum: `sha256:${hex(tocComp)}` };
}

describe('zstd:chunked flavor B', () => {
  it('72-byte trailer, compressed-TOC checksum, endOffset and zero holes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const body = Buffer.from('flavor B file body\n'.repeat(100));
      const { blob, checksum } = flavorB([
        { name: 'data/plain', body: Buffer.from('hello zstd:chunked\n') },
        { name: 'data/sparse', body, holeAfter: 5000 },
      ]);
      const ref = await layoutWith(dir, [{ blob, mediaType: OCI_LAYER_ZSTD, annotations: { 'io.github.containers.zstd-chunked.manifest-checksum': checksum } }]);
      await withImage(testConfig(join(dir, 'root')), ref, async ({ image, table }) => {
        const [l] = inspectReport(image, table).layers;
        assert.equal(l?.error, null);
        assert.equal(l?.format, 'zstd:chunked (flavor B)');
        assert.equal(l?.footer?.size, 72);
        assert.equal(l?.verified, true);
        const view = image.merged();
        const plain = resolvePath(view, 'data/plain');
        assert.equal((await image.reader.read(plain, 'data/plain', 0, 100)).toString(), 'hello zstd:chunked\n');
        assert.equal(plain.mtime, Date.UTC(2024, 4, 1, 10, 20, 30) / 1000);
        assert.equal(plain.mtimeNsec, 500_000_000);
        const sparse = resolvePath(view, 'data/sparse');
        assert.equal(sparse.size, body.length + 5000);
        const all = await image.reader.read(sparse, 'data/sparse', 0, sparse.size);
        assert.ok(all.equals(Buffer.concat([body, Buffer.alloc(5000)])));
        assert.equal(resolvePath(view, 'data').mtimeNsec, 123456789);
      });
      // A wrong checksum is refused before the TOC is decompressed.
      const { dir: dir2, cleanup: c2 } = tempDir();
      try {
        const bad = await layoutWith(dir2, [{ blob, mediaType: OCI_LAYER_ZSTD, annotations: { 'io.github.containers.zstd-chunked.manifest-checksum': `sha256:${'0'.repeat(64)}` } }]);
        await withImage(testConfig(join(dir2, 'root')), bad, async ({ image, table }) => {
          assert.equal(inspectReport(image, table).layers[0]?.error?.code, 'SGZ_DIGEST_MISMATCH');
        });
      } finally {
        c2();
      }
    } finally {
      cleanup();
    }
  });
});
