// Fuzzing src/toc/gzip-header.ts: RFC 1952 member headers (every flag: FEXTRA with its
// subfields, FNAME, FCOMMENT, FHCRC) at any offset, arbitrary and mutated, and headers
// built field by field, then parsed back to the same fields.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { FCOMMENT, FEXTRA, FHCRC, FNAME, parseExtraSubfields, parseGzipHeader } from '../../src/toc/gzip-header.js';
import { bytes, fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const subfield = fc.tuple(fc.string({ minLength: 2, maxLength: 2, unit: fc.constantFrom('S', 'G', 'A', 'x', '\u00ff') }), bytes(40));

interface Built {
  readonly header: Buffer;
  readonly flags: number;
  readonly subfields: ReadonlyArray<readonly [string, Buffer]> | undefined;
}

/** A header with the fields chosen, written by hand as RFC 1952 lays them out. */
const built: fc.Arbitrary<Built> = fc.record({
  subfields: fc.option(fc.uniqueArray(subfield, { maxLength: 4, selector: ([id]) => id }), { nil: undefined }),
  name: fc.option(bytes(30).map((b) => Buffer.from(b.filter((c) => c !== 0))), { nil: undefined }),
  comment: fc.option(bytes(30).map((b) => Buffer.from(b.filter((c) => c !== 0))), { nil: undefined }),
  hcrc: fc.boolean(),
  text: fc.boolean(),
}).map(({ subfields, name, comment, hcrc, text }) => {
  const flags = (subfields !== undefined ? FEXTRA : 0) | (name !== undefined ? FNAME : 0) | (comment !== undefined ? FCOMMENT : 0) | (hcrc ? FHCRC : 0) | (text ? 1 : 0);
  const parts = [Buffer.from([0x1f, 0x8b, 8, flags, 1, 2, 3, 4, 0, 3])];
  if (subfields !== undefined) {
    const extra = Buffer.concat(subfields.map(([id, data]) => {
      const h = Buffer.alloc(4);
      h.write(id, 0, 'latin1');
      h.writeUInt16LE(data.length, 2);
      return Buffer.concat([h, data]);
    }));
    const xlen = Buffer.alloc(2);
    xlen.writeUInt16LE(extra.length);
    parts.push(xlen, extra);
  }
  if (name !== undefined) parts.push(name, Buffer.from([0]));
  if (comment !== undefined) parts.push(comment, Buffer.from([0]));
  if (hcrc) parts.push(Buffer.from([0xaa, 0xbb]));
  return { header: Buffer.concat(parts), flags, subfields };
});

describe('fuzz: toc/gzip-header.ts', () => {
  it(`arbitrary and mutated headers at any offset, extra subfields parsed: ${EACH} inputs`, async (t) => {
    const inputs = fc.oneof(bytes(64), built.chain((b) => mutated(b.header)), fc.constant(Buffer.from([0x1f, 0x8b, 8, 0x1f, 0, 0, 0, 0, 0, 0])).chain(mutated));
    await fuzz(t, EACH, fc.property(inputs, bytes(8), fc.nat(80), (buf, trailing, at) => {
      const b = Buffer.concat([buf, trailing]);
      const h = refusedOrValue(() => parseGzipHeader(b, at));
      if (h === undefined) return;
      assert.ok(Number.isSafeInteger(h.length) && h.length >= 10 && at + h.length <= b.length, `header of ${h.length} at ${at} in ${b.length} bytes`);
      assert.equal(h.flags & 0xe0, 0);
      if (h.extra !== undefined) {
        const subs = refusedOrValue(() => parseExtraSubfields(h.extra as Buffer));
        let sum = 0;
        for (const v of subs?.values() ?? []) sum += v.length + 4;
        assert.ok(sum <= h.extra.length);
      }
    }));
  });

  it(`headers built field by field parse back to their fields: ${EACH} inputs`, async (t) => {
    await fuzz(t, EACH, fc.property(built, bytes(20), bytes(20), ({ header, flags, subfields }, before, after) => {
      const b = Buffer.concat([before, header, after]);
      const h = refusedOrValue(() => parseGzipHeader(b, before.length));
      assert.ok(h !== undefined);
      assert.equal(h.length, header.length);
      assert.equal(h.flags, flags);
      if (subfields === undefined) {
        assert.equal(h.extra, undefined);
      } else {
        const got = parseExtraSubfields(h.extra as Buffer);
        assert.deepEqual(got, new Map(subfields.map(([id, d]) => [id, Buffer.from(d)])));
      }
    }));
  });
});
