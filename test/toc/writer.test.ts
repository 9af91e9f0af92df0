// The writer's layers read back exactly through the reader (property tests over random
// trees), corrupt chunks never yield bytes, and GNU tar accepts what we write.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { withImage } from '../../src/cli/context.js';
import { entryInfo } from '../../src/cli/entry-info.js';
import { isDir, resolvePath, type ImageView, type ViewNode } from '../../src/toc/view.js';
import { writeEstargz } from '../../src/toc/writer.js';
import { parseFooter } from '../../src/toc/footer.js';
import { tocOf } from '../helpers/blobs.js';
import { StargzfsError } from '../../src/errors.js';
import type { FileReader } from '../../src/layer/file-reader.js';
import { entries, entry, type Spec } from '../helpers/entries.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { bytes, int, pick, rng } from '../helpers/random.js';

const CHUNK = 1024;

function randomTree(seed: number): Spec[] {
  const r = rng(seed);
  const specs: Spec[] = [];
  const dirs = [''];
  const files: string[] = [];
  const names = ['a', 'b c', 'ünï', '🐳', '-rf', '.hidden', 'x'.repeat(int(r, 90, 140)), 'tab\there', 'nl\nx', 'q"\'', 'back\\slash'];
  const n = int(r, 20, 60);
  for (let i = 0; i < n; i++) {
    const parent = pick(r, dirs);
    const name = `${parent}${pick(r, names)}-${i}`;
    const kind = r();
    const meta = {
      mode: pick(r, [0o644, 0o755, 0o4755, 0o2750, 0o1777, 0o000, 0o7777]),
      uid: pick(r, [0, 1000, 65534, 3000000000]),
      gid: pick(r, [0, 1000, 4294967294]),
      mtime: pick(r, [0, 1, 1700000000, -86400, 4102444800, 13569465600]),
    };
    if (kind < 0.2) {
      specs.push({ name: `${name}/`, type: 'dir', ...meta, mode: meta.mode | 0o700, xattrs: r() < 0.3 ? { 'user.d': 'dir' } : {} });
      dirs.push(`${name}/`);
    } else if (kind < 0.65) {
      const size = pick(r, [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 3 * CHUNK + 7, int(r, 0, 5000)]);
      const xattrs: Record<string, Buffer> = {};
      if (r() < 0.3) xattrs['user.bin'] = bytes(r, int(r, 0, 40));
      if (r() < 0.2) xattrs['security.capability'] = Buffer.from('0100000200040000000000000000000000000000', 'hex');
      specs.push({ name, body: bytes(r, size), ...meta, xattrs });
      files.push(name);
    } else if (kind < 0.75) {
      specs.push({ name, link: pick(r, ['../x', '/etc/passwd', 'rel/target', '🐳', 'y'.repeat(150)]), ...meta });
    } else if (kind < 0.82 && files.length > 0) {
      const target = pick(r, files);
      specs.push({ name, type: 'hardlink', link: target, ...meta });
    } else if (kind < 0.9) {
      specs.push({ name, type: pick(r, ['char', 'block'] as const), dev: [int(r, 0, 4095), int(r, 0, 1048575)], ...meta });
    } else {
      specs.push({ name, type: 'fifo', ...meta });
    }
  }
  return specs;
}

async function walk(view: ImageView, dir: ViewNode, path: string, out: Map<string, ViewNode>): Promise<void> {
  for (const name of view.readdir(dir)) {
    const child = view.lookup(dir, name) as ViewNode;
    const p = path === '' ? name : `${path}/${name}`;
    out.set(p, child);
    if (isDir(child)) await walk(view, child, p, out);
  }
}

async function readAll(reader: FileReader, node: ViewNode, path: string): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of reader.stream(node, path)) parts.push(b);
  return Buffer.concat(parts);
}

