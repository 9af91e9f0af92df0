import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { encodeTar, parseTar, TarReader } from '../../src/toc/tar.js';
import { entries } from '../helpers/entries.js';

describe('tar codec', () => {
  it('round-trips USTAR and PAX headers: long names, big ids, negative times, xattrs', () => {
    const specs = entries([
      { name: 'short', body: 'x', mode: 0o4755 },
      { name: `${'d'.repeat(120)}/${'n'.repeat(90)}`, body: 'ustar prefix split' },
      { name: `${'p'.repeat(300)}`, body: 'pax path' },
      { name: 'ünï/名前', body: 'utf-8 name' },
      { name: 'ids', uid: 3000000000, gid: 4294967294, mtime: -86400, body: '' },
      { name: 'far', mtime: 13569465600 },
      { name: 'link', link: 'x'.repeat(150) },
      { name: 'dev', type: 'char', dev: [4095, 1048575] },
      { name: 'xa', xattrs: { 'user.bin': Buffer.from([0, 255, 10]), 'security.capability': 'cap' } },
    ]);
    const back = parseTar(encodeTar(specs));
    assert.equal(back.length, specs.length);
    for (const [i, e] of specs.entries()) {
      const b = back[i];
      assert.ok(b);
      for (const k of ['name', 'type', 'mode', 'uid', 'gid', 'mtime', 'linkName', 'devMajor', 'devMinor'] as const) {
        assert.equal(b.header[k], e.header[k], `${e.header.name}: ${k}`);
      }
      assert.deepEqual([...b.header.xattrs], [...e.header.xattrs].sort(([x], [y]) => (x < y ? -1 : 1)));
      assert.ok(b.body.equals(e.body));
    }
  });

  it('reads incrementally and reports truncation and bad checksums', () => {
    const tar = encodeTar(entries([{ name: 'a', body: 'hello' }, { name: 'b', body: 'world' }]));
    const r = new TarReader();
    const got = [];
    for (let i = 0; i < tar.length; i += 100) got.push(...r.push(tar.subarray(i, i + 100)));
    r.end();
    assert.deepEqual(got.map((e) => e.body.toString()), ['hello', 'world']);
    assert.throws(() => parseTar(tar.subarray(0, 700)), { code: 'SGZ_TAR' });
    const bad = Buffer.from(tar);
    bad[10] = 0x41;
    assert.throws(() => parseTar(bad), /checksum/);
  });
});
