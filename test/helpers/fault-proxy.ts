// A small HTTP proxy in front of the real registry, for what the registry cannot do by
// itself: count requests and bytes, and inject faults (Range ignored, 5xx/429 with
// Retry-After, connection resets, truncated and stalled bodies, flipped bytes) for the
// next N matching requests, or for each with a given probability.
import { createServer, request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type Fault =
  | { kind: 'status'; status: number; retryAfter?: string }
  | { kind: 'ignore-range' }
  | { kind: 'reset-mid-body' }
  | { kind: 'truncate' }
  | { kind: 'redirect'; location: (path: string) => string }
  | { kind: 'overlong'; extra: number }
  | { kind: 'trickle'; bytesPerTick: number; tickMs: number }
  /** The first `afterBytes` of the body, then nothing more until `until` settles. */
  | { kind: 'hold'; afterBytes: number; until: Promise<void> }
  /** The first `afterBytes` of the body, then nothing, for as long as the client waits. */
  | { kind: 'stall'; afterBytes: number }
  /** One byte flipped in the middle of the body. */
  | { kind: 'corrupt' };

export interface ProxyStats {
  requests: number;
  /** Faults actually injected. */
  faults: number;
  /** TCP connections accepted (also while down). */
  connections: number;
  /** Response body bytes sent to clients for blob GETs. */
  blobBytes: number;
  ranges: string[];
  /** Each ranged blob GET: its Range, when it came in and when its answer ended (performance.now()). */
  blobLog: Array<{ range: string; start: number; end: number }>;
  /** Blob GETs without a Range header (a whole blob asked for). */
  wholeBlobGets: number;
  /** Blob GETs answered 200 whose whole body was sent (a whole blob transferred). */
  wholeBlobBodies: number;
}

export interface FaultProxy {
  readonly host: string;
  readonly stats: ProxyStats;
  /**
   * `times` requests whose path matches get `fault`, after `skip` matching ones pass;
   * `rangedOnly` counts only requests with a Range header (blob reads, not config GETs).
   */
  inject(fault: Fault, times: number, match?: RegExp, opts?: InjectOptions): void;
  reset(): void;
  /** While down, every connection is dropped at once (a stopped host). */
  setDown(down: boolean): void;
  stop(): Promise<void>;
}

export interface InjectOptions {
  /** Matching requests let through before the fault applies. */
  skip?: number;
  /** Only requests with a Range header match. */
  rangedOnly?: boolean;
  /** Only requests whose Range header matches. */
  range?: RegExp;
  /** Each matching request is faulted with this probability (default 1); only faulted ones count against `times`. */
  probability?: number;
}

export async function startFaultProxy(upstream: string): Promise<FaultProxy> {
  const stats: ProxyStats = { requests: 0, faults: 0, connections: 0, blobBytes: 0, ranges: [], blobLog: [], wholeBlobGets: 0, wholeBlobBodies: 0 };
  const faults: Array<{ fault: Fault; left: number; skip: number; rangedOnly: boolean; range: RegExp | undefined; match: RegExp; probability: number }> = [];
  const take = (path: string, range: string | undefined): Fault | undefined => {
    const f = faults.find(
      (x) => x.left > 0 && x.match.test(path) && (range !== undefined || !x.rangedOnly) && (x.range === undefined || x.range.test(range ?? '')),
    );
    if (f === undefined) return undefined;
    if (f.skip > 0) {
      f.skip--;
      return undefined;
    }
    if (f.probability < 1 && Math.random() >= f.probability) return undefined;
    f.left--;
    stats.faults++;
    return f.fault;
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    stats.requests++;
    const path = req.url ?? '/';
    const isBlob = /\/blobs\/sha256:/.test(path) && req.method === 'GET';
    const fault = take(path, typeof req.headers.range === 'string' ? req.headers.range : undefined);
    if (fault?.kind === 'status') {
      res.writeHead(fault.status, fault.retryAfter !== undefined ? { 'retry-after': fault.retryAfter } : {});
      res.end('{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}');
      return;
    }
    if (fault?.kind === 'redirect') {
      res.writeHead(307, { location: fault.location(path) });
      res.end();
      return;
    }
    const headers = { ...req.headers, host: upstream };
    if (fault?.kind === 'ignore-range') delete headers.range;
    if (isBlob && typeof req.headers.range === 'string') {
      stats.ranges.push(req.headers.range);
      const entry = { range: req.headers.range, start: performance.now(), end: Infinity };
      stats.blobLog.push(entry);
      res.on('close', () => { entry.end = performance.now(); });
    }
    if (isBlob && req.headers.range === undefined) stats.wholeBlobGets++;
    const up = httpRequest({ host: upstream.split(':')[0], port: Number(upstream.split(':')[1]), method: req.method, path, headers }, (ur) => {
      const h = { ...ur.headers };
      if (fault?.kind === 'overlong' && h['content-length'] !== undefined) {
        h['content-length'] = String(Number(h['content-length']) + fault.extra);
      }
      if (typeof h.location === 'string') h.location = h.location.replace(`http://${upstream}`, '');
      res.writeHead(ur.statusCode ?? 502, h);
      let sent = 0;
      let held = false;
      /** Settles when the chunk being dribbled out (trickle) is all written. */
      let dribbled = Promise.resolve();
      const total = Number(ur.headers['content-length'] ?? 0);
      ur.on('data', (input: Buffer) => {
        let chunk = input;
        if (fault?.kind === 'stall' && sent + chunk.length > fault.afterBytes) {
          // Send what comes before the stall, then hold the connection open and silent.
          if (sent < fault.afterBytes) res.write(chunk.subarray(0, fault.afterBytes - sent));
          sent = fault.afterBytes;
          ur.pause();
          return;
        }
        if (fault?.kind === 'hold' && !held && sent + chunk.length > fault.afterBytes) {
          held = true;
          const cut = fault.afterBytes - sent;
          res.write(chunk.subarray(0, cut));
          ur.pause();
          void fault.until.finally(() => {
            res.write(chunk.subarray(cut));
            ur.resume();
          });
          sent += chunk.length;
          if (isBlob) stats.blobBytes += chunk.length;
          return;
        }
        if (fault?.kind === 'reset-mid-body' && sent + chunk.length > total / 2) {
          res.socket?.destroy();
          ur.destroy();
          return;
        }
        if (fault?.kind === 'truncate' && sent + chunk.length >= total) {
          const cut = chunk.subarray(0, Math.max(0, total - sent - 1));
          res.write(cut);
          sent += cut.length;
          if (isBlob) stats.blobBytes += cut.length;
          res.socket?.end();
          ur.destroy();
          return;
        }
        if (fault?.kind === 'trickle') {
          // Hold the upstream and dribble the chunk out.
          ur.pause();
          let at = 0;
          let done!: () => void;
          dribbled = new Promise((r) => (done = r));
          const tick = setInterval(() => {
            if (res.destroyed) {
              clearInterval(tick);
              ur.destroy();
              return;
            }
            const piece = chunk.subarray(at, at + fault.bytesPerTick);
            at += piece.length;
            res.write(piece);
            if (at >= chunk.length) {
              clearInterval(tick);
              done();
              ur.resume();
            }
          }, fault.tickMs);
          sent += chunk.length;
          return;
        }
        if (fault?.kind === 'corrupt' && sent <= total / 2 && sent + chunk.length > total / 2) {
          const bad = Buffer.from(chunk);
          const at = Math.floor(total / 2) - sent;
          bad[at] = (bad[at] as number) ^ 0xff;
          chunk = bad;
        }
        sent += chunk.length;
        if (isBlob) stats.blobBytes += chunk.length;
        // Read upstream only as fast as the client takes it, as a registry sends.
        if (!res.write(chunk)) {
          ur.pause();
          res.once('drain', () => ur.resume());
        }
      });
      // The upstream may end while its last chunk is still being dribbled out.
      ur.on('end', () => void dribbled.then(() => {
        if (isBlob && ur.statusCode === 200 && !res.destroyed) res.once('finish', () => stats.wholeBlobBodies++);
        res.end(fault?.kind === 'overlong' ? Buffer.alloc(fault.extra, 0x41) : undefined);
      }));
      // A client that hangs up stops the transfer, as at a registry: what was sent is what was counted.
      res.on('close', () => {
        if (!res.writableFinished) ur.destroy();
      });
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  let down = false;
  server.on('connection', (socket) => {
    stats.connections++;
    if (down) socket.destroy();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const port = (server.address() as AddressInfo).port;
  return {
    host: `127.0.0.1:${port}`,
    stats,
    inject: (fault, times, match = /./, opts = {}) =>
      faults.push({ fault, left: times, match, skip: opts.skip ?? 0, rangedOnly: opts.rangedOnly ?? false, range: opts.range, probability: opts.probability ?? 1 }),
    setDown: (d) => {
      down = d;
      if (d) server.closeAllConnections();
    },
    reset: () => {
      stats.requests = 0;
      stats.faults = 0;
      stats.connections = 0;
      stats.blobBytes = 0;
      stats.ranges = [];
      stats.blobLog = [];
      stats.wholeBlobGets = 0;
      stats.wholeBlobBodies = 0;
      faults.length = 0;
    },
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
