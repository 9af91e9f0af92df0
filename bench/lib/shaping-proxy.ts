// A network profile in front of the real registry: every request waits one round trip
// before it is forwarded, and every response body shares one link of the given
// bandwidth (chunks are released when the link would have delivered them, bodies in turn). Counts
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
 * Bytes read from upstream ahead of the link, per response: what the registry has already
 * sent into the network (a bandwidth-delay product and socket buffers), so the link never
 * idles waiting for this process to ask upstream for more. Bounded: a full pull is 230 MB.
 */
const READ_AHEAD = 4 << 20;

/** A response body on its way through the link. */
interface Flow {
  /** When its upstream answered: the registry is taken to send as fast as the link carries. */
  readonly start: number;
  readonly queue: Buffer[];
  queued: number;
  deliver(chunk: Buffer): void;
}

/**
 * One shared link. Its bodies take turns chunk by chunk (TCP flows on a bottleneck share
 * it about evenly; first come, first served let one large body hold back every reply
 * behind it), and each chunk is written when the link would have delivered it. The
 * schedule does not depend on when this process gets to run: a timer that fires late
 * writes everything due at once, as a link would have delivered it meanwhile, and a
 * chunk read late from upstream (this process or the registry was starved of CPU) is
 * scheduled as if the registry had sent it in time. Pacing chunk by chunk (timer, write,
 * next chunk) lost the lateness of every timer and every read, and delivered 16 MB/s at
 * 200 Mbit/s on a busy machine.
 */
class Link {
  private free = 0;
  private readonly flows: Flow[] = [];
  private turn = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly bytesPerMs: number) {}

  add(flow: Flow): void {
    this.flows.push(flow);
  }

  remove(flow: Flow): void {
    const i = this.flows.indexOf(flow);
    if (i < 0) return;
    this.flows.splice(i, 1);
    if (this.turn > i) this.turn--;
  }

  /** A flow has a new chunk queued. */
  kick(): void {
    if (this.timer === undefined) this.pump();
  }

  private readonly pump = (): void => {
    this.timer = undefined;
    const now = performance.now();
    for (;;) {
      const n = this.flows.length;
      let i = 0;
      while (i < n && (this.flows[(this.turn + i) % n] as Flow).queue.length === 0) i++;
      if (i === n) return;
      const at = (this.turn + i) % n;
      const flow = this.flows[at] as Flow;
      const chunk = flow.queue[0] as Buffer;
      const due = Math.max(this.free, flow.start) + chunk.length / this.bytesPerMs;
      if (due > now) {
        this.timer = setTimeout(this.pump, due - now);
        return;
      }
      this.free = due;
      this.turn = at + 1;
      flow.queue.shift();
      flow.queued -= chunk.length;
      flow.deliver(chunk);
    }
  };
}

export async function startShapingProxy(upstream: string, profile: NetworkProfile): Promise<ShapingProxy> {
  const stats = { requests: 0, blobRequests: 0, blobBytes: 0 };
  const seen: SeenRequest[] = [];
  const bytesPerMs = profile.bitsPerSecond / 8 / 1000;
  const link = new Link(bytesPerMs);
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
        let ended = false;
        const flow: Flow = {
          start: performance.now(),
          queue: [],
          queued: 0,
          deliver: (chunk) => {
            res.write(chunk);
            if (flow.queued <= READ_AHEAD / 2 && ur.isPaused()) ur.resume();
            if (ended && flow.queue.length === 0) finish();
          },
        };
        const finish = (): void => {
          link.remove(flow);
          res.end();
        };
        link.add(flow);
        ur.on('data', (chunk: Buffer) => {
          if (isBlob) stats.blobBytes += chunk.length;
          flow.queue.push(chunk);
          flow.queued += chunk.length;
          if (flow.queued >= READ_AHEAD) ur.pause();
          link.kick();
        });
        ur.on('end', () => {
          ended = true;
          if (flow.queue.length === 0) finish();
        });
        res.on('close', () => {
          // The client went away (a cancelled read): drop what the link had not delivered.
          flow.queue.length = 0;
          link.remove(flow);
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
