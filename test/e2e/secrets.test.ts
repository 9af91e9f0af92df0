// Secrets (issue 22): a mount of a private image behind token auth, logging at trace level
// with metrics on, leaves its password, its Basic credentials and every token it was given
// out of everything it writes or shows: the log file, status.json and `stargzfs status`,
// the metrics, its process title and command line, meta.db and every file under the state
// root. Tokens are scoped to one repository: a request to another repository never carries
// the first one's token.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, mkdirSync, writeFileSync, existsSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { freePort, type TestRegistry } from '../helpers/registry.js';
import type { TokenServer } from '../helpers/token-server.js';
import { startTokenRegistry, type TokenRegistry } from '../helpers/token-registry.js';
import { forceUnmount } from '../helpers/mount.js';
import { tempDir } from '../helpers/tmp.js';

/** Every file under dir, recursively, as bytes. */
function* filesUnder(dir: string): Generator<[string, Buffer]> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) yield [join(e.parentPath, e.name), readFileSync(join(e.parentPath, e.name))];
  }
}

/** A proxy to the registry that records each request's path and Authorization header. */
async function recordingProxy(upstream: string): Promise<{ host: string; seen: Array<{ path: string; auth: string }>; server: Server }> {
  const seen: Array<{ path: string; auth: string }> = [];
  const [hostname, port] = upstream.split(':') as [string, string];
  const server = createServer((req, res) => {
    seen.push({ path: req.url ?? '', auth: req.headers.authorization ?? '' });
    const up = httpRequest({ hostname, port: Number(port), path: req.url, method: req.method, headers: { ...req.headers, host: upstream } }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, ur.headers);
      ur.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return { host: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, server };
}

describe('secrets', () => {
  let served: TokenRegistry;
  let reg: TestRegistry;
  let tokens: TokenServer;
  let dir: string;
  let cleanup: () => void;
  let conf: string;
  const password = 'b0b-s3cret-pass';
  before(async () => {
    ({ dir, cleanup } = tempDir());
    served = await startTokenRegistry(dir, 'bob', password, ['private/one', 'private/two']);
    ({ reg, tokens, conf } = served);
  });
  after(async () => {
    await served?.stop();
    cleanup?.();
  });

  it('a traced mount with metrics keeps the password, the Basic credentials and every token out of all it writes and shows', async () => {
    tokens.tokens.length = 0;
    const root = join(dir, 'root');
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    const port = await freePort();
    const env = { ...process.env, DOCKER_CONFIG: conf };
    const m = await runCli(['mount', '--daemon', '--root', root, '--log-level', 'trace', '--metrics', `127.0.0.1:${port}`, `${reg.host}/private/one:latest`, mnt], { env });
    assert.equal(m.code, 0, m.stderr);
    let pid: number | undefined;
    try {
      const status = readFileSync(join(mnt, '.stargzfs', 'status.json'), 'utf8');
      pid = (JSON.parse(status) as { pid: number }).pid;
      assert.equal(readFileSync(join(mnt, 'files', 'size-4097')).length, 4097);
      assert.equal(readFileSync(join(mnt, 'files', 'size-1')).length, 1);
      const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const statusCli = await runCli(['status', '--json', mnt]);
      const shown: Array<[string, Buffer]> = [
        ['mount output', Buffer.from(m.stderr + m.stdout.toString())],
        ['status.json', Buffer.from(status)],
        ['stargzfs status', Buffer.concat([statusCli.stdout, Buffer.from(statusCli.stderr)])],
        ['metrics', Buffer.from(metrics)],
        ['process title', readFileSync(`/proc/${pid}/cmdline`)],
        ['process comm', readFileSync(`/proc/${pid}/comm`)],
      ];
      assert.ok(tokens.tokens.length > 0, 'the mount was given a token');
      const secrets = [password, Buffer.from(`bob:${password}`).toString('base64'), ...tokens.tokens.map((t) => t.token), ...tokens.tokens.map((t) => t.token.split('.')[2] as string)];
      const u = await runCli(['unmount', mnt]);
      assert.equal(u.code, 0, u.stderr);
      pid = undefined;
      // Once the server is gone, everything it left under the root: logs, meta.db (and WAL), chunks.
      const files = [...filesUnder(root)];
      assert.ok(files.some(([p]) => p.includes('/logs/')), 'the daemon wrote a log');
      assert.ok(files.some(([p]) => p.endsWith('meta.db')));
      const traced = files.filter(([p]) => p.includes('/logs/')).map(([, b]) => b.toString()).join('');
      assert.match(traced, /"level":10/, 'the log has trace lines');
      for (const [where, bytes] of [...shown, ...files]) {
        for (const s of secrets) assert.ok(!bytes.includes(s), `${where} holds a secret (${s.slice(0, 6)}…)`);
      }
    } finally {
      if (pid !== undefined) forceUnmount(mnt, pid);
    }
  });

  it('tokens are scoped per repository: a request to one repository never carries the token of another', async () => {
    const proxy = await recordingProxy(reg.host);
    try {
      const env = { ...process.env, DOCKER_CONFIG: join(dir, 'proxied') };
      mkdirSync(join(dir, 'proxied'), { recursive: true });
      writeFileSync(join(dir, 'proxied', 'config.json'), JSON.stringify({ auths: { [proxy.host]: { username: 'bob', password } } }));
      tokens.tokens.length = 0;
      for (const repo of ['private/one', 'private/two']) {
        const r = await runCli(['--root', join(dir, 'root-scoped'), 'cat', `${proxy.host}/${repo}:latest`, '/files/size-1'], { env });
        assert.equal(r.code, 0, r.stderr);
      }
      const byScope = new Map(tokens.tokens.map((t) => [t.token, t.scope]));
      const carried = proxy.seen.filter((s) => s.auth.startsWith('Bearer '));
      assert.ok(carried.length > 0);
      for (const s of carried) {
        const scope = byScope.get(s.auth.slice(7));
        assert.ok(scope !== undefined, 'a token the token server issued');
        const repo = /^\/v2\/(.+?)\/(manifests|blobs)\//.exec(s.path)?.[1];
        assert.equal(scope, `repository:${repo}:pull`, `${s.path} carried the token of ${scope}`);
      }
      assert.ok(proxy.seen.every((s) => !s.auth.startsWith('Basic ')), 'Basic credentials go to the token server only');
    } finally {
      await new Promise<void>((r) => {
        proxy.server.closeAllConnections();
        proxy.server.close(() => r());
      });
    }
  });
});
