// The reference's read matrices with 3-byte chunks (fs/remote/blob_test.go TestReadAt and
// TestParallelDownloadingBehavior, fs/reader/testutil.go testFileReadAt, fs/layer/testutil.go
// testNodeRead), through our file reader against the real registry behind the fault proxy:
// read size × offset in the chunk × chunk × file size × what the cache holds × whether the
// registry answers multi-range requests. Every read must give the right bytes, leave every
// chunk it touched in the cache, and never ask the registry for a member the cache holds.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { withImage, type CommandContext } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import type { ChunkRow } from '../../src/toc/inode-db.js';
import type { ConfigInput } from '../../src/config.js';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { entries, type Spec } from '../helpers/entries.js';
import { tempDir } from '../helpers/tmp.js';
import { testConfig } from '../helpers/config.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';

const CHUNK = 3;
const DATA = '0123456789';
const MIDDLE = Math.floor(CHUNK / 2);
const LAST_CHUNK = CHUNK * Math.floor(DATA.length / CHUNK);
// fileSizeCond / blobSizeCond: one file per size.
const FILES = [CHUNK, 2 * CHUNK, DATA.length].map((n) => ({ name: `f${n}`, body: DATA.slice(0, n) }));
// sizeCond: single_chunk (3 − 1), multi_chunks of the reader (3 + 1) and of the blob (2·3 + 1).
const SIZES = [CHUNK - MIDDLE, CHUNK + MIDDLE, 2 * CHUNK + MIDDLE];
const INNER = [0, MIDDLE]; // innerOffsetCond: at_top, at_middle
const BASE = [0, CHUNK, LAST_CHUNK]; // baseOffsetCond: of_1st_chunk, of_2nd_chunk, of_last_chunk
// cacheCond: clean, edge-filled (first and last chunk), sparse (first and third chunk).
const CACHE: Record<string, Array<[number, number]>> = {
  with_clean_cache: [],
  with_edge_filled_cache: [[0, CHUNK - 1], [LAST_CHUNK, DATA.length - 1]],
  with_sparse_cache: [[0, CHUNK - 1], [2 * CHUNK, 3 * CHUNK - 1]],
};

const sha = (s: string): Buffer => createHash('sha256').update(s).digest();

/** [start, end] pairs of every range the registry was asked for. */
function asked(ranges: readonly string[]): Array<[number, number]> {
  return ranges.flatMap((r) => r.replace(/^bytes=/, '').split(',').map((p) => p.split('-').map(Number) as [number, number]));
}

