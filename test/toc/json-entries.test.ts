import { describe, it } from 'node:test';
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
