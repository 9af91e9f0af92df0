// Fuzzing the binary formats a layer's bytes are read through: footers (eStargz, legacy
// stargz, zstd:chunked A and B, by size), the gzip member header and its extra field,
// and tar headers (ustar, GNU long names, PAX, base-256 numbers) fed as a stream.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseFooter, dataEnd } from '../../src/toc/footer.js';
import { parseGzipHeader, parseExtraSubfields } from '../../src/toc/gzip-header.js';
import { emptyHeader, encodeHeader, END_OF_ARCHIVE, padding, TarReader, parseTar } from '../../src/toc/tar.js';
import { footer } from '../../src/toc/writer.js';
import { mutated, params, pieces, refusedOrValue, RUNS } from './harness.js';

const blobSizes = fc.oneof(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));

function validTar(): Buffer {
  const parts: Buffer[] = [];
  const add = (h: ReturnType<typeof emptyHeader>, body = Buffer.alloc(0)): void => {
    parts.push(encodeHeader(h), body, Buffer.alloc(padding(body.length)));
  };
  add({ ...emptyHeader('etc/', 'dir') });
  add({ ...emptyHeader(`deep/${'n'.repeat(150)}/file`, 'reg'), size: 5 }, Buffer.from('hello'));
  add({ ...emptyHeader('l', 'symlink'), linkName: 'x'.repeat(120) });
  const x = { ...emptyHeader('with-xattr', 'reg'), size: 2 };
  x.xattrs.set('user.k', Buffer.from('v'));
  add(x, Buffer.from('hi'));
  add({ ...emptyHeader('big', 'reg'), size: 0, uid: 2 ** 40 });
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}

describe('fuzz: layer formats', () => {
  it(`footers: ${RUNS} inputs, arbitrary and mutated, of every footer size`, () => {
    const valid = [footer(12345), footer(0)];
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 80 }).map((a) => Buffer.from(a)), ...valid.map(mutated)), blobSizes, (tail, size) => {
        const f = refusedOrValue(() => parseFooter(tail, size));
        if (f !== undefined) {
          assert.ok(Number.isSafeInteger(f.tocOffset) && f.tocOffset >= 0 && f.tocOffset <= size, `tocOffset ${f.tocOffset} in a blob of ${size}`);
          assert.ok(f.size > 0 && f.size <= tail.length);
          const end = dataEnd(f);
          assert.ok(Number.isSafeInteger(end) && end >= 0 && end <= size);
        }
      }),
      params(),
    );
  });

  it(`gzip member headers and extra fields: ${RUNS} inputs`, () => {
    const valid = Buffer.from([0x1f, 0x8b, 8, 4, 0, 0, 0, 0, 0, 0xff, 8, 0, 0x53, 0x47, 4, 0, 1, 2, 3, 4]);
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)), mutated(valid)), fc.nat(70), (buf, at) => {
        const h = refusedOrValue(() => parseGzipHeader(buf, at));
        if (h !== undefined) {
          assert.ok(h.length >= 10 && at + h.length <= buf.length);
          if (h.extra !== undefined) refusedOrValue(() => parseExtraSubfields(h.extra as Buffer));
        }
      }),
      params(),
    );
  });

  it(`tar headers, whole and as a stream cut anywhere: ${RUNS} inputs`, () => {
    const valid = validTar();
    fc.assert(
      fc.property(mutated(valid), fc.array(fc.nat(), { maxLength: 8 }), (tar, cuts) => {
        const whole = refusedOrValue(() => parseTar(tar));
        const streamed = refusedOrValue(() => {
          const r = new TarReader();
          const got = pieces(tar, cuts).flatMap((p) => r.push(p));
          return got;
        });
        for (const list of [whole, streamed]) {
          for (const e of list ?? []) {
            assert.ok(Number.isSafeInteger(e.header.size) && e.header.size >= 0);
            assert.ok(e.body.length <= tar.length);
          }
        }
      }),
      params(),
    );
  });
});