describe('reference: read matrices with 3-byte chunks, through the registry', () => {
  let served: ServedImage;

  before(async () => {
    // Stored members (level 0): each chunk's member is a few dozen bytes, apart from the others.
    served = await serveImage('reference/blob', [entries(FILES)], { chunkSize: CHUNK, compressionLevel: 0 });
  });
  after(async () => {
    await served?.stop();
  });

  async function withReader(root: string, multiRange: boolean, fn: (ctx: CommandContext) => Promise<void>, extra: ConfigInput = {}): Promise<void> {
    served.proxy.reset();
    // Single ranges only (multi-range refused with 400, as blob_test's allowMultiRange(false)).
    if (!multiRange) served.proxy.inject({ kind: 'status', status: 400 }, 1_000_000, /\/blobs\//, { range: /,/ });
    try {
      // No read-ahead, no neighbours, no gap filling: each read asks for exactly the members it misses.
      await withImage(testConfig(join(served.dir, root), { readAhead: 0, neighbourBytes: 0, coalesceGap: 0, ...extra }), served.ref, fn);
    } finally {
      served.proxy.reset();
    }
  }

  for (const multiRange of [true, false]) {
    for (const [cacheName, cached] of Object.entries(CACHE)) {
      const transport = multiRange ? 'with_multi_reg' : 'with_single_reg';
      it(`${transport}_${cacheName}: every size, inner offset, chunk and file size (TestReadAt, testFileReadAt, testNodeRead)`, () =>
        withReader(`root-${transport}-${cacheName}`, multiRange, async (ctx) => {
          const view = ctx.image.merged();
          const held = cached.map(([b, e]) => DATA.slice(b, e + 1));
          const heldDigests = new Set(held.map((s) => sha(s).toString('hex')));
          const rows = new Map<string, ChunkRow[]>();
          for (const f of FILES) rows.set(f.name, ctx.table.allChunks(resolvePath(view, f.name).dataId));
          let reads = 0;
          for (const f of FILES) {
            for (const size of SIZES) {
              for (const inner of INNER) {
                for (const base of BASE) {
                  const offset = base + inner;
                  const want = f.body.slice(offset, offset + size);
                  // The cache holds exactly the condition's chunks before each read.
                  await ctx.cache.drain();
                  await ctx.cache.clear();
                  for (const s of held) await ctx.cache.put(sha(s), Buffer.from(s));
                  served.proxy.reset();
                  if (!multiRange) served.proxy.inject({ kind: 'status', status: 400 }, 1_000_000, /\/blobs\//, { range: /,/ });
                  const what = `${f.name} read ${size} at ${offset}`;
                  // FUSE may ask for more than is left (testNodeRead): the answer stops at the end.
                  const got = await ctx.image.reader.read(resolvePath(view, f.name), f.name, offset, size);
                  assert.equal(got.toString(), want, what);
                  reads++;
                  const touched = (rows.get(f.name) ?? []).filter((c) => c.chunk_offset < offset + want.length && c.chunk_offset + c.chunk_size > offset);
                  for (const c of touched) {
                    assert.ok(c.digest !== null && ctx.cache.has(c.digest), `${what}: chunk at ${c.chunk_offset} is cached afterwards (checkAllCached)`);
                  }
                  // A member whose chunk the cache held is never asked for (exceptChunks / mustHit).
                  for (const [b, e] of asked(served.proxy.stats.ranges)) {
                    for (const c of touched) {
                      if (c.digest === null || !heldDigests.has(c.digest.toString('hex'))) continue;
                      assert.ok(e < c.blob_offset || b >= c.blob_end, `${what}: range ${b}-${e} fetches the cached chunk at ${c.chunk_offset}`);
                    }
                  }
                  if (want.length === 0 || touched.every((c) => c.digest !== null && heldDigests.has(c.digest.toString('hex')))) {
                    assert.equal(served.proxy.stats.ranges.length, 0, `${what}: nothing to fetch, nothing asked for`);
                  }
                  if (!multiRange) assert.ok(served.proxy.stats.ranges.every((r) => !r.includes(',') || served.proxy.stats.faults > 0), 'single ranges');
                }
              }
            }
          }
          assert.equal(reads, FILES.length * SIZES.length * INNER.length * BASE.length);
        }));
    }
  }

  // TestFailReadAt: an HTTP 500 on every attempt, and a body broken off halfway on every
  // attempt (checkBrokenBody), with multi-range answered or refused: a typed error, never
  // bytes. A body short of only its last byte (the gzip trailer's) may still give the
  // chunk: its bytes are checked against the chunk digest, so it is right or an error.
  for (const multiRange of [true, false]) {
    for (const [name, fault] of [['http_500', { kind: 'status', status: 500 }], ['broken_body', { kind: 'reset-mid-body' }], ['last_byte_missing', { kind: 'truncate' }]] as const) {
      it(`TestFailReadAt ${name}, ${multiRange ? 'multi-range' : 'single ranges'}: ${name === 'last_byte_missing' ? 'the right bytes or a typed error' : 'a typed error'} for the whole file and for half of it`, () =>
        withReader(`root-fail-${name}-${String(multiRange)}`, multiRange, async (ctx) => {
          const node = resolvePath(ctx.image.merged(), 'f10');
          // Every blob request from here on, ranged or whole (a whole-blob pass would otherwise recover).
          served.proxy.inject(fault, 1_000_000, /\/blobs\//);
          for (const len of [DATA.length, DATA.length / 2]) {
            const got = await ctx.image.reader.read(node, 'f10', 0, len).catch((err: Error & { code?: string }) => {
              assert.match(err.code ?? '', /^SGZ_/, String(err));
              return undefined;
            });
            if (name === 'last_byte_missing') assert.ok(got === undefined || got.toString() === DATA.slice(0, len), `wrong bytes: ${String(got)}`);
            else assert.equal(got, undefined, 'no bytes from a broken answer');
          }
          assert.ok(served.proxy.stats.faults > 0);
        }, { retries: 0 }));
    }
  }

  // TestParallelDownloadingBehavior: three readers at once. Reads of the same chunks share
  // one fetch; different chunks are each fetched once; no_data asks for nothing.
  const parallel: Array<[string, Array<[number, number]>, number]> = [
    ['no_data', [[0, 0], [0, 0], [0, 0]], 0],
    ['same_regions', [[0, 3], [0, 3], [0, 3]], 1],
    ['same_regions_multiple_values', [[0, 6], [0, 6], [0, 6]], 2],
    ['different_regions', [[0, 3], [3, 3], [6, 3]], 3],
    ['some_overlap', [[0, 3], [0, 3], [3, 3]], 2],
  ];
  for (const [name, regions, members] of parallel) {
    it(`parallel reads, ${name}: each member fetched once, ${members} in all`, () =>
      withReader(`root-parallel-${name}`, true, async (ctx) => {
        const view = ctx.image.merged();
        const node = resolvePath(view, 'f10');
        served.proxy.reset(); // the open's own tail read holds this small blob whole
        const got = await Promise.all(regions.map(([off, len]) => ctx.image.reader.read(node, 'f10', off, len)));
        assert.deepEqual(got.map((b) => b.toString()), regions.map(([off, len]) => DATA.slice(off, off + len)));
        const rows = ctx.table.allChunks(node.dataId);
        const fetched = rows.map((c) => asked(served.proxy.stats.ranges).filter(([b, e]) => b < c.blob_end && e >= c.blob_offset).length);
        assert.ok(fetched.every((n) => n <= 1), `no member twice: ${JSON.stringify(served.proxy.stats.ranges)}`);
        assert.equal(fetched.filter((n) => n === 1).length, members);
      }));
  }
});

describe('reference: fs/layer testPrefetch (chunk size 3)', () => {
  const cases: Array<[string, Spec[], string[], string[]]> = [
    ['no_prefetch', [{ name: 'foo.txt', body: DATA }], [], []],
    ['prefetch', [{ name: 'foo.txt', body: DATA }, { name: 'bar.txt', body: 'abcdefghij' }], ['foo.txt'], ['foo.txt']],
    ['with_dir', [{ name: 'foo/', type: 'dir' }, { name: 'foo/bar.txt', body: DATA }, { name: 'buz/', type: 'dir' }, { name: 'buz/buzbuz.txt', body: 'abcdefghij' }],
      ['foo/', 'foo/bar.txt'], ['foo/bar.txt']],
  ];
  for (const [name, specs, prioritized, wants] of cases) {
    it(`${name}: the landmark region's chunks (${wants.length === 0 ? 'none' : `${Math.ceil(DATA.length / CHUNK)}`}) are cached and read with no request; the rest is fetched on demand`, async () => {
      const { dir, cleanup } = tempDir();
      try {
        await buildEstargzImage(join(dir, 'img'), [entries(specs)], { chunkSize: CHUNK, prioritized });
        await withImage(testConfig(join(dir, 'root'), { readAhead: 0, neighbourBytes: 0 }), `oci:${join(dir, 'img')}`, async ({ image, cache }) => {
          const [result] = await image.prefetch();
          const row = image.layers[0]?.row;
          assert.ok(row && result);
          assert.equal(result.corrupt, 0);
          await cache.drain();
          if (wants.length === 0) {
            assert.equal(result.regionBytes, 0, 'no landmark, no region (.no.prefetch.landmark)');
            assert.equal(cache.usage().chunks, 0, 'nothing cached');
          } else {
            assert.ok(result.regionBytes > 0 && result.regionBytes <= row.prefetch_size, 'the region ends at the landmark');
            assert.equal(cache.usage().chunks, Math.ceil(DATA.length / CHUNK), 'the prioritized file\'s chunks, and only those');
          }
          const view = image.layer('0');
          const counters = image.reader.stats(row.id);
          for (const p of wants) {
            const before = counters.requests;
            assert.equal((await image.reader.read(resolvePath(view, p), p, 0, DATA.length)).toString(), DATA);
            assert.equal(counters.requests, before, `${p} is read from the cache`);
          }
          const other = specs.find((s) => s.body !== undefined && !wants.includes(s.name)) as Spec;
          const before = counters.requests;
          assert.equal((await image.reader.read(resolvePath(view, other.name), other.name, 0, 10)).toString(), String(other.body));
          assert.ok(counters.requests > before, `${other.name} is fetched when read`);
        });
      } finally {
        cleanup();
      }
    });
  }
});
