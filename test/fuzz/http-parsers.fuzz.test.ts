// Fuzzing what registries and users hand the HTTP side: WWW-Authenticate challenges,
// image references, manifests and indexes, and multipart/byteranges bodies (whole, and
// streamed through the splitter in pieces cut anywhere).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseChallenge } from '../../src/http/challenge.js';
import { parseImageRef, formatImageRef } from '../../src/http/reference.js';
import { descriptors, manifestParts, parseJson } from '../../src/http/manifest.js';
import { ByterangesSplitter, parseByteranges } from '../../src/http/ranges.js';
import { mutated, params, pieces, refusedOrValue, RUNS } from './harness.js';

const headerish = fc.oneof(
  fc.string({ maxLength: 200 }),
  fc.constantFrom('Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"', 'Basic realm="x"', 'Bearer realm=unquoted, error="invalid_token"')
    .chain((v) => mutated(Buffer.from(v)).map((b) => b.toString('latin1'))),
);

function multipart(boundary: string, parts: ReadonlyArray<[number, number, Buffer]>, total: number): Buffer {
  const out: Buffer[] = [];
  for (const [from, to, body] of parts) {
    out.push(Buffer.from(`\r\n--${boundary}\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes ${from}-${to}/${total}\r\n\r\n`), body);
  }
  out.push(Buffer.from(`\r\n--${boundary}--\r\n`));
  return Buffer.concat(out);
}

describe('fuzz: HTTP parsers', () => {
  it(`WWW-Authenticate challenges: ${RUNS} inputs`, () => {
    fc.assert(
      fc.property(headerish, (h) => {
        const c = refusedOrValue(() => parseChallenge(h));
        if (c !== undefined) assert.equal(typeof c.scheme, 'string');
      }),
      params(),
    );
  });

  it(`image references: ${RUNS} inputs; what parses formats back to itself`, () => {
    const refs = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.constantFrom('docker.io/library/debian:12', 'localhost:5000/a/b@sha256:' + 'a'.repeat(64), '[::1]:5000/x:y', 'registry.example/app:1.2')
        .chain((v) => mutated(Buffer.from(v)).map((b) => b.toString('latin1'))),
    );
    fc.assert(
      fc.property(refs, (s) => {
        const r = refusedOrValue(() => parseImageRef(s));
        if (r !== undefined) assert.deepEqual(parseImageRef(formatImageRef(r)), r);
      }),
      params(),
    );
  });

  it(`manifests and indexes: ${RUNS} inputs, JSON of any shape and mutated documents`, () => {
    const valid = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + 'c'.repeat(64), size: 10 },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'd'.repeat(64), size: 20, annotations: { a: 'b' } }],
    }));
    fc.assert(
      fc.property(fc.oneof(fc.json().map((j) => Buffer.from(j)), mutated(valid)), (bytes) => {
        const doc = refusedOrValue(() => parseJson(bytes, 'manifest'));
        if (doc === undefined) return;
        const parts = refusedOrValue(() => manifestParts(doc, 'manifest'));
        for (const d of parts?.layers ?? []) assert.ok(Number.isSafeInteger(d.size) && d.size >= 0 && /^sha256:[0-9a-f]{64}$/.test(d.digest));
        refusedOrValue(() => descriptors(doc, 'index'));
      }),
      params(),
    );
  });

  it(`multipart/byteranges bodies, whole and streamed in pieces: ${RUNS} inputs`, () => {
    const body = Buffer.from('0123456789abcdefghij');
    const valid = multipart('BOUND', [[0, 4, body.subarray(0, 5)], [10, 14, body.subarray(10, 15)]], 20);
    fc.assert(
      fc.property(mutated(valid), fc.array(fc.nat(), { maxLength: 10 }), fc.constantFrom('multipart/byteranges; boundary=BOUND', 'multipart/byteranges; boundary="BOUND"', 'multipart/byteranges', 'text/plain'), (b, cuts, ct) => {
        const parts = refusedOrValue(() => parseByteranges(b, ct));
        for (const p of parts ?? []) assert.ok(p.data.length <= b.length);
        refusedOrValue(() => {
          let seen = 0;
          const s = new ByterangesSplitter(ct, () => ({ push: (piece: Buffer) => void (seen += piece.length), end: () => undefined }));
          for (const p of pieces(b, cuts)) s.push(p);

          assert.ok(seen <= b.length);
        });
      }),
      params(),
    );
  });

  // Found by this fuzzer (a million-input run ran out of memory): a part whose range
  // ends before it starts had a negative length, and both readers looped on it.
  it('regression: a part whose Content-Range ends before it starts is refused, at once', () => {
    const b = Buffer.from('\r\n--BOUND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 0-4/20\r\n\r\n01234\r\n--BOUND\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 100-14/20\r\n\r\nabcde\r\n--BOUND--\r\n', 'latin1');
    const ct = 'multipart/byteranges; boundary="BOUND"';
    assert.throws(() => parseByteranges(b, ct), (err: { code?: string }) => err.code === 'SGZ_RANGE');
    const s = new ByterangesSplitter(ct, () => ({ push: () => undefined, end: () => undefined }));
    assert.throws(() => {
      for (const p of pieces(b, [2147483640, 1800262774, 1578153565, 609924153, 1036967139, 964802445, 24, 2147483644, 1330758113, 1731871294])) s.push(p);
    }, (err: { code?: string }) => err.code === 'SGZ_RANGE');
  });
});
