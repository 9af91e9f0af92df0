import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { forEachTocEntry, TocJsonParser } from '../../src/toc/json-entries.js';
import { StargzfsError } from '../../src/errors.js';

const toc = Buffer.from(
  JSON.stringify(
    {
      extra: { nested: ['}', '{', '"'] },
      entries: [
        { name: 'a "quoted" \\ name }', type: 'reg', xattrs: { 'user.x': 'e30=' } },
        { name: 'ü/日本', type: 'dir', NumLink: 0 },
        { name: 'n', type: 'reg', size: 12345678901 },
      ],
      version: 1,
    },
    null,
    '\t',
  ),
);

describe('streaming TOC JSON', () => {
  it('gives the same entries whether fed whole or one byte at a time', () => {
    const whole: unknown[] = [];
    const h1 = forEachTocEntry(toc, (e) => whole.push(e));
    assert.equal(h1.version, 1);
    assert.equal(whole.length, 3);
    for (const step of [1, 2, 7, 64]) {
      const got: unknown[] = [];
      const p = new TocJsonParser((e) => got.push(e));
      for (let i = 0; i < toc.length; i += step) p.push(toc.subarray(i, i + step));
      assert.equal(p.end().version, 1);
      assert.deepEqual(got, whole, `step ${step}`);
    }
  });

  // Issue 22: every chunk was joined to the whole unparsed rest, so one long string cost
  // time quadratic in its length (32 MiB: seconds; 144 MiB: minutes). The bytes copied
  // count the work without timing it.
  it('a long string in an unknown field costs work linear in its length', () => {
    const copied = (mib: number, where: 'top' | 'entry'): { bytes: number; ms: number } => {
      const s = 'a'.repeat(mib << 20);
      const json = Buffer.from(where === 'top'
        ? `{"version":1,"unknown":"${s}","entries":[{"name":"f","type":"fifo"}]}`
        : `{"version":1,"entries":[{"name":"f","type":"fifo","unknown":"${s}"},{"name":"g","type":"fifo"}]}`);
      const concat = mock.method(Buffer, 'concat');
      const started = performance.now();
      try {
        const got: unknown[] = [];
        const p = new TocJsonParser((e) => got.push(e));
        for (let i = 0; i < json.length; i += 256 << 10) p.push(json.subarray(i, i + (256 << 10)));
        assert.equal(p.end().version, 1);
        assert.equal(got.length, where === 'top' ? 1 : 2);
        const bytes = concat.mock.calls.reduce((n, c) => n + (c.result as Buffer).length, 0);
        return { bytes, ms: performance.now() - started };
      } finally {
        concat.mock.restore();
      }
    };
    for (const where of ['top', 'entry'] as const) {
      const small = copied(4, where);
      const big = copied(32, where);
      // Doubling retries copy at most about twice the input; joining each chunk copied
      // 64 times the input at 32 MiB.
      assert.ok(big.bytes <= 3 * (32 << 20), `${where}: ${big.bytes} bytes copied for a 32 MiB string`);
      assert.ok(big.bytes <= 12 * Math.max(small.bytes, 1 << 20), `${where}: 4 MiB copied ${small.bytes}, 32 MiB ${big.bytes}`);
      assert.ok(big.ms < 5000, `${where}: 32 MiB took ${big.ms} ms`);
    }
  });

  it('a string of escaped quotes split across chunks ends where JSON says', () => {
    const value = '\\"\\\\'.repeat(1000) + 'x\\\\';
    const json = Buffer.from(JSON.stringify({ version: 1, unknown: value, entries: [{ name: value, type: 'fifo' }] }));
    for (const step of [1, 3, 1000]) {
      const got: Array<{ name: string }> = [];
      const p = new TocJsonParser((e) => got.push(e as { name: string }));
      for (let i = 0; i < json.length; i += step) p.push(json.subarray(i, i + step));
      p.end();
      assert.equal(got[0]?.name, value, `step ${step}`);
    }
  });

  // V8 hashes strings of over 16,383 characters by length alone: JSON.parse of one entry
  // with 2,000 such keys took 5.6 s, 7,000 (a TOC under the size limit) over a minute.
  it('an entry with thousands of keys of 20,000 characters is refused before JSON.parse, in linear time', () => {
    const base = 'k'.repeat(20_000 - 8);
    const keys = Array.from({ length: 2000 }, (_, i) => `${JSON.stringify(base + String(i).padStart(8, '0'))}:1`).join(',');
    const json = Buffer.from(`{"version":1,"entries":[{"name":"a","type":"reg",${keys}}]}`);
    for (const run of [(b: Buffer) => forEachTocEntry(b, () => undefined), (b: Buffer) => new TocJsonParser(() => undefined).push(b)]) {
      const t0 = performance.now();
      assert.throws(() => run(json), (err: StargzfsError) => err.code === 'SGZ_TOC_FORMAT' && /an object key of 20000 bytes/.test(err.message));
      const ms = performance.now() - t0;
      assert.ok(ms < 1500, `refused in ${ms.toFixed(0)} ms`);
    }
    // An entry as large made of long values, not keys, still parses.
    const values = Array.from({ length: 100 }, (_, i) => `"x${i}":${JSON.stringify(base)}`).join(',');
    let n = 0;
    forEachTocEntry(Buffer.from(`{"version":1,"entries":[{"name":"a","type":"reg",${values}}]}`), () => n++);
    assert.equal(n, 1);
  });

  it('rejects malformed documents with the byte offset', () => {
    for (const bad of ['', '[]', '{"entries": [1]}', '{"entries": [{"a":1}', '{"entries": []} x', '{"version": "1", "entries": []}', '{"entries": 5}']) {
      assert.throws(
        () => forEachTocEntry(Buffer.from(bad), () => undefined),
        (err: StargzfsError) => err.code === 'SGZ_TOC_FORMAT' && /malformed TOC JSON at byte \d+/.test(err.message),
        bad,
      );
    }
  });
});
