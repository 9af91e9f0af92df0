import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { DecodeQueue } from '../../src/layer/decode-queue.js';

const busy = (ms: number): void => {
  const end = performance.now() + ms;
  while (performance.now() < end);
};

describe('DecodeQueue', () => {
  it('runs every task, in order, not before the caller returns', async () => {
    const q = new DecodeQueue();
    const ran: number[] = [];
    for (let i = 0; i < 5; i++) q.defer(() => ran.push(i));
    assert.deepEqual(ran, []);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ran, [0, 1, 2, 3, 4]);
  });

  it('lets I/O in between slices: an answer that arrives meanwhile is handled before the queue ends', async () => {
    const q = new DecodeQueue(3);
    const order: string[] = [];
    let done!: () => void;
    const finished = new Promise<void>((r) => (done = r));
    // 40 tasks of 2 ms each: about 80 ms of work.
    for (let i = 0; i < 40; i++) q.defer(() => {
      busy(2);
      order.push('task');
      if (i === 39) done();
    });
    // A timer due after 10 ms stands for the answer to a read's own request.
    setTimeout(() => order.push('io'), 10);
    await finished;
    const at = order.indexOf('io');
    assert.ok(at > 0 && at < 20, `the timer ran after ${at} of 40 tasks`);
  });

  it('runs tasks deferred by a running task', async () => {
    const q = new DecodeQueue();
    const ran: string[] = [];
    q.defer(() => {
      ran.push('a');
      q.defer(() => ran.push('c'));
    });
    q.defer(() => ran.push('b'));
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(ran, ['a', 'b', 'c']);
  });
});
