// What a spare (src/cli/spare.ts) does before it listens, so that the mount it will serve
// does not: load the native addons, and run the TOC importer once over a made-up TOC in
// a database in memory. A cold mount spends 0.14–0.19 s indexing a 6,700-entry TOC of
// which some 0.06–0.1 s is V8 compiling and optimising the importer as it goes; a
// second import in the same process takes 83 ms. And one round of the early fetch's
// requests to a server of its own: the claim's first request ran node:http's client
// cold, 4–6 ms from the claim to the wire.
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { importTocStream, type ImportInput } from '../toc/importer.js';
import { preloadAddon } from '../fs/fuse-binding.js';
import { earlyBody, sendEarly, sendEarlyParts, takeEarly } from '../http/early-responses.js';
import { byteRange } from '../http/api-paths.js';

const FILES = 4000;
const DIRS = 40;
const PASSES = 12;

/** A TOC of `files` regular files (one chunk each) in `dirs` directories, with symlinks, as JSON in 64 KiB pieces. */
export function madeUpToc(files: number, dirs: number): { json: Buffer[]; dataEnd: number } {
  const hex = (n: number): string => n.toString(16).padStart(64, '0');
  const modtime = '2024-01-01T00:00:00Z';
  const entries: object[] = [];
  let offset = 0;
  for (let d = 0; d < dirs; d++) {
    entries.push({ name: `usr/lib/d${d}/`, type: 'dir', mode: 0o755, modtime });
  }
  for (let f = 0; f < files; f++) {
    const name = `usr/lib/d${f % dirs}/file-${f}.py`;
    const size = 100 + (f % 900);
    entries.push({ name, type: 'reg', size, mode: 0o644, modtime, offset, digest: `sha256:${hex(f)}`, chunkDigest: `sha256:${hex(f)}` });
    offset += 200 + (f % 700);
    if (f % 50 === 0) entries.push({ name: `usr/bin/link-${f}`, type: 'symlink', linkName: `../lib/d${f % dirs}/file-${f}.py`, mode: 0o777, modtime });
  }
  const whole = Buffer.from(JSON.stringify({ version: 1, entries }));
  const json: Buffer[] = [];
  for (let at = 0; at < whole.length; at += 65536) json.push(whole.subarray(at, at + 65536));
  return { json, dataEnd: offset };
}

/** A manifest request, then a two-part range request, as a mount's early fetch sends them, answered by a loopback server. */
async function warmEarlyRequests(): Promise<void> {
  const server = createServer((req, res) => {
    if (req.headers.range === undefined) {
      res.end('{}');
      return;
    }
    res.writeHead(206, { 'content-type': 'multipart/byteranges; boundary=W' });
    res.end('--W\r\nContent-Range: bytes 1-1/2\r\n\r\nb\r\n--W\r\nContent-Range: bytes 0-0/2\r\n\r\na\r\n--W--\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const manifest = new URL('/v2/warm/manifests/w', origin);
    const m = await sendEarly(manifest, { accept: 'application/json' });
    await takeEarly(manifest.href, undefined);
    if (m !== undefined) await earlyBody(m);
    const blob = new URL('/v2/warm/blobs/w', origin);
    const extents = [{ offset: 1, length: 1 }, { offset: 0, length: 1 }];
    await sendEarlyParts(blob, extents, () => Promise.resolve(undefined));
    for (const e of extents) {
      const part = await takeEarly(blob.href, byteRange(e.offset, e.length));
      if (part !== undefined) await earlyBody(part);
    }
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

export async function warm(): Promise<void> {
  preloadAddon();
  await warmEarlyRequests().catch(() => undefined);
  const { json, dataEnd } = madeUpToc(FILES, DIRS);
  const input: ImportInput = {
    digest: `sha256:${'0'.repeat(64)}`,
    tocCompressedDigest: undefined,
    verified: false,
    format: 'estargz',
    compression: 'gzip',
    blobSize: dataEnd + 1024,
    footerSize: 51,
    tocOffset: dataEnd,
    tocCompressedSize: 1024 - 51,
    dataEnd,
  };
  // Twice: V8 optimises what ran hot in the first pass.
  for (let i = 0; i < PASSES; i++) {
    await importTocStream(':memory:', input, (async function* () {
      yield* json;
    })(), undefined);
  }
}
