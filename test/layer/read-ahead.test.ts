// The read-ahead policy alone: a file read from its start or where the last read ended
// gets a window that doubles up to the largest, never past the file's end and never the
// same range twice; a jump elsewhere stops it; 0 turns it off.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ReadAhead } from '../../src/layer/read-ahead.js';

const MiB = 1 << 20;

describe('read-ahead policy', () => {
  it('doubles the window on sequential reads, up to the largest, clipped to the file', () => {
    const r = new ReadAhead(4 * MiB);
    const size = 20 * MiB;
    assert.deepEqual(r.next(7, size, 0, MiB), { from: MiB, to: 2 * MiB });
    assert.deepEqual(r.next(7, size, MiB, 2 * MiB), { from: 2 * MiB, to: 4 * MiB }, 'window 2 MiB, from where the last one ended');
    assert.deepEqual(r.next(7, size, 2 * MiB, 3 * MiB), { from: 4 * MiB, to: 7 * MiB }, 'window 4 MiB: only what was not asked for yet');
    assert.deepEqual(r.next(7, size, 3 * MiB, 4 * MiB), { from: 7 * MiB, to: 8 * MiB }, 'capped at 4 MiB');
    assert.equal(r.next(7, size, 12 * MiB, 13 * MiB), undefined, 'a jump stops it');
    assert.deepEqual(r.next(7, size, 13 * MiB, 14 * MiB), { from: 14 * MiB, to: 15 * MiB }, 'and a sequential read after the jump starts it again');
    const small = new ReadAhead(4 * MiB);
    assert.deepEqual(small.next(1, 1.5 * MiB, 0, MiB), { from: MiB, to: 1.5 * MiB });
    assert.equal(small.next(1, 1.5 * MiB, MiB, 1.5 * MiB), undefined, 'nothing past the end');
  });

  it('0 turns it off', () => {
    assert.equal(new ReadAhead(0).next(1, 10 * MiB, 0, MiB), undefined);
  });
});
