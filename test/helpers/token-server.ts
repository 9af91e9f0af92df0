// A token server for docker-registry's `auth: token` mode: real RS256 JWTs signed with a
// key whose self-signed certificate the registry trusts (rootcertbundle), carried in the
// x5c header. Grants `pull` on public/* to anyone and everything to known users.
import { execFileSync } from 'node:child_process';
import { createPrivateKey, randomUUID, sign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';

export interface TokenServer {
  readonly realm: string;
  readonly certFile: string;
  /** Token requests served, with the user (or "anonymous") and scope asked for. */
  readonly issued: Array<{ user: string; scope: string }>;
  /** Every token handed out, with its scope (tests look for them where they must not be). */
  readonly tokens: Array<{ scope: string; token: string }>;
  registryConfig(service: string): string;
  stop(): Promise<void>;
}

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

export async function startTokenServer(dir: string, users: Record<string, string>, expiresIn = 300): Promise<TokenServer> {
  const keyFile = join(dir, 'token.key');
  const certFile = join(dir, 'token.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '1', '-subj', '/CN=stargzfs-test-token'], { stdio: 'ignore' });
  const key = createPrivateKey(readFileSync(keyFile));
  const der = Buffer.from(readFileSync(certFile, 'utf8').replace(/-----[^-]+-----|\s/g, ''), 'base64');
  const issued: Array<{ user: string; scope: string }> = [];
  const tokens: Array<{ scope: string; token: string }> = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const scope = url.searchParams.get('scope') ?? '';
    const service = url.searchParams.get('service') ?? '';
    let user = 'anonymous';
    const auth = req.headers.authorization;
    if (auth?.startsWith('Basic ')) {
      const [u, p] = Buffer.from(auth.slice(6), 'base64').toString().split(':');
      if (u === undefined || users[u] !== p) {
        res.writeHead(401).end('{"details":"bad credentials"}');
        return;
      }
      user = u;
    }
    issued.push({ user, scope });
    const access = [];
    const m = /^repository:([^:]+):(.+)$/.exec(scope);
    if (m !== null) {
      const [, name, actions] = m as unknown as [string, string, string];
      const granted = actions.split(',').filter((a) => user !== 'anonymous' || (a === 'pull' && name.startsWith('public/')));
      access.push({ type: 'repository', name, actions: granted });
    }
    const now = Math.floor(Date.now() / 1000);
    const header = { alg: 'RS256', typ: 'JWT', x5c: [der.toString('base64')] };
    const claims = { iss: 'stargzfs-test', sub: user, aud: service, exp: now + expiresIn, nbf: now - 10, iat: now, jti: randomUUID(), access };
    const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
    const token = `${input}.${b64url(sign('sha256', Buffer.from(input), key))}`;
    tokens.push({ scope, token });
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ token, expires_in: expiresIn }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
  return {
    realm,
    certFile,
    issued,
    tokens,
    registryConfig: (service) =>
      `auth:\n  token:\n    realm: ${realm}\n    service: ${service}\n    issuer: stargzfs-test\n    rootcertbundle: ${certFile}\n`,
    stop: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}
