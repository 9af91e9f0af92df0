import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { warmImport, warmTocJson } from '../../src/toc/warm-toc.js';

describe('the warm-up TOC', () => {
  it('is a TOC the importer takes whole: every kind of entry, no warnings', async () => {
    const json = JSON.parse(warmTocJson(3000).toString()) as { entries: Array<{ type: string }> };
    assert.ok(json.entries.length >= 3000 && json.entries.length <= 3001, String(json.entries.length));
    assert.deepEqual([...new Set(json.entries.map((e) => e.type))].sort(), ['chunk', 'dir', 'hardlink', 'reg', 'symlink']);
    const { row, ms } = await warmImport(3000);
    assert.equal(row.warning_count, 0);
    assert.equal(row.entry_count, json.entries.length);
    assert.ok(ms > 0);
  });
});