describe('writer → reader round trip', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`random tree, seed ${seed}`, async () => {
      const { dir, cleanup } = tempDir();
      try {
        const specs = randomTree(seed);
        const minChunkSize = seed % 2 === 0 ? 0 : 700;
        await buildEstargzImage(join(dir, 'img'), [entries(specs)], { chunkSize: CHUNK, minChunkSize });
        await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, async ({ image }) => {
          const view = image.layer('0');
          const seen = new Map<string, ViewNode>();
          await walk(view, view.root(), '', seen);
          const byPath = new Map<string, Spec>();
          for (const s of specs) byPath.set(s.name.replace(/\/$/, ''), s);
          for (const [path, s] of byPath) {
            const node = seen.get(path);
            assert.ok(node, `seed ${seed}: ${JSON.stringify(path)} missing`);
            const info = entryInfo(view, node, path);
            const target = s.type === 'hardlink' ? (byPath.get(s.link as string) as Spec) : s;
            const type = target.type ?? (target.link !== undefined ? 'symlink' : 'reg');
            assert.equal(info.type, type, `seed ${seed}: type of ${path}`);
            if (type !== 'symlink') assert.equal(info.mode, (target.mode ?? 0).toString(8).padStart(4, '0'), `mode of ${path}`);
            assert.equal(info.uid, target.uid);
            assert.equal(info.gid, target.gid);
            assert.equal(info.mtime, target.mtime);
            if (type === 'symlink') assert.equal(info.link, target.link);
            if (type === 'char' || type === 'block') assert.equal(info.rdev, `${target.dev?.[0]}:${target.dev?.[1]}`);
            const wantX: Record<string, string> = {};
            for (const [k, v] of Object.entries(target.xattrs ?? {})) wantX[k] = Buffer.from(v).toString('base64');
            assert.deepEqual(info.xattrs, wantX, `xattrs of ${path}`);
            if (type === 'reg') {
              const body = Buffer.from(target.body ?? '');
              assert.equal(info.size, body.length);
              assert.ok((await readAll(image.reader, node, path)).equals(body), `seed ${seed}: content of ${path}`);
              // A read in the middle, across a chunk boundary.
              if (body.length > CHUNK) {
                const part = await image.reader.read(node, path, CHUNK - 3, 10);
                assert.ok(part.equals(body.subarray(CHUNK - 3, CHUNK + 7)));
              }
            }
          }
          const hardlinked = specs.filter((s) => s.type === 'hardlink');
          for (const h of hardlinked) {
            assert.equal(seen.get(h.name)?.ino, seen.get(h.link as string)?.ino, `hard link ${h.name} shares the inode`);
          }
        });
      } finally {
        cleanup();
      }
    });
  }

  it('minChunkSize packs small files into shared members with innerOffset', async () => {
    const specs = Array.from({ length: 30 }, (_, i) => ({ name: `f${i}`, body: `file ${i} `.repeat(i + 1) }));
    const parts: Buffer[] = [];
    writeEstargz(entries(specs), (b) => parts.push(b), { minChunkSize: 4000 });
    const blob = Buffer.concat(parts);
    const toc = tocOf(blob);
    const inner = toc.entries.filter((e) => (e.innerOffset ?? 0) > 0);
    assert.ok(inner.length > 10, `expected many entries with innerOffset, got ${inner.length}`);
    const offsets = new Set(toc.entries.filter((e) => e.type === 'reg' && e.offset).map((e) => e.offset));
    assert.ok(offsets.size < 20, 'several files share one member');
    const { dir, cleanup } = tempDir();
    try {
      await buildEstargzImage(join(dir, 'img'), [entries(specs)], { minChunkSize: 4000 });
      await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, async ({ image }) => {
        const view = image.merged();
        for (const s of specs) {
          const node = resolvePath(view, s.name);
          assert.equal((await readAll(image.reader, node, s.name)).toString(), s.body);
        }
      });
    } finally {
      cleanup();
    }
  });

  it('prioritized files come first, then .prefetch.landmark; missing ones are reported', () => {
    const specs = entries([
      { name: 'etc/', type: 'dir' },
      { name: 'etc/hosts', body: 'hosts' },
      { name: 'bin/', type: 'dir' },
      { name: 'bin/sh', body: 'shell' },
      { name: 'bin/ls', type: 'hardlink', link: 'bin/sh' },
      { name: 'usr/lib/x', body: 'no parent entry' },
    ]);
    const parts: Buffer[] = [];
    const r = writeEstargz(specs, (b) => parts.push(b), { prioritized: ['bin/ls', 'nope', 'usr/lib/x'] });
    const names = tocOf(Buffer.concat(parts)).entries.map((e) => e.name);
    assert.deepEqual(names.slice(0, 4), ['bin/', 'bin/sh', 'bin/ls', '.prefetch.landmark']);
    assert.deepEqual(r.missedPrioritized, ['nope', 'usr/lib/x']);
  });

  it('without prioritized files, .no.prefetch.landmark leads', () => {
    const parts: Buffer[] = [];
    writeEstargz(entries([{ name: 'a', body: 'x' }]), (b) => parts.push(b));
    const toc = tocOf(Buffer.concat(parts));
    assert.equal(toc.entries[0]?.name, '.no.prefetch.landmark');
  });

  it('GNU tar reads the blob as an ordinary tar.gz with the same files', () => {
    const { dir, cleanup } = tempDir();
    try {
      const specs = randomTree(42).filter((s) => !/[\n\t\\]/.test(s.name));
      const parts: Buffer[] = [];
      writeEstargz(entries(specs), (b) => parts.push(b), { chunkSize: CHUNK });
      const file = join(dir, 'layer.tar.gz');
      writeFileSync(file, Buffer.concat(parts));
      const listed = execFileSync('tar', ['-tzf', file], { encoding: 'utf8' }).split('\n').filter(Boolean);
      const want = ['.no.prefetch.landmark', ...specs.map((s) => s.name), 'stargz.index.json'];
      assert.deepEqual(listed.sort(), want.sort());
      const reg = specs.find((s) => s.type === undefined && s.link === undefined && Buffer.from(s.body ?? '').length > CHUNK);
      if (reg !== undefined) {
        const out = execFileSync('tar', ['-xzOf', file, reg.name]);
        assert.equal(createHash('sha256').update(out).digest('hex'), createHash('sha256').update(Buffer.from(reg.body ?? '')).digest('hex'));
      }
    } finally {
      cleanup();
    }
  });
});

