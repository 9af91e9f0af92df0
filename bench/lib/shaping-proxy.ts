// A network profile in front of the real registry: every request waits one round trip
// before it is forwarded, and every response body shares one link of the given
// bandwidth (chunks are released when the link would have carried them). Counts
// requests and blob bytes, so a benchmark reports round trips and bytes, not only time.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface NetworkProfile {
  readonly name: string;
  /** Added to every request, milliseconds. */
  readonly rttMs: number;
  /** Link bandwidth, bits per second; 0 = unlimited. */
  readonly bitsPerSecond: number;
}

export interface ShapingProxy {
  readonly host: string;
  readonly stats: { requests: number; blobRequests: number; blobBytes: number };
  reset(): void;
  stop(): Promise<void>;
}

export async function startShapingProxy(upstream: string, profile: NetworkProfile): Promise<ShapingProxy> {
  const stats = { requests: 0, blobRequests: 0, blobBytes: 0 };
  const bytesPerMs = profile.bitsPerSecond / 8 / 1000;
  let linkFree = 0;
  const [upHost, upPort] = upstream.split(':');
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    stats.requests++;
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) stats.blobRequests++;
    setTimeout(() => {
      const up = httpRequest({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        // Writes in order, each when the shared link would have delivered it; the end after the last.
        let last = Promise.resolve();
        ur.on('data', (chunk: Buffer) => {
          if (isBlob) stats.blobBytes += chunk.length;
          if (bytesPerMs <= 0) {
            res.write(chunk);
            return;
          }
          linkFree = Math.max(performance.now(), linkFree) + chunk.length / bytesPerMs;
          const at = linkFree;
          ur.pause();
          last = last
            .then(() => new Promise<void>((resolve) => setTimeout(resolve, Math.max(0, at - performance.now()))))
            .then(() => {
              res.write(chunk);
              ur.resume();
            });
        });
        ur.on('end', () => {
          void last.then(() => res.end());
        });
      });
      up.on('error', () => res.destroy());
      req.pipe(up);
    }, profile.rttMs);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    stats,
    reset: () => {
      stats.requests = 0;
      stats.blobRequests = 0;
      stats.blobBytes = 0;
    },
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
