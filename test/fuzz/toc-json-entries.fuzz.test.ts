// Fuzzing src/toc/json-entries.ts, the streaming TOC JSON parser: mutated TOCs pushed in
// pieces cut anywhere and read whole (forEachTocEntry, whose small-TOC path is
// JSON.parse), which must agree with each other; and TOCs written from random entries in
// any layout read back to those entries.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { forEachTocEntry, TocJsonParser, type TocHeader } from '../../src/toc/json-entries.js';
import { fuzz, mutated, pieces, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const D = `sha256:${'a'.repeat(64)}`;
const VALID = Buffer.from(JSON.stringify({
  version: 1,
  entries: [
    { name: 'etc/', type: 'dir', mode: 493, modtime: '2020-01-01T00:00:00Z' },
    { name: 'etc/hosts', type: 'reg', size: 10, offset: 100, digest: D, chunkDigest: D, xattrs: { 'user.a': 'Yg==' } },
    { name: 'big', type: 'reg', size: 20, offset: 200, chunkSize: 10, chunkDigest: D },
    { name: 'big', type: 'chunk', offset: 300, chunkOffset: 10, chunkSize: 10, chunkDigest: D },
    { name: 'l', type: 'symlink', linkName: '../etc/hosts' },
    { name: 'h', type: 'hardlink', linkName: 'etc/hosts' },
    { name: 'dev', type: 'char', devMajor: 1, devMinor: 3 },
  ],
}, null, 1));

type Read = { header: TocHeader; entries: unknown[] } | undefined;

function streamed(json: Buffer, cuts: readonly number[]): Read {
  const entries: unknown[] = [];
  return refusedOrValue(() => {
    const p = new TocJsonParser((raw, i) => {
      assert.equal(i, entries.length);
      entries.push(raw);
    });
    for (const piece of pieces(json, cuts)) p.push(piece);
    return { header: { ...p.end() }, entries };
  });
}

function whole(json: Buffer): Read {
  const entries: unknown[] = [];
  return refusedOrValue(() => ({ header: { ...forEachTocEntry(json, (raw) => void entries.push(raw)) }, entries }));
}

describe('fuzz: toc/json-entries.ts', () => {
  it(`mutated TOCs, pushed in pieces cut anywhere and whole, read the same both ways: ${EACH} inputs`, async (t) => {
    const docs = fc.oneof(mutated(VALID), fc.json().map((j) => Buffer.from(j)), fc.jsonValue().map((v) => Buffer.from(JSON.stringify({ version: 1, entries: [v, { name: 'a' }] }))));
    await fuzz(t, EACH, fc.property(docs, fc.array(fc.nat(), { maxLength: 12 }), (json, cuts) => {
      const s = streamed(json, cuts);
      const w = whole(json);
      for (const r of [s, w]) {
        for (const e of r?.entries ?? []) assert.ok(e !== null && typeof e === 'object' && !Array.isArray(e), 'an entry is an object');
      }
      assert.deepEqual(s, w, 'streamed and whole agree');
    }));
  });

  it(`TOCs written from random entries in any layout read back to those entries: ${EACH} inputs`, async (t) => {
    const entry = fc.dictionary(fc.string({ maxLength: 12 }), fc.jsonValue({ maxDepth: 2 }), { maxKeys: 8, noNullPrototype: true });
    await fuzz(t, EACH, fc.property(fc.option(fc.integer(), { nil: undefined }), fc.array(entry, { maxLength: 10 }), fc.constantFrom(undefined, 0, 1, '\t', '  \r\n'), fc.array(fc.nat(), { maxLength: 12 }), (version, entries, space, cuts) => {
      const json = Buffer.from(JSON.stringify({ version, entries }, null, space));
      const want = { header: { version, sawEntries: true }, entries: JSON.parse(JSON.stringify(entries)) as unknown[] };
      assert.deepEqual(streamed(json, cuts), want);
      assert.deepEqual(whole(json), want);
    }));
  });
});
