// Locating the TOC: how many reads a layer costs before its first file, with and without
// the TOC offset hint a layer's annotations may carry, and that a wrong hint costs a read
// but never a wrong TOC.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readToc, tocTailExtent } from '../../src/toc/toc-reader.js';
import { TOC_OFFSET_ANNOTATION, ZSTD_A_POSITION_ANNOTATION, tocOffsetHint, type BlobReader } from '../../src/toc/blob.js';
import { writeEstargz } from '../../src/toc/writer.js';
import { entries } from '../helpers/entries.js';

/** A blob in memory that counts its reads. */
function counted(blob: Buffer): BlobReader & { reads: Array<[number, number]> } {
  const reads: Array<[number, number]> = [];
  return {
    size: blob.length,
    reads,
    readAt(offset: number, length: number): Promise<Buffer> {
      reads.push([offset, length]);
      return Promise.resolve(blob.subarray(offset, offset + length));
    },
  };
}

// Enough files that the compressed TOC is larger than a 4 KiB tail read.
const specs = Array.from({ length: 400 }, (_, i) => ({ name: `dir-${i % 7}/file-${i}.txt`, body: `body ${i}\n` }));
const parts: Buffer[] = [];
const written = writeEstargz(entries(specs), (b) => parts.push(b));
const blob = Buffer.concat(parts);
const opts = { tailBytes: 4096, maxTocBytes: 64 << 20 };

describe('readToc', () => {
  it('takes two reads for a TOC larger than the tail read when nothing hints where it starts', async () => {
    const b = counted(blob);
    assert.ok(blob.length - written.tocOffset > opts.tailBytes, 'the TOC is larger than the tail read');
    const toc = await readToc(b, opts, {});
    assert.equal(toc.tocDigest, written.tocDigest);
    assert.equal(b.reads.length, 2);
  });

  it('a big layer\'s tail read covers 1 % of it, up to four times the tail size', () => {
    const o = { tailBytes: 256 << 10, maxTocBytes: 64 << 20 };
    assert.deepEqual(tocTailExtent(1 << 20, undefined, o), { offset: (1 << 20) - (256 << 10), length: 256 << 10 });
    assert.equal(tocTailExtent(52_264_355, undefined, o).length, 522_643);
    assert.equal(tocTailExtent(4 * 2 ** 30, undefined, o).length, 1 << 20);
    assert.deepEqual(tocTailExtent(1000, undefined, o), { offset: 0, length: 1000 });
  });

  it('takes one exact read from the hinted offset to the end', async () => {
    const b = counted(blob);
    const toc = await readToc(b, opts, {}, '', tocOffsetHint({ [TOC_OFFSET_ANNOTATION]: String(written.tocOffset) }));
    assert.equal(toc.tocDigest, written.tocDigest);
    assert.deepEqual(b.reads, [[written.tocOffset, blob.length - written.tocOffset]]);
  });

  it('a wrong hint costs a second read, never a wrong TOC', async () => {
    for (const wrong of [written.tocOffset + 100, Math.max(1, written.tocOffset - 5000), blob.length - 10]) {
      const b = counted(blob);
      const toc = await readToc(b, opts, {}, '', wrong);
      assert.equal(toc.tocDigest, written.tocDigest, `hint ${wrong}`);
      assert.ok(b.reads.length <= 2);
    }
  });

  it('hints come from our annotation or zstd:chunked manifest-position; junk is no hint', () => {
    assert.equal(tocOffsetHint({ [TOC_OFFSET_ANNOTATION]: '1234' }), 1234);
    assert.equal(tocOffsetHint({ [ZSTD_A_POSITION_ANNOTATION]: '777:100:400:1' }), 777);
    assert.equal(tocOffsetHint({ [TOC_OFFSET_ANNOTATION]: '-5' }), undefined);
    assert.equal(tocOffsetHint({ [TOC_OFFSET_ANNOTATION]: '1e9' }), undefined);
    assert.equal(tocOffsetHint({}), undefined);
    assert.equal(tocOffsetHint(undefined), undefined);
  });
});
