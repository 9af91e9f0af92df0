// `mount --metrics`: a real mount of an image in a real registry (behind the counting
// proxy), scraped over HTTP and over a unix socket; the numbers move with the reads.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { get } from 'node:http';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { entry } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { freePort } from '../helpers/registry.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { bytes, rng } from '../helpers/random.js';
import { fresh as freshIn } from '../helpers/tmp.js';

type Where = { port: number } | { socketPath: string };

function scrape(where: Where): Promise<Map<string, number>> {
  return new Promise((resolve, reject) => {
    get({ ...('port' in where ? { host: '127.0.0.1', port: where.port } : { socketPath: where.socketPath }), path: '/metrics' }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`HTTP ${res.statusCode}: ${text}`));
        const m = new Map<string, number>();
        for (const line of text.split('\n')) {
          if (line.startsWith('#') || line === '') continue;
          const i = line.lastIndexOf(' ');
          // Labels other than these vary by run (digests, hosts): keep the ones tests name.
          m.set(line.slice(0, i).replace(/,?digest="[^"]*"/, '').replace(/host="[^"]*"/, 'host="*"'), Number(line.slice(i + 1)));
        }
        resolve(m);
      });
    }).on('error', reject);
  });
}

describe('stargzfs mount --metrics (real registry, real FUSE)', () => {
  let img: ServedImage;
  const r = rng(9);
  const a = bytes(r, 300_000);
  before(async () => {
    img = await serveImage('metrics/app', [[entry({ name: 'a.bin', body: a }), entry({ name: 'b.bin', body: bytes(r, 1000) })]]);
  });
  after(async () => {
    await img?.stop();
  });

  it('counts operations, on-demand fetches, bytes served, cache misses then hits, registry responses, RSS and fds', async () => {
    const root = freshIn(img.dir, 'root');
    const port = await freePort();
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', root, '--no-background-fetch', '--no-prefetch', '--metrics', `127.0.0.1:${port}`, img.ref], freshIn(img.dir, 'mnt'));
      const before = await scrape({ port });
      assert.ok((before.get('process_resident_memory_bytes') ?? 0) > 10 << 20);
      assert.ok((before.get('process_open_fds') ?? 0) > 3);
      assert.equal(before.get('stargzfs_layer_served_bytes_total{layer="0"}'), 0);
      assert.ok((before.get('stargzfs_registry_responses_total{host="*",status="200"}') ?? 0) > 0, 'manifest, config and TOC were fetched');
      assert.ok((await readFile(join(m.mountpoint, 'a.bin'))).equals(a));
      const after1 = await scrape({ port });
      assert.equal(after1.get('stargzfs_layer_served_bytes_total{layer="0"}'), a.length);
      assert.ok((after1.get('stargzfs_layer_cache_misses_total{layer="0"}') ?? 0) > 0);
      assert.ok((after1.get('stargzfs_fetch_duration_seconds_count{priority="on_demand"}') ?? 0) > 0);
      assert.ok((after1.get('stargzfs_fetch_bytes_total{priority="on_demand"}') ?? 0) > 0);
      assert.ok((after1.get('stargzfs_fuse_operation_duration_seconds_count{op="lookup"}') ?? 0) > (before.get('stargzfs_fuse_operation_duration_seconds_count{op="lookup"}') ?? 0));
      assert.ok((after1.get('stargzfs_fuse_operation_duration_seconds_count{op="read"}') ?? 0) >= 1);
      // Every open is counted by how it is read (the first opens of a cold file come through stargzfs).
      assert.ok((after1.get('stargzfs_fuse_opens_total{mode="stargzfs"}') ?? 0) >= 1, 'opens through stargzfs are counted');
      assert.ok(after1.has('stargzfs_fuse_opens_total{mode="passthrough"}'), 'and passthrough opens');
      assert.ok((after1.get('stargzfs_fuse_cached_opens_total{why="notWhole"}') ?? 0) >= 1, 'and why an open was not passthrough');
      assert.ok((after1.get('stargzfs_registry_responses_total{host="*",status="206"}') ?? 0) > 0, 'range reads are counted per host and status');
      await assert.rejects(readFile(join(m.mountpoint, 'nope')));
      const after2 = await scrape({ port });
      assert.ok((after2.get('stargzfs_fuse_operation_errors_total{op="lookup",errno="2"}') ?? 0) >= 1, 'ENOENT lookups are counted');
    } finally {
      await m?.stop();
    }
    // A second mount on the same state root, scraped over a unix socket: the chunks come from the cache.
    const sock = freshIn(img.dir, 'metrics.sock');
    try {
      m = await mountDaemon(['--root', root, '--no-background-fetch', '--no-prefetch', '--metrics', `unix:${sock}`, img.ref], freshIn(img.dir, 'mnt'));
      assert.ok((await readFile(join(m.mountpoint, 'a.bin'))).equals(a));
      const s = await scrape({ socketPath: sock });
      assert.ok((s.get('stargzfs_layer_cache_hits_total{layer="0"}') ?? 0) > 0);
      assert.equal(s.get('stargzfs_layer_cache_misses_total{layer="0"}'), 0);
      assert.equal(s.get('stargzfs_fetch_duration_seconds_count{priority="on_demand"}') ?? 0, 0);
    } finally {
      await m?.stop();
    }
  });
});
