// A network profile in front of the real registry: every request waits one round trip
// before it is forwarded, and every response body shares one link of the given
// bandwidth (chunks are released when the link would have delivered them). Counts
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

/** One request as the proxy saw it, in performance.now() milliseconds of the proxy's process. */
export interface SeenRequest {
  readonly path: string;
  readonly range: string | undefined;
  /** When the request reached the proxy (a round trip before it is forwarded). */
  readonly arrived: number;
  /** When the body's last byte was delivered to the client. */
  ended?: number;
}

export interface ShapingProxy {
  readonly host: string;
  readonly stats: { requests: number; blobRequests: number; blobBytes: number };
  /** Every request since the last reset, in order of arrival. */
  readonly seen: SeenRequest[];
  reset(): void;
  stop(): Promise<void>;
}

/**
 * Bytes read from upstream ahead of the link: what the registry has already sent into
 * the network (a bandwidth-delay product and socket buffers), so the link never idles
 * waiting for this process to ask upstream for more. Bounded: a full pull is 230 MB.
 */
const READ_AHEAD = 4 << 20;

export async function startShapingProxy(upstream: string, profile: NetworkProfile): Promise<ShapingProxy> {
  const stats = { requests: 0, blobRequests: 0, blobBytes: 0 };
  const seen: SeenRequest[] = [];
  const bytesPerMs = profile.bitsPerSecond / 8 / 1000;
  let linkFree = 0;
  const [upHost, upPort] = upstream.split(':');
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    stats.requests++;
    const record: SeenRequest = { path: req.url ?? '', range: req.headers.range, arrived: performance.now() };
    seen.push(record);
    res.on('finish', () => (record.ended = performance.now()));
    const isBlob = req.method === 'GET' && /\/blobs\/sha256:/.test(req.url ?? '');
    if (isBlob) stats.blobRequests++;
    setTimeout(() => {
      const up = httpRequest({ host: upHost, port: Number(upPort), method: req.method, path: req.url, headers: { ...req.headers, host: upstream } }, (ur) => {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        if (bytesPerMs <= 0) {
          ur.on('data', (chunk: Buffer) => {
            if (isBlob) stats.blobBytes += chunk.length;
          });
          ur.pipe(res);
          return;
        }
        // Each chunk is given the time the shared link would deliver it, and written then.
        // The schedule does not depend on when this process gets to run: a timer that
        // fires late writes everything due at once, as a link would have delivered it
        // meanwhile, and a chunk read late from upstream (this process or the registry
        // was starved of CPU) is scheduled as if the registry had sent it as fast as the
        // link carries it from the body's start. Pacing chunk by chunk (timer, write,
        // next chunk) lost the lateness of every timer and every read, and delivered
        // 16 MB/s at 200 Mbit/s on a busy machine.
        const start = performance.now();
        const queue: Array<{ at: number; chunk: Buffer }> = [];
        let queued = 0;
        let ended = false;
        let timer: NodeJS.Timeout | undefined;
        const pump = (): void => {
          timer = undefined;
          const now = performance.now();
          while (queue.length > 0 && (queue[0] as { at: number }).at <= now) {
            const q = queue.shift() as { at: number; chunk: Buffer };
            queued -= q.chunk.length;
            res.write(q.chunk);
          }
          if (queued <= READ_AHEAD / 2 && ur.isPaused()) ur.resume();
          const next = queue[0];
          if (next !== undefined) timer = setTimeout(pump, Math.max(0, next.at - now));
          else if (ended) res.end();
        };
        ur.on('data', (chunk: Buffer) => {
          if (isBlob) stats.blobBytes += chunk.length;
          linkFree = Math.max(start, linkFree) + chunk.length / bytesPerMs;
          queue.push({ at: linkFree, chunk });
          queued += chunk.length;
          if (queued >= READ_AHEAD) ur.pause();
          timer ??= setTimeout(pump, Math.max(0, (queue[0] as { at: number }).at - performance.now()));
        });
        ur.on('end', () => {
          ended = true;
          if (timer === undefined && queue.length === 0) res.end();
        });
        res.on('close', () => {
          // The client went away (a cancelled read): drop what the link had not delivered.
          if (timer !== undefined) clearTimeout(timer);
          timer = undefined;
          queue.length = 0;
          ur.destroy();
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
    seen,
    reset: () => {
      seen.length = 0;
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
