// The reference's region-set table (stargz-snapshotter fs/remote/util_test.go TestRegionSet):
// inclusive [b, e] regions added one by one merge when they overlap or touch. Our coalesce
// (gap 0) must give the same ranges.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { coalesce } from '../../src/http/ranges.js';

type Region = [number, number]; // [b, e], e inclusive, as the reference writes them

const TABLE: Array<[Region[], Region[]]> = [
  [[[1, 3], [2, 4]], [[1, 4]]],
  [[[1, 5], [2, 4]], [[1, 5]]],
  [[[2, 4], [1, 5]], [[1, 5]]],
  [[[2, 4], [6, 8], [1, 5]], [[1, 8]]],
  [[[1, 2], [1, 2]], [[1, 2]]],
  [[[1, 3], [1, 2]], [[1, 3]]],
  [[[1, 3], [2, 3]], [[1, 3]]],
  [[[1, 3], [3, 6]], [[1, 6]]],
  [[[1, 3], [4, 6]], [[1, 6]]], // region.e is inclusive: touching regions merge
  [[[4, 6], [1, 3]], [[1, 6]]],
  [[[4, 6], [1, 3], [7, 9], [2, 8]], [[1, 9]]],
  [[[4, 6], [1, 5], [7, 9], [4, 8]], [[1, 9]]],
  [[[7, 8], [1, 2], [5, 6]], [[1, 2], [5, 8]]],
];

describe('reference: TestRegionSet', () => {
  for (const [i, [input, want]] of TABLE.entries()) {
    it(`#${i}: ${JSON.stringify(input)} → ${JSON.stringify(want)}`, () => {
      const got = coalesce(input.map(([b, e]) => ({ offset: b, length: e - b + 1 })), 0);
      assert.deepEqual(got.map((g): Region => [g.offset, g.offset + g.length - 1]), want);
      assert.deepEqual([...got.flatMap((g) => [...g.members])].sort((a, b) => a - b), input.map((_, k) => k), 'every region in exactly one range');
    });
  }
});
