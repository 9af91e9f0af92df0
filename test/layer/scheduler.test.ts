// The fetch scheduler's rules, with jobs the test releases by hand: on-demand first and
// never starved by prefetch, background paused by on-demand work, a waiting job raised
// when a read joins it, and the background bandwidth limit.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { BACKGROUND, FetchScheduler, ON_DEMAND, PREFETCH, ScopedScheduler, type Priority } from '../../src/layer/scheduler.js';

function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((r) => { open = r; });
  return { promise, open };
}

const tick = () => new Promise((r) => setImmediate(r));

describe('fetch scheduler', () => {
  const track = (s: FetchScheduler, log: string[]) => (name: string, p: Priority, g = gate()) => ({
    gate: g,
    done: s.submit(p, 1, async () => {
      log.push(name);
      await g.promise;
    }),
  });

  it('keeps a slot for on-demand work: prefetch fills the others, a read starts at once', async () => {
    const s = new FetchScheduler({ concurrency: 3, backgroundBytesPerSec: 0 });
    const log: string[] = [];
    const job = track(s, log);
    const p = [job('p1', PREFETCH), job('p2', PREFETCH), job('p3', PREFETCH)];
    await tick();
    assert.deepEqual(log, ['p1', 'p2'], 'two of three slots for prefetch');
    const d = job('d1', ON_DEMAND);
    await tick();
    assert.deepEqual(log, ['p1', 'p2', 'd1']);
    d.gate.open();
    await d.done;
    p[0]?.gate.open();
    await p[0]?.done;
    await tick();
    assert.deepEqual(log, ['p1', 'p2', 'd1', 'p3']);
    for (const x of p) x.gate.open();
    await Promise.all(p.map((x) => x.done));
    s.close();
  });

  it('on-demand work queued ahead of prefetch; background waits until no on-demand work is queued or running', async () => {
    const s = new FetchScheduler({ concurrency: 2, backgroundBytesPerSec: 0, quietMs: 0 });
    const log: string[] = [];
    const job = track(s, log);
    const d1 = job('d1', ON_DEMAND);
    const d2 = job('d2', ON_DEMAND);
    const b1 = job('b1', BACKGROUND);
    const p1 = job('p1', PREFETCH);
    const d3 = job('d3', ON_DEMAND);
    await tick();
    assert.deepEqual(log, ['d1', 'd2']);
    d1.gate.open();
    await d1.done;
    await tick();
    assert.deepEqual(log, ['d1', 'd2', 'd3'], 'queued on-demand before prefetch and background');
    d2.gate.open();
    d3.gate.open();
    await Promise.all([d2.done, d3.done]);
    await tick();
    assert.deepEqual(log, ['d1', 'd2', 'd3', 'p1'], 'prefetch next; background not while prefetch is queued');
    p1.gate.open();
    await p1.done;
    await tick();
    assert.deepEqual(log.at(-1), 'b1');
    const d4 = job('d4', ON_DEMAND);
    const b2 = job('b2', BACKGROUND);
    await tick();
    assert.ok(!log.includes('b2'), 'background paused while a read is in flight');
    d4.gate.open();
    await d4.done;
    b1.gate.open();
    await b1.done;
    await tick();
    assert.equal(log.at(-1), 'b2');
    b2.gate.open();
    await b2.done;
    s.close();
  });

  it('background: one request at a time, and none for the quiet period after on-demand work ends', async () => {
    const s = new FetchScheduler({ concurrency: 4, backgroundBytesPerSec: 0, quietMs: 150 });
    const log: string[] = [];
    const job = track(s, log);
    const b1 = job('b1', BACKGROUND);
    const b2 = job('b2', BACKGROUND);
    await tick();
    assert.equal(log.length, 0, 'a new scheduler counts as just used: background waits');
    while (log.length === 0) await new Promise((r) => setTimeout(r, 5));
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(log, ['b1'], 'one background request in flight, though slots are free');
    const d1 = job('d1', ON_DEMAND);
    await tick();
    assert.deepEqual(log, ['b1', 'd1']);
    d1.gate.open();
    await d1.done;
    const ended = performance.now();
    b1.gate.open();
    await b1.done;
    await new Promise((r) => setTimeout(r, 60));
    assert.deepEqual(log, ['b1', 'd1'], 'b2 waits out the quiet period after the read');
    b2.gate.open();
    while (!log.includes('b2')) await new Promise((r) => setTimeout(r, 5));
    assert.ok(performance.now() - ended >= 145, `b2 started ${Math.round(performance.now() - ended)} ms after the read ended`);
    await b2.done;
    s.close();
  });

  it('background waits out the quiet period after activity() (a request of a user), as after on-demand work', async () => {
    const s = new FetchScheduler({ concurrency: 4, backgroundBytesPerSec: 0, quietMs: 120 });
    const log: string[] = [];
    const job = track(s, log);
    s.activity();
    const t0 = performance.now();
    const b1 = job('b1', BACKGROUND);
    b1.gate.open();
    await tick();
    assert.deepEqual(log, [], 'not at once');
    await b1.done;
    assert.ok(performance.now() - t0 >= 115, `started ${Math.round(performance.now() - t0)} ms after the activity`);
    s.close();
  });

  it('a waiting prefetch job that a read joins is raised to on-demand', async () => {
    const s = new FetchScheduler({ concurrency: 2, backgroundBytesPerSec: 0 });
    const log: string[] = [];
    const job = track(s, log);
    const p1 = job('p1', PREFETCH);
    const g = gate();
    let ranAs: number | undefined;
    const p2 = s.schedule(PREFETCH, 1, async (runsAs) => {
      log.push('p2');
      ranAs = runsAs;
      await g.promise;
    });
    await tick();
    assert.deepEqual(log, ['p1']);
    p2.promote();
    await tick();
    assert.deepEqual(log, ['p1', 'p2'], 'started in the on-demand slot');
    assert.equal(ranAs, ON_DEMAND, 'and told it runs as on-demand work (its bytes are a read\'s, its decodes not deferred)');
    g.open();
    p1.gate.open();
    await Promise.all([p1.done, p2.done]);
    s.close();
  });

  it('holds background work to its bandwidth limit', async () => {
    const rate = 400 << 10;
    const s = new FetchScheduler({ concurrency: 4, backgroundBytesPerSec: rate });
    const started: number[] = [];
    const t0 = Date.now();
    await Promise.all(Array.from({ length: 6 }, () => s.submit(BACKGROUND, 200 << 10, async () => { started.push(Date.now() - t0); })));
    s.close();
    // A full bucket (one second's worth) covers two jobs; the other four need 2 s of budget at least.
    assert.equal(started.length, 6);
    assert.ok((started[5] ?? 0) >= 1500, `six 200 KiB jobs at 400 KiB/s started by ${String(started[5])} ms`);
  });

  it('shared by images (the service, per registry host): one cap for all, an image closing cancels only its own queued jobs, its background waits for the reads of another', async () => {
    const shared = new FetchScheduler({ concurrency: 2, backgroundBytesPerSec: 0, quietMs: 0 });
    const a = new ScopedScheduler(shared);
    const b = new ScopedScheduler(shared);
    const log: string[] = [];
    const job = (s: ScopedScheduler, name: string, p: Priority, g = gate()) => ({ gate: g, done: s.submit(p, 1, async () => { log.push(name); await g.promise; }) });
    const a1 = job(a, 'a1', ON_DEMAND);
    const b1 = job(b, 'b1', ON_DEMAND);
    const a2 = job(a, 'a2', ON_DEMAND);
    const b2 = job(b, 'b2', ON_DEMAND);
    await tick();
    assert.deepEqual(log, ['a1', 'b1'], 'two slots for both images together');
    a.close();
    await assert.rejects(a2.done, { code: 'SGZ_CLOSED' });
    await assert.rejects(a.submit(ON_DEMAND, 1, async () => undefined), { code: 'SGZ_CLOSED' });
    const bg = job(b, 'bg', BACKGROUND);
    a1.gate.open();
    await a1.done;
    await tick();
    assert.deepEqual(log, ['a1', 'b1', 'b2'], "b's queued read runs; its background waits while reads run");
    b1.gate.open();
    b2.gate.open();
    await Promise.all([b1.done, b2.done]);
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(log, ['a1', 'b1', 'b2', 'bg']);
    bg.gate.open();
    await bg.done;
    shared.close();
  });
});
