import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { gzipSync } from 'node:zlib';
import { parseFooter } from '../../src/toc/footer.js';
import { footer } from '../../src/toc/writer.js';
import { parseGzipHeader } from '../../src/toc/gzip-header.js';

describe('footers', () => {
  it('reads the eStargz footer our writer emits (51 bytes)', () => {
    const blob = Buffer.concat([Buffer.alloc(5000), footer(1234)]);
    assert.deepEqual(parseFooter(blob, blob.length), { kind: 'estargz', size: 51, tocOffset: 1234 });
  });

  it('finds nothing in a plain gzip blob, random bytes or a short blob', () => {
    for (const b of [gzipSync(Buffer.alloc(10000, 7)), Buffer.alloc(100, 0x1f), Buffer.alloc(3)]) {
      assert.equal(parseFooter(b, b.length), undefined);
    }
  });

  it('rejects a TOC offset outside the blob', () => {
    const blob = Buffer.concat([Buffer.alloc(100), footer(10_000)]);
    assert.throws(() => parseFooter(blob, blob.length), { code: 'SGZ_TOC_FORMAT' });
  });

  it('rejects a footer whose magic or empty member is damaged', () => {
    const f = footer(10);
    const wrongMagic = Buffer.from(f);
    wrongMagic.write('STARGX', 32, 'latin1');
    const badBlock = Buffer.from(f);
    badBlock[39] = 0x12;
    for (const b of [wrongMagic, badBlock]) {
      const blob = Buffer.concat([Buffer.alloc(100), b]);
      assert.equal(parseFooter(blob, blob.length), undefined);
    }
  });

  it('walks gzip headers with FNAME and FCOMMENT', () => {
    const h = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0x18, 0, 0, 0, 0, 0, 3]), Buffer.from('name\0comment\0'), Buffer.from([1, 2])]);
    assert.equal(parseGzipHeader(h)?.length, 23);
    assert.equal(parseGzipHeader(Buffer.from([0x1f, 0x8b, 7, 0, 0, 0, 0, 0, 0, 3])), undefined);
  });
});
