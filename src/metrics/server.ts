// The /metrics endpoint: HTTP on HOST:PORT (loopback unless a host is named) or on a
// unix socket (unix:PATH or an absolute PATH), for Prometheus to scrape.
import { createServer, type Server } from 'node:http';
import { rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { ConfigError } from '../errors.js';
import type { Logger } from '../log.js';

export interface MetricsEndpoint {
  /** host:port or the socket path actually listened on. */
  readonly address: string;
  close(): Promise<void>;
}

export interface MetricsText {
  text(): Promise<string>;
  readonly contentType: string;
}

export function parseListen(spec: string): { path: string } | { host: string; port: number } {
  if (spec.startsWith('unix:')) return { path: spec.slice(5) };
  if (spec.startsWith('/')) return { path: spec };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(spec);
  if (m === null) throw new ConfigError('metrics', `expected HOST:PORT, :PORT or unix:PATH, got ${JSON.stringify(spec)}`);
  const port = Number(m[3]);
  if (port > 65535) throw new ConfigError('metrics', `port out of range: ${port}`);
  return { host: m[1] ?? (m[2] === '' ? '127.0.0.1' : (m[2] as string)), port };
}

export async function serveMetrics(spec: string, metrics: MetricsText, log: Logger): Promise<MetricsEndpoint> {
  const where = parseListen(spec);
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    metrics.text().then(
      (body) => res.writeHead(200, { 'content-type': metrics.contentType }).end(body),
      (err: unknown) => {
        log.warn({ err }, 'metrics collection failed');
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics collection failed: ${(err as Error).message}\n`);
      },
    );
  });
  // A socket file left by a server that died would refuse the bind.
  if ('path' in where) await rm(where.path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new ConfigError('metrics', `cannot listen on ${spec}: ${err.message}`)));
    if ('path' in where) server.listen(where.path, resolve);
    else server.listen(where.port, where.host, resolve);
  });
  server.unref();
  const a = server.address();
  const address = typeof a === 'string' ? a : `${(a as AddressInfo).address}:${(a as AddressInfo).port}`;
  log.info({ address }, 'metrics endpoint listening');
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        if ('path' in where) void rm(where.path, { force: true });
      }),
  };
}
