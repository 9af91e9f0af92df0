// Builds the demo image (two eStargz layers) into an OCI layout with stargzfs's own
// writer: `node dist/scripts/make-demo-image.js DIR`. Prints the expected sha256 of
// /usr/share/doc/demo/big.txt so the demo can check `cat` against it.
import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { buildEstargzImage } from '../src/layer/build-image.js';
import { emptyHeader, type TarEntry, type TarType } from '../src/toc/tar.js';

const dir = process.argv[2];
if (dir === undefined) {
  process.stderr.write('usage: make-demo-image DIR\n');
  process.exit(2);
}

const mtime = 1767225600; // 2026-01-01
function e(name: string, type: TarType, body: string | Buffer = '', extra: Partial<TarEntry['header']> = {}): TarEntry {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  return { header: { ...emptyHeader(name, type), mtime, size: type === 'reg' ? b.length : 0, ...extra }, body: type === 'reg' ? b : Buffer.alloc(0) };
}

// 10 MiB of text: three 4 MiB chunks, so cat has to fetch and verify several members.
const lines: string[] = [];
for (let i = 0; lines.length * 40 < 10 << 20; i++) lines.push(`line ${String(i).padStart(8, '0')} of the demo text file....\n`);
const big = Buffer.from(lines.join(''));

const base: TarEntry[] = [
  e('./', 'dir'),
  e('etc/', 'dir'),
  e('etc/os-release', 'reg', 'NAME="stargzfs demo"\nID=demo\nVERSION_ID=1\n'),
  e('etc/motd', 'reg', 'Welcome to the base layer.\n'),
  e('bin/', 'dir'),
  e('bin/hello', 'reg', '#!/bin/sh\necho "hello from a lazily read image"\n', { mode: 0o755 }),
  e('bin/hi', 'hardlink', '', { linkName: 'bin/hello', mode: 0o755 }),
  e('bin/sh', 'symlink', '', { linkName: '/bin/busybox', mode: 0o777 }),
  e('usr/', 'dir'),
  e('usr/share/', 'dir'),
  e('usr/share/doc/', 'dir'),
  e('usr/share/doc/demo/', 'dir'),
  e('usr/share/doc/demo/big.txt', 'reg', big),
  e('usr/share/doc/demo/old.txt', 'reg', 'removed by the upper layer\n'),
  e('var/cache/app/', 'dir'),
  e('var/cache/app/stale', 'reg', 'hidden by an opaque directory above\n'),
  e('dev/null', 'char', '', { devMajor: 1, devMinor: 3, mode: 0o666 }),
  e('opt/tool', 'reg', 'x', { mode: 0o4755, xattrs: new Map([['security.capability', Buffer.from('0100000200040000000000000000000000000000', 'hex')]]) }),
];
const upper: TarEntry[] = [
  e('etc/', 'dir'),
  e('etc/motd', 'reg', 'Welcome to the upper layer: this file replaced the base one.\n'),
  e('usr/share/doc/demo/', 'dir'),
  e('usr/share/doc/demo/.wh.old.txt', 'reg'),
  e('var/cache/app/', 'dir'),
  e('var/cache/app/.wh..wh..opq', 'reg'),
  e('var/cache/app/fresh', 'reg', 'only this remains\n'),
];

rmSync(dir, { recursive: true, force: true });
const built = await buildEstargzImage(dir, [base, upper], { refName: 'demo', prioritized: ['etc/os-release', 'bin/hello'] });
process.stdout.write(
  `${JSON.stringify({
    manifest: built.manifest.digest,
    bigSha256: createHash('sha256').update(big).digest('hex'),
    layers: built.layers.map((l) => ({ blob: l.blobDigest, size: l.blobSize, toc: l.tocDigest })),
  })}\n`,
);
