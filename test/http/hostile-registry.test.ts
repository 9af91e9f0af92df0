// A registry that answers with more than a manifest may be: no real registry serves a
// manifest over 4 MiB (docker-registry refuses to store one), so a small server plays the
// hostile one. The answer is refused as it arrives, by its Content-Length or, without one,
// by the bytes counted, never held whole: exit 4, SGZ_IMAGE, the limit named.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../helpers/tmp.js';

async function hostile(chunked: boolean): Promise<{ host: string; server: Server; sent: () => number }> {
  let sent = 0;
  const server = createServer((req, res) => {
    if (req.url === '/v2/') {
      res.writeHead(200).end('{}');
      return;
    }
    const piece = Buffer.alloc(1 << 20, 0x20);
    const total = 64;
    res.writeHead(200, { 'content-type': 'application/vnd.oci.image.manifest.v1+json', ...(chunked ? {} : { 'content-length': String(total * piece.length) }) });
    let n = 0;
    const more = (): void => {
      while (n < total) {
        n++;
        sent += piece.length;
        if (!res.write(piece)) return void res.once('drain', more);
      }
      res.end();
    };
    res.on('error', () => undefined);
    more();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, server, sent: () => sent };
}

describe('a hostile registry', () => {
  for (const chunked of [false, true]) {
    it(`a 64 MiB manifest (${chunked ? 'chunked, no length' : 'with its Content-Length'}) is refused, not held: exit 4`, async () => {
      const { dir, cleanup } = tempDir();
      const h = await hostile(chunked);
      try {
        const r = await runCli(['ls', '--root', join(dir, 'root'), '--retries', '0', `${h.host}/x/y:latest`]);
        assert.equal(r.code, 4, r.stderr);
        assert.match(r.stderr, /larger than 4194304 bytes.*SGZ_IMAGE/);
        if (chunked) assert.ok(h.sent() < 32 << 20, `the body was not read to its end (${h.sent()} bytes sent)`);
      } finally {
        h.server.closeAllConnections();
        await new Promise<void>((r) => h.server.close(() => r()));
        cleanup();
      }
    });
  }
});
