// The neighbour window follows what reads do with the neighbours: whole while they are
// read, down to a sixteenth while they are not, and back up when they are read again.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { NeighbourYield } from '../../src/layer/neighbour-yield.js';

const digest = (i: number): Buffer => createHash('sha256').update(String(i)).digest();
const W = 512 << 10;

describe('NeighbourYield', () => {
  it('starts at the whole window, shrinks to a sixteenth when neighbours go unread, and grows back when they are read', () => {
    const y = new NeighbourYield();
    assert.equal(y.scale(W), W);
    for (let i = 0; i < 200; i++) y.fetchedAsNeighbour(digest(i), 64 << 10);
    assert.equal(y.scale(W), W / 16);
    for (let i = 200; i < 600; i++) {
      y.fetchedAsNeighbour(digest(i), 64 << 10);
      y.read(digest(i));
    }
    assert.equal(y.scale(W), W);
  });

  it('counts a chunk once: reading it again, or reading what was not a neighbour, changes nothing', () => {
    const y = new NeighbourYield();
    y.fetchedAsNeighbour(digest(1), 1 << 20);
    y.read(digest(1));
    const s = y.share();
    y.read(digest(1));
    y.read(digest(2));
    assert.equal(y.share(), s);
  });
});
