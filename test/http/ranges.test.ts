import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ByterangesReader, ByterangesSplitter, coalesce, extract, parseByteranges } from '../../src/http/ranges.js';

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

  describe('splitting a multipart/byteranges body as it arrives', () => {
    const data = Buffer.from('--B\r\nabc'); // looks like a boundary inside the data
    const body = Buffer.concat([
      Buffer.from('--B\r\nContent-Type: application/octet-stream\r\nContent-Range: bytes 5-12/100\r\n\r\n'), data,
      Buffer.from('\r\n--B\r\nContent-Range: bytes 20-21/100\r\n\r\n'), Buffer.from('xy'),
      Buffer.from('\r\n--B\r\nContent-Range: bytes 90-99/100\r\n\r\n'), Buffer.from('0123456789'),
      Buffer.from('\r\n--B--\r\n'),
    ]);
    /** The parts as each sink saw them, and in what order things happened, with the body pushed in pieces of `step` bytes. */
    function split(step: number, skip: number[] = []): { parts: Array<[number, string, boolean]>; complete: boolean } {
      const parts: Array<[number, string, boolean]> = [];
      const s = new ByterangesSplitter('multipart/byteranges; boundary=B', (e) => {
        if (skip.includes(e.offset)) return undefined;
        const got: [number, string, boolean] = [e.offset, '', false];
        parts.push(got);
        return { push: (b) => void (got[1] += b.toString('latin1')), end: () => void (got[2] = true) };
      });
      for (let at = 0; at < body.length; at += step) s.push(body.subarray(at, at + step));
      return { parts, complete: s.complete };
    }
    for (const step of [1, 2, 3, 7, 16, 1000]) {
      it(`in pieces of ${step} bytes: each part whole, once, ended, in order`, () => {
        assert.deepEqual(split(step), { parts: [[5, '--B\r\nabc', true], [20, 'xy', true], [90, '0123456789', true]], complete: true });
      });
    }
    it('a part without a sink is skipped, the next still found', () => {
      assert.deepEqual(split(5, [20]).parts, [[5, '--B\r\nabc', true], [90, '0123456789', true]]);
    });
    it('a part is handed on as its bytes come, before its last', () => {
      const seen: string[] = [];
      const s = new ByterangesSplitter('multipart/byteranges; boundary=B', () => ({ push: (b) => void seen.push(b.toString('latin1')), end: () => void seen.push('end') }));
      s.push(body.subarray(0, body.indexOf('abc') + 1));
      assert.deepEqual(seen, ['--B\r\na']);
    });
    it('a body that is not multipart is an error, not data', () => {
      const s = new ByterangesSplitter('multipart/byteranges; boundary=B', () => undefined);
      assert.throws(() => s.push(Buffer.alloc(20_000, 0x41)), /without a part header/);
      const t = new ByterangesSplitter('multipart/byteranges; boundary=B', () => undefined);
      assert.throws(() => t.push(Buffer.from('--B\r\nContent-Type: x\r\n\r\n')), /without a Content-Range/);
    });
  });
});
