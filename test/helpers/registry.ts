// Debian's docker-registry (the CNCF distribution server) on a free loopback port with
// temporary storage, started and stopped by the test that needs it. Killed by PID only.
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { get as httpGet } from 'node:http';
import { get as httpsGet } from 'node:https';
import { join } from 'node:path';
import { tempDir } from './tmp.js';

export interface TestRegistry {
  /** host:port, e.g. 127.0.0.1:38123 */
  readonly host: string;
  readonly url: string;
  stop(): Promise<void>;
}

export interface RegistryOptions {
  /** htpasswd file contents (bcrypt entries) for Basic auth. */
  htpasswd?: string;
  /** Extra YAML appended to the config (auth: token …, proxy: …). */
  extraConfig?: string;
  /** Serve TLS with this certificate and key (PEM files). */
  tls?: { cert: string; key: string };
  /** Listen on [::1] instead of 127.0.0.1. */
  ipv6?: boolean;
}

export async function freePort(address = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, address, () => {
      const addr = s.address();
      s.close(() => resolve(typeof addr === 'object' && addr !== null ? addr.port : 0));
    });
  });
}

export async function startRegistry(opts: RegistryOptions = {}): Promise<TestRegistry> {
  const { dir, cleanup } = tempDir('stargzfs-registry-');
  const port = await freePort(opts.ipv6 ? '::1' : '127.0.0.1');
  const host = opts.ipv6 ? `[::1]:${port}` : `127.0.0.1:${port}`;
  let auth = '';
  if (opts.htpasswd !== undefined) {
    writeFileSync(join(dir, 'htpasswd'), opts.htpasswd);
    auth = `auth:\n  htpasswd:\n    realm: test-realm\n    path: ${join(dir, 'htpasswd')}\n`;
  }
  const config = [
    'version: 0.1',
    'log:',
    '  level: error',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${join(dir, 'data')}`,
    '  delete:',
    '    enabled: true',
    'http:',
    `  addr: "${host}"`,
    ...(opts.tls ? ['  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`] : []),
    auth,
    opts.extraConfig ?? '',
  ].join('\n');
  writeFileSync(join(dir, 'config.yml'), config);
  const child: ChildProcess = spawn('docker-registry', ['serve', join(dir, 'config.yml')], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
    cleanup();
  };
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (child.exitCode !== null) {
      cleanup();
      throw new Error(`docker-registry exited at start: ${stderr}`);
    }
    if (await answers(host, opts.tls !== undefined)) break;
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`docker-registry did not come up on ${host}: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host, url: `${opts.tls ? 'https' : 'http'}://${host}`, stop };
}

/** Whether /v2/ answers (200 or 401) yet; a self-signed certificate is fine here. */
function answers(host: string, tls: boolean): Promise<boolean> {
  return new Promise((resolve) => {
    const i = host.lastIndexOf(':');
    const hostname = host.slice(0, i).replace(/^\[|\]$/g, '');
    const req = (tls ? httpsGet : httpGet)({ hostname, port: Number(host.slice(i + 1)), path: '/v2/', rejectUnauthorized: false }, (res) => {
      res.resume();
      resolve(res.statusCode === 200 || res.statusCode === 401);
    });
    req.on('error', () => resolve(false));
  });
}