describe('corrupt chunks', () => {
  it('flipping any byte of a chunk member never yields wrong bytes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const body = bytes(rng(9), 3000);
      const specs = [entry({ name: 'data/file.bin', body }), entry({ name: 'data/next', body: 'next file' })];
      const parts: Buffer[] = [];
      writeEstargz(specs, (b) => parts.push(b), { chunkSize: CHUNK });
      const clean = Buffer.concat(parts);
      const toc = tocOf(clean);
      const first = toc.entries.find((e) => e.name === 'data/file.bin') as { offset: number };
      const nextOffset = toc.entries.find((e) => e.type === 'chunk')?.offset as number;
      let errors = 0;
      let same = 0;
      for (let pos = first.offset; pos < nextOffset; pos++) {
        const img = join(dir, `img-${pos}`);
        await buildEstargzImage(img, [specs], {
          chunkSize: CHUNK,
          transform: (blob) => {
            const b = Buffer.from(blob);
            b[pos] = (b[pos] as number) ^ 0x5a;
            return b;
          },
        });
        // A state root per flip: the chunk cache would otherwise answer with the good bytes.
        await withImage(testConfig(join(dir, `root-${pos}`)), `oci:${img}`, async ({ image }) => {
          const node = resolvePath(image.merged(), 'data/file.bin');
          try {
            const got = await image.reader.read(node, 'data/file.bin', 0, CHUNK);
            assert.ok(got.equals(body.subarray(0, CHUNK)), `byte ${pos}: wrong bytes returned`);
            same++;
          } catch (err) {
            assert.ok(err instanceof StargzfsError, `byte ${pos}: untyped error ${String(err)}`);
            assert.ok(['SGZ_DIGEST_MISMATCH', 'SGZ_DECODE'].includes(err.code), `byte ${pos}: ${err.code}`);
            assert.match(err.message, /data\/file\.bin/);
            errors++;
          }
        });
        rmSync(join(dir, `root-${pos}`), { recursive: true, force: true });
        rmSync(img, { recursive: true, force: true });
      }
      assert.ok(errors > (nextOffset - first.offset) / 2, `most flips must be caught (${errors} errors, ${same} harmless)`);
    } finally {
      cleanup();
    }
  });

  it('a changed chunk behind an intact gzip structure is a digest mismatch naming the file', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const body = Buffer.from('A'.repeat(2000));
      // Stored (level 0) members: the payload is in the blob verbatim.
      await buildEstargzImage(join(dir, 'img'), [[entry({ name: 'etc/motd', body })]], {
        compressionLevel: 0,
        transform: (blob) => {
          // Re-make the member with one content byte changed: its gzip CRC is valid, so
          // only the chunk digest can catch it.
          const f = tocOf(blob).entries.find((e) => e.name === 'etc/motd') as { offset: number };
          const next = tocOf(blob).entries.find((e) => (e.offset ?? 0) > f.offset)?.offset ?? parseFooter(blob.subarray(-51), blob.length)?.tocOffset ?? 0;
          const plain = Buffer.from(gunzipSync(blob.subarray(f.offset, next)));
          plain[100] = 0x42;
          const member = gzipSync(plain, { level: 0 });
          assert.equal(member.length, next - f.offset);
          return Buffer.concat([blob.subarray(0, f.offset), member, blob.subarray(next)]);
        },
      });
      await withImage(testConfig(join(dir, 'root')), `oci:${join(dir, 'img')}`, async ({ image }) => {
        const node = resolvePath(image.merged(), 'etc/motd');
        await assert.rejects(image.reader.read(node, 'etc/motd', 0, 10), (err: StargzfsError) => {
          assert.equal(err.code, 'SGZ_DIGEST_MISMATCH');
          assert.match(err.message, /etc\/motd/);
          assert.match(err.message, /layer sha256:/);
          return true;
        });
      });
    } finally {
      cleanup();
    }
  });
});
