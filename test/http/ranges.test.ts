import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByterangesReader, coalesce, extract, parseByteranges } from '../../src/http/ranges.js';

describe('range arithmetic', () => {
  const table: Array<[string, Array<[number, number]>, number, Array<[number, number, number[]]>]> = [
    ['disjoint stay apart', [[0, 10], [100, 10]], 0, [[0, 10, [0]], [100, 10, [1]]]],
    ['adjacent merge', [[0, 10], [10, 5]], 0, [[0, 15, [0, 1]]]],
    ['within the gap merge', [[0, 10], [50, 10]], 40, [[0, 60, [0, 1]]]],
    ['just past the gap stay apart', [[0, 10], [51, 10]], 40, [[0, 10, [0]], [51, 10, [1]]]],
    ['overlapping and unsorted', [[30, 10], [0, 35], [100, 1]], 0, [[0, 40, [1, 0]], [100, 1, [2]]]],
    ['contained', [[0, 100], [10, 5]], 0, [[0, 100, [0, 1]]]],
    ['empty', [], 10, []],
  ];
  for (const [name, input, gap, want] of table) {
    it(`coalesce: ${name}`, () => {
      const got = coalesce(input.map(([offset, length]) => ({ offset, length })), gap);
      assert.deepEqual(got.map((g) => [g.offset, g.length, [...g.members]]), want);
    });
  }

  it('parses multipart/byteranges by Content-Range lengths, binary-safe', () => {
    const a = Buffer.from('--B\r\nabc'); // looks like a boundary inside the data
    const body = Buffer.concat([
      Buffer.from('\r\n--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 5-12/100\r\n\r\n'), a,
      Buffer.from('\r\n--B\r\nContent-Range: bytes 90-99/100\r\n\r\n'), Buffer.from('0123456789'),
      Buffer.from('\r\n--B--\r\n'),
    ]);
    const parts = parseByteranges(body, 'multipart/byteranges; boundary=B');
    assert.deepEqual(parts.map((p) => [p.offset, p.data.toString()]), [[5, '--B\r\nabc'], [90, '0123456789']]);
    assert.deepEqual(extract([{ offset: 6, length: 2 }, { offset: 95, length: 5 }], parts)?.map(String), ['-B', '56789']);
    assert.equal(extract([{ offset: 20, length: 1 }], parts), undefined);
    assert.throws(() => parseByteranges(body.subarray(0, 60), 'multipart/byteranges; boundary=B'));
  });

  it('reads a growing body part by part: each part once, when its last byte is in', () => {
    const body = Buffer.concat([
      Buffer.from('\r\n--B\r\nContent-Range: bytes 5-12/100\r\n\r\n'), Buffer.from('--B\r\nabc'),
      Buffer.from('\r\n--B\r\nContent-Range: bytes 90-99/100\r\n\r\n'), Buffer.from('0123456789'),
      Buffer.from('\r\n--B--\r\n'),
    ]);
    const firstEnd = body.indexOf('abc') + 3;
    const secondEnd = body.indexOf('0123456789') + 10;
    const reader = new ByterangesReader('multipart/byteranges; boundary=B');
    const seen: Array<[number, number, string]> = [];
    for (let n = 0; n <= body.length; n++) {
      for (const p of reader.feed(body.subarray(0, n))) seen.push([n, p.offset, p.data.toString()]);
    }
    assert.deepEqual(seen, [[firstEnd, 5, '--B\r\nabc'], [secondEnd, 90, '0123456789']]);
    assert.equal(reader.complete, true);
    // Another buffer (a retried request) starts over.
    const again = Buffer.from(body);
    assert.deepEqual(reader.feed(again.subarray(0, firstEnd)).map((p) => p.offset), [5]);
  });
});
