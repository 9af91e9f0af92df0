// Fuzzing src/toc/entry.ts, where each raw TOC entry becomes a TocEntry (eStargz and both
// zstd:chunked flavors: endOffset, chunkType): JSON values of any shape, entries with
// every field of any type or extreme, RFC 3339 times of any form; and times written from
// seconds and nanoseconds read back to them.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeEntry, parseRfc3339, type TocEntry } from '../../src/toc/entry.js';
import { fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const D = `sha256:${'b'.repeat(64)}`;
const FIELDS = ['name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'devMajor', 'devMinor', 'xattrs', 'digest', 'offset', 'endOffset', 'innerOffset', 'chunkOffset', 'chunkSize', 'chunkDigest', 'chunkType'];
const extreme = fc.oneof(
  fc.constantFrom(0, -1, 1.5, 2 ** 32, 2 ** 53, Number.MAX_SAFE_INTEGER, -0, 1e308, null, '', 'zeros', D, 'reg', 'chunk', '2020-01-01T00:00:00.123456789+02:00', '0001-01-01T00:00:00Z', '-99999-12-31T23:59:60Z', '275760-09-13T00:00:01Z'),
  fc.jsonValue({ maxDepth: 1 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.oneof(fc.base64String({ maxLength: 12 }), fc.jsonValue({ maxDepth: 0 })), { maxKeys: 2, noNullPrototype: true }),
);
const VALID = Buffer.from(JSON.stringify({ name: 'a/b', type: 'reg', size: 10, modtime: '2021-02-03T04:05:06.789Z', mode: 33188, uid: 1000, gid: 1000, offset: 512, endOffset: 900, chunkSize: 10, digest: D, chunkDigest: D, xattrs: { 'user.x': 'eHl6' }, chunkType: '' }));

/** What a decoded entry must hold to. */
function assertSane(e: TocEntry): void {
  assert.ok(!e.name.includes('\0'));
  for (const k of ['size', 'uid', 'gid', 'devMajor', 'devMinor', 'offset', 'endOffset', 'innerOffset', 'chunkOffset', 'chunkSize', 'perm'] as const) {
    assert.ok(Number.isSafeInteger(e[k]) && e[k] >= 0, `${k} ${e[k]}`);
  }
  assert.ok(e.perm <= 0o7777);
  assert.ok(Number.isSafeInteger(e.mtime), `mtime ${e.mtime}`);
  assert.ok(Number.isSafeInteger(e.mtimeNsec) && e.mtimeNsec >= 0 && e.mtimeNsec < 1e9, `mtimeNsec ${e.mtimeNsec}`);
  for (const [k] of e.xattrs) assert.ok(k !== '' && !k.includes('\0'));
  for (const d of [e.digest, e.chunkDigest]) assert.ok(d === '' || d.length === 71);
}

describe('fuzz: toc/entry.ts', () => {
  it(`entries of any shape, every field of any type or extreme, mutated entries: ${EACH} inputs`, async (t) => {
    const raw = fc.oneof(
      fc.jsonValue(),
      fc.dictionary(fc.constantFrom(...FIELDS), extreme, { noNullPrototype: true }).map((o) => ({ name: 'x', type: 'reg', ...o })),
      mutated(VALID).map((b) => {
        try {
          return JSON.parse(b.toString('utf8')) as unknown;
        } catch {
          return b.toString('latin1');
        }
      }),
    );
    await fuzz(t, EACH, fc.property(raw, fc.oneof(fc.string({ maxLength: 40 }), fc.stringMatching(/^-?\d{4,8}-\d\d-\d\d[Tt]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$/)), (r, time) => {
      const e = refusedOrValue(() => decodeEntry(r, 0, 'sha256:x'));
      if (e !== undefined) assertSane(e);
      const p = refusedOrValue(() => parseRfc3339(time));
      if (p !== undefined) assert.ok(Number.isSafeInteger(p[0]) && Number.isSafeInteger(p[1]) && p[1] >= 0 && p[1] < 1e9, `${time} -> ${p.join(',')}`);
    }));
  });

  it(`times written from seconds and nanoseconds, any zone, read back to them: ${EACH} inputs`, async (t) => {
    const YEAR_1 = -62135596800;
    await fuzz(t, EACH, fc.property(fc.integer({ min: YEAR_1 + 1, max: 253402300799 }), fc.option(fc.nat(999_999_999), { nil: undefined }), fc.integer({ min: -23 * 60 - 59, max: 23 * 60 + 59 }), (sec, nsec, zoneMin) => {
      const local = new Date((sec + zoneMin * 60) * 1000).toISOString().slice(0, 19);
      if (local.startsWith('-') || local.startsWith('+')) return; // outside four-digit years once shifted
      const z = zoneMin === 0 ? 'Z' : `${zoneMin < 0 ? '-' : '+'}${String(Math.floor(Math.abs(zoneMin) / 60)).padStart(2, '0')}:${String(Math.abs(zoneMin) % 60).padStart(2, '0')}`;
      const s = `${local}${nsec !== undefined ? `.${String(nsec).padStart(9, '0')}` : ''}${z}`;
      const e = refusedOrValue(() => decodeEntry({ name: 'f', type: 'reg', modtime: s }, 0));
      assert.ok(e !== undefined, s);
      assert.deepEqual([e.mtime, e.mtimeNsec], [sec, nsec ?? 0], s);
    }));
  });
});
