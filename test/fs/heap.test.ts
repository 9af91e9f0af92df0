// native/memory.cc: a warmed heap serves the next buffers without page faults, and is
// given back on release. In a child process: the settings are process-wide.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const binding = new URL('../../src/fs/fuse-binding.js', import.meta.url).href;

/** Runs `body` in a child with reserveHeap/releaseHeap, rss() and minflt() in scope; returns what it prints as JSON. */
function child(body: string): Record<string, number | boolean> {
  const script = `
    import { readFileSync } from 'node:fs';
    const { reserveHeap, releaseHeap } = await import(${JSON.stringify(binding)});
    const rss = () => Number(/VmRSS:\\s+(\\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))[1]) * 1024;
    const minflt = () => Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
    const out = {};
    ${body}
    process.stdout.write(JSON.stringify(out));`;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Record<string, number | boolean>;
}

describe('reserveHeap / releaseHeap', () => {
  it('warms the heap on a helper thread, serves a large buffer from it, and gives it back', () => {
    const out = child(`
      const r0 = rss();
      out.ok = await reserveHeap(48 << 20);
      out.grew = rss() - r0;
      const f0 = minflt();
      let b = Buffer.allocUnsafe(32 << 20);
      b.fill(1);
      out.faults = minflt() - f0;
      b = null;
      // The buffer's memory is freed when V8 finalizes it, which a busy machine may put
      // off past one collection (CI once saw 16 of 48 MiB given back): collect, let the
      // finalizers run, collect again.
      globalThis.gc();
      await new Promise((resolve) => setTimeout(resolve, 100));
      globalThis.gc();
      const r1 = rss();
      releaseHeap();
      out.shrank = r1 - rss();`);
    assert.equal(out['ok'], true);
    assert.ok((out['grew'] as number) >= 44 << 20, `heap grew by ${out['grew']} bytes`);
    // 8192 pages of 4 KiB: a fresh buffer faults on every one of them.
    assert.ok((out['faults'] as number) < 1000, `${out['faults']} page faults filling 32 MiB`);
    assert.ok((out['shrank'] as number) >= 40 << 20, `release gave back ${out['shrank']} bytes`);
  });

  it('a fresh heap faults on every page of a large buffer (what the above saves)', () => {
    const out = child(`
      const f0 = minflt();
      const b = Buffer.allocUnsafe(32 << 20);
      b.fill(1);
      out.faults = minflt() - f0;`);
    assert.ok((out['faults'] as number) > 6000, `${out['faults']} page faults`);
  });

  it('refuses a size out of range', () => {
    const out = child(`
      try { reserveHeap(-1); out.threw = false; } catch (err) { out.threw = err instanceof RangeError; }`);
    assert.equal(out['threw'], true);
  });
});
