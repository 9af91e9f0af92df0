// The service's control socket, `<root>/serve.sock`: JSON over HTTP on a Unix socket that
// only root (the service's user) can open.
//   POST   /v1/mounts   {args, cwd}   a `stargzfs mount` command line, parsed as the CLI
//                                      parses it; answers once the tree is visible
//   GET    /v1/mounts                  the mounts
//   GET    /v1/mounts/status?mountpoint=P   one mount's status.json
//   DELETE /v1/mounts?mountpoint=P     unmount (open files finish), once it is gone
//   GET    /v1/status                  the service itself
// A client that asks for text/plain (native/serve_client.c, for the shell launcher) gets the
// launcher's lines instead of JSON: what to show, then `ready`, `exit N` or `use-node`.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { chmodSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../log.js';
import { StargzfsError } from '../errors.js';
import type { MountRequest, Service } from './service.js';

/** The body of POST /v1/mounts. */
export interface MountCommandLine {
  readonly args: readonly string[];
  readonly cwd: string;
}

export interface ControlDeps {
  readonly service: Service;
  readonly log: Logger;
  /** The CLI's parser for a `mount` command line; undefined: not a mount this service can run (the caller runs it itself). */
  parseMount(line: MountCommandLine): MountRequest | undefined;
  /** The CLI's exit code for an error (what `stargzfs mount` exits with). */
  exitCodeFor(err: unknown): number;
  /** More of GET /v1/status. */
  status(): Record<string, unknown>;
}

const MAX_BODY = 1 << 20;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    let n = 0;
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (n > MAX_BODY) {
        reject(new HttpError(413, 'request too large'));
        req.destroy();
        return;
      }
      parts.push(b);
    });
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
    req.on('error', reject);
  });
}

function parseLine(text: string): MountCommandLine {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'the body is not JSON');
  }
  const o = v as { args?: unknown; cwd?: unknown };
  if (!Array.isArray(o.args) || !o.args.every((a) => typeof a === 'string') || typeof o.cwd !== 'string' || !o.cwd.startsWith('/')) {
    throw new HttpError(400, 'expected {"args": [string…], "cwd": "/absolute/dir"}');
  }
  return { args: o.args as string[], cwd: o.cwd };
}

export class ControlServer {
  private constructor(private readonly server: Server, readonly path: string) {}

  /** Listens at `path` (a stale socket file is replaced); mode 0600. */
  static async listen(path: string, deps: ControlDeps): Promise<ControlServer> {
    const log = deps.log.child({ mod: 'control' });
    const server = createServer((req, res) => {
      void handle(req, res, deps, log);
    });
    mkdirSync(dirname(path), { recursive: true });
    rmSync(path, { force: true });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.off('error', reject);
        resolve();
      });
    });
    chmodSync(path, 0o600);
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
    rmSync(this.path, { force: true });
  }
}

async function handle(req: IncomingMessage, res: ServerResponse, deps: ControlDeps, log: Logger): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://serve.sock');
  const plain = (req.headers.accept ?? '').startsWith('text/plain');
  const json = (status: number, body: unknown): void => {
    const data = `${JSON.stringify(body)}\n`;
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) });
    res.end(data);
  };
  const text = (body: string): void => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  };
  try {
    const route = `${req.method ?? 'GET'} ${url.pathname}`;
    switch (route) {
      case 'POST /v1/mounts': {
        const line = parseLine(await readBody(req));
        try {
          const request = deps.parseMount(line);
          if (request === undefined) {
            if (plain) return text('use-node\n');
            throw new HttpError(400, 'not a mount command this service runs');
          }
          const info = await deps.service.mount(request);
          if (plain) return text(`stargzfs: mounted at ${info.mountpoint} (service pid ${process.pid})\nready\n`);
          return json(200, info);
        } catch (err) {
          if (!plain || err instanceof HttpError) throw err;
          const message = err instanceof StargzfsError ? `${err.message} (${err.code})` : (err as Error).message;
          return text(`stargzfs: ${message}\nexit ${deps.exitCodeFor(err)}\n`);
        }
      }
      case 'GET /v1/mounts':
        return json(200, deps.service.list());
      case 'GET /v1/mounts/status':
        return json(200, deps.service.status(requiredMountpoint(url)));
      case 'DELETE /v1/mounts':
        await deps.service.unmount(requiredMountpoint(url));
        return json(200, { unmounted: requiredMountpoint(url) });
      case 'GET /v1/status':
        return json(200, { pid: process.pid, mounts: deps.service.list().length, ...deps.status() });
      default:
        throw new HttpError(404, `no such endpoint: ${route}`);
    }
  } catch (err) {
    if (err instanceof HttpError) return json(err.status, { error: { code: 'SGZ_CONTROL', message: err.message } });
    if (err instanceof StargzfsError) {
      return json(err.code === 'SGZ_NOT_FOUND' ? 404 : 422, { error: { code: err.code, message: err.message, exit: deps.exitCodeFor(err) } });
    }
    log.error({ err }, 'control request failed');
    return json(500, { error: { code: 'SGZ_INTERNAL', message: (err as Error).message } });
  }
}

function requiredMountpoint(url: URL): string {
  const m = url.searchParams.get('mountpoint');
  if (m === null || !m.startsWith('/')) throw new HttpError(400, 'give ?mountpoint=/absolute/path');
  return m;
}
