// Fetch progress counts each blob range once: a range fetched again (after a digest error,
// or once its chunks left a cache too small to keep them) shows in transferredBytes only,
// so fetchedBytes never passes totalBytes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { FetchProgress } from '../../src/layer/progress.js';

type Fetch = { bytes: number; ranges?: Array<[number, number]> };

const cases: Array<{ name: string; fetches: Fetch[]; fetched: number; transferred: number }> = [
  { name: 'disjoint ranges add up', fetches: [{ bytes: 10, ranges: [[0, 10]] }, { bytes: 10, ranges: [[20, 30]] }], fetched: 20, transferred: 20 },
  { name: 'a range fetched again counts once', fetches: [{ bytes: 10, ranges: [[0, 10]] }, { bytes: 10, ranges: [[0, 10]] }], fetched: 10, transferred: 20 },
  { name: 'overlapping and touching ranges merge', fetches: [{ bytes: 15, ranges: [[0, 10], [10, 15]] }, { bytes: 20, ranges: [[5, 25]] }, { bytes: 5, ranges: [[40, 45]] }, { bytes: 50, ranges: [[0, 50]] }], fetched: 50, transferred: 90 },
  { name: 'one range spanning several', fetches: [{ bytes: 3, ranges: [[1, 2], [4, 5], [7, 8]] }, { bytes: 9, ranges: [[0, 9]] }], fetched: 9, transferred: 12 },
  { name: 'bytes without ranges never pass the total', fetches: [{ bytes: 80 }, { bytes: 80 }], fetched: 100, transferred: 160 },
];

describe('fetch progress', () => {
  for (const c of cases) {
    it(c.name, () => {
      const p = new FetchProgress();
      p.addLayer('sha256:l', 100);
      for (const f of c.fetches) p.fetched('sha256:l', f.bytes, 'on_demand', 1, f.ranges);
      const [l] = p.snapshot();
      assert.equal(l?.fetchedBytes, c.fetched);
      assert.equal(l?.transferredBytes, c.transferred);
    });
  }
});
