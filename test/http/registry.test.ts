// Against Debian's docker-registry on loopback: the fixtures pushed there read exactly as
// from their OCI layouts; Basic auth with docker config credentials; errors keep secrets out.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import bcrypt from 'bcryptjs';
import { pushLayoutImage } from '../../src/http/push.js';
import { runCli } from '../helpers/cli.js';
import { fixtureManifest, fixturesDir } from '../helpers/paths.js';
import { startRegistry, type TestRegistry } from '../helpers/registry.js';
import type { TokenServer } from '../helpers/token-server.js';
import { startTokenRegistry, type TokenRegistry } from '../helpers/token-registry.js';
import { startFaultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { tempDir } from '../helpers/tmp.js';
import { testClient } from '../helpers/client.js';

const variants = ['esgz', 'zstdchunked', 'gzip'];

const manifestDigest = fixtureManifest;

async function pushFixtures(reg: TestRegistry, dockerConfig?: string): Promise<void> {
  const client = testClient({}, dockerConfig);
  try {
    for (const v of variants) {
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: `fixture/${v}` }, join(fixturesDir(), v, 'oci'), manifestDigest(v), 'latest');
    }
  } finally {
    await client.close();
  }
}

describe('registry source (open registry)', () => {
  let reg: TestRegistry;
  let root: string;
  let cleanup: () => void;
  before(async () => {
    ({ dir: root, cleanup } = tempDir());
    reg = await startRegistry();
    await pushFixtures(reg);
  });
  after(async () => {
    await reg?.stop();
    cleanup?.();
  });

  for (const v of ['esgz', 'zstdchunked']) {
    it(`${v}: ls -R -l, stat and cat equal the OCI layout's`, async () => {
      const remote = `${reg.host}/fixture/${v}:latest`;
      const local = `oci:${join(fixturesDir(), v, 'oci')}`;
      const both = async (...args: string[]): Promise<[string, string]> => {
        const a = await runCli(['--root', join(root, 'r'), ...args.map((x) => (x === 'SRC' ? remote : x))]);
        const b = await runCli(['--root', join(root, 'l'), ...args.map((x) => (x === 'SRC' ? local : x))]);
        assert.equal(a.code, 0, a.stderr);
        assert.equal(b.code, 0, b.stderr);
        return [a.stdout.toString('latin1'), b.stdout.toString('latin1')];
      };
      const [lsR, lsL] = await both('ls', '-R', '-l', '--json', 'SRC', '/');
      const strip = (s: string): string => s.replace(/"ino": \d+/g, '');
      assert.equal(strip(lsR), strip(lsL));
      const [catR, catL] = await both('cat', 'SRC', '/files/size-9MiB+12345', '/xattrs/user', '/l1/f');
      assert.equal(catR.length, catL.length);
      assert.ok(catR === catL);
      const [inR, inL] = await both('inspect', '--json', 'SRC');
      const layers = (s: string) => (JSON.parse(s) as { layers: Array<Record<string, unknown>> }).layers.map((l) => ({ ...l, indexedFromCache: null }));
      assert.deepEqual(layers(inR), layers(inL));
      // The registry source reads the config only when asked (inspect), not before a mount.
      const platform = (s: string) => (JSON.parse(s) as { platform: unknown }).platform;
      assert.equal(platform(inR), platform(inL));
      assert.match(String(platform(inR)), /^linux\/[a-z0-9]+/);
    });
  }

  it('gzip: NOT LAZY from the registry too', async () => {
    const r = await runCli(['--root', join(root, 'g'), 'inspect', `${reg.host}/fixture/gzip:latest`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout.toString(), /NOT LAZY: plain gzip layer/);
  });

  it('by digest, and a digest that does not exist', async () => {
    const d = manifestDigest('esgz');
    const ok = await runCli(['--root', join(root, 'd'), 'stat', '--json', `${reg.host}/fixture/esgz@${d}`, '/hl/target']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal((JSON.parse(ok.stdout.toString()) as { nlink: number }).nlink, 5);
    const missing = await runCli(['--root', join(root, 'd'), 'ls', `${reg.host}/fixture/esgz@sha256:${'0'.repeat(64)}`]);
    assert.equal(missing.code, 7);
    assert.match(missing.stderr, /HTTP 404.*MANIFEST_UNKNOWN/);
  });
});

describe('a registry on IPv6 loopback', () => {
  it('[::1]:port references resolve, push and read', async () => {
    const { dir, cleanup } = tempDir();
    const reg = await startRegistry({ ipv6: true });
    try {
      assert.match(reg.host, /^\[::1\]:\d+$/);
      await pushFixtures(reg);
      const r = await runCli(['--root', join(dir, 'root'), 'stat', '--json', `${reg.host}/fixture/esgz:latest`, '/special/char-1-3']);
      assert.equal(r.code, 0, r.stderr);
      assert.equal((JSON.parse(r.stdout.toString()) as { rdev: string }).rdev, '1:3');
    } finally {
      await reg.stop();
      cleanup();
    }
  });
});

describe('registry with Basic auth (htpasswd)', () => {
  let reg: TestRegistry;
  let dir: string;
  let cleanup: () => void;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    reg = await startRegistry({ htpasswd: `alice:${bcrypt.hashSync('s3cret-pw', 4)}\n` });
    const conf = join(dir, 'docker');
    mkdirSync(conf);
    writeFileSync(join(conf, 'config.json'), JSON.stringify({ auths: { [reg.host]: { auth: Buffer.from('alice:s3cret-pw').toString('base64') } } }));
    await pushFixtures(reg, conf);
  });
  after(async () => {
    await reg?.stop();
    cleanup?.();
  });

  it('reads with credentials from $DOCKER_CONFIG; refuses without them, leaking nothing', async () => {
    const ref = `${reg.host}/fixture/esgz:latest`;
    const env = { ...process.env, DOCKER_CONFIG: join(dir, 'docker') };
    const ok = await runCli(['--root', join(dir, 'root'), 'cat', ref, '/files/size-1'], { env });
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.length, 1);
    const denied = await runCli(['--root', join(dir, 'root2'), '--retries', '0', 'ls', ref], { env: { ...process.env, DOCKER_CONFIG: join(dir, 'none') } });
    assert.equal(denied.code, 7);
    assert.match(denied.stderr, /HTTP 401/);
    const wrongDir = join(dir, 'wrong');
    mkdirSync(wrongDir);
    writeFileSync(join(wrongDir, 'config.json'), JSON.stringify({ auths: { [reg.host]: { username: 'alice', password: 'not-it' } } }));
    const wrong = await runCli(['--root', join(dir, 'root3'), '--retries', '0', '--log-level', 'trace', 'ls', ref], { env: { ...process.env, DOCKER_CONFIG: wrongDir } });
    assert.equal(wrong.code, 7);
    for (const secret of ['s3cret-pw', 'not-it', Buffer.from('alice:not-it').toString('base64')]) {
      assert.ok(!wrong.stderr.includes(secret) && !denied.stderr.includes(secret), `secret ${secret} leaked`);
    }
  });
});

describe('credentials from docker credential helpers', () => {
  let reg: TestRegistry;
  let dir: string;
  let cleanup: () => void;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    reg = await startRegistry({ htpasswd: `carol:${bcrypt.hashSync('helper-secret', 4)}\n` });
    // The helper protocol: `docker-credential-<name> get`, server URL on stdin, JSON out.
    mkdirSync(join(dir, 'bin'));
    writeFileSync(
      join(dir, 'bin', 'docker-credential-sgztest'),
      `#!/bin/sh\nread server\n[ "$server" = "${reg.host}" ] || exit 1\necho '{"ServerURL":"${reg.host}","Username":"carol","Secret":"helper-secret"}'\n`,
      { mode: 0o755 },
    );
    const conf = join(dir, 'push');
    mkdirSync(conf);
    writeFileSync(join(conf, 'config.json'), JSON.stringify({ auths: { [reg.host]: { username: 'carol', password: 'helper-secret' } } }));
    await pushFixtures(reg, conf);
  });
  after(async () => {
    await reg?.stop();
    cleanup?.();
  });

  for (const [name, config] of [
    ['credHelpers', (host: string) => ({ credHelpers: { [host]: 'sgztest' } })],
    ['credsStore', () => ({ credsStore: 'sgztest' })],
  ] as const) {
    it(`${name}: the helper's credentials are used, and its secret never printed`, async () => {
      const conf = join(dir, name);
      mkdirSync(conf);
      writeFileSync(join(conf, 'config.json'), JSON.stringify(config(reg.host)));
      const env = { ...process.env, DOCKER_CONFIG: conf, PATH: `${join(dir, 'bin')}:${process.env['PATH'] ?? ''}` };
      const r = await runCli(['--root', join(dir, `root-${name}`), '--log-level', 'trace', 'cat', `${reg.host}/fixture/esgz:latest`, '/files/size-1'], { env });
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.length, 1);
      assert.ok(!r.stderr.includes('helper-secret'));
    });
  }
});

describe('registry with token auth (our token server, real signed JWTs)', () => {
  let served: TokenRegistry;
  let reg: TestRegistry;
  let tokens: TokenServer;
  let dir: string;
  let cleanup: () => void;
  let conf: string;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    served = await startTokenRegistry(dir, 'bob', 'b0b-pass', ['public/esgz', 'private/esgz'], 3);
    ({ reg, tokens, conf } = served);
  });
  after(async () => {
    await served?.stop();
    cleanup?.();
  });

  it('anonymous pull where granted, one token per scope; private needs credentials', async () => {
    tokens.issued.length = 0;
    const noCreds = { env: { ...process.env, DOCKER_CONFIG: join(dir, 'none') } };
    const pub = await runCli(['--root', join(dir, 'r1'), 'cat', `${reg.host}/public/esgz:latest`, '/files/size-4097'], noCreds);
    assert.equal(pub.code, 0, pub.stderr);
    assert.equal(pub.stdout.length, 4097);
    assert.deepEqual(tokens.issued, [{ user: 'anonymous', scope: 'repository:public/esgz:pull' }], 'one token serves every request of the command');
    const priv = await runCli(['--root', join(dir, 'r2'), '--retries', '0', 'ls', `${reg.host}/private/esgz:latest`], noCreds);
    assert.equal(priv.code, 7);
    assert.match(priv.stderr, /HTTP 401/);
    const withCreds = await runCli(['--root', join(dir, 'r3'), 'ls', `${reg.host}/private/esgz:latest`], { env: { ...process.env, DOCKER_CONFIG: conf } });
    assert.equal(withCreds.code, 0, withCreds.stderr);
    assert.ok(!withCreds.stderr.includes('b0b-pass'));
  });

  it('a token that expires mid-run is renewed', async () => {
    const client = testClient({}, conf);
    try {
      const t = { endpoint: reg.host, registry: reg.host, repository: 'private/esgz' };
      tokens.issued.length = 0;
      const first = await client.call(t, { method: 'GET', path: `/v2/private/esgz/manifests/latest`, headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      await new Promise((r) => setTimeout(r, 3000));
      const second = await client.call(t, { method: 'GET', path: `/v2/private/esgz/manifests/latest`, headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } });
      assert.ok(first.body.equals(second.body));
      assert.equal(tokens.issued.length, 2, 'a fresh token after expiry');
      assert.ok(tokens.issued.every((i) => i.user === 'bob'));
    } finally {
      await client.close();
    }
  });
});

describe('mirrors: a pull-through cache in front of the registry', () => {
  let upstream: TestRegistry;
  let mirror: TestRegistry;
  let front: FaultProxy;
  let dir: string;
  let cleanup: () => void;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    upstream = await startRegistry();
    await pushFixtures(upstream);
    mirror = await startRegistry({ extraConfig: `proxy:\n  remoteurl: ${upstream.url}\n` });
    front = await startFaultProxy(mirror.host);
  });
  after(async () => {
    await front?.stop();
    await mirror?.stop();
    await upstream?.stop();
    cleanup?.();
  });

  it('reads go to the mirror; with it stopped, to the registry; with it back, to the mirror', async () => {
    const ref = `${upstream.host}/fixture/esgz:latest`;
    const run = (n: number) => runCli(['--root', join(dir, `r${n}`), '--mirror', `${upstream.host}=${front.host}`, 'cat', ref, '/files/size-65537']);
    const want = (await runCli(['--root', join(dir, 'direct'), 'cat', ref, '/files/size-65537'])).stdout;
    assert.equal(want.length, 65537);

    front.reset();
    const viaMirror = await run(1);
    assert.equal(viaMirror.code, 0, viaMirror.stderr);
    assert.ok(viaMirror.stdout.equals(want));
    assert.ok(front.stats.blobBytes > 0, 'the mirror served the blob reads');
    assert.ok(front.stats.ranges.length > 0);

    front.reset();
    front.setDown(true);
    const fallback = await run(2);
    assert.equal(fallback.code, 0, fallback.stderr);
    assert.ok(fallback.stdout.equals(want));
    assert.equal(front.stats.requests, 0, 'nothing was served by the stopped mirror');

    front.setDown(false);
    front.reset();
    const back = await run(3);
    assert.equal(back.code, 0, back.stderr);
    assert.ok(back.stdout.equals(want));
    assert.ok(front.stats.blobBytes > 0, 'the mirror serves again');
  });

  it('--mirror is validated by name', async () => {
    const r = await runCli(['--mirror', 'nonsense', 'ls', 'x/y']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /--mirror: expected REGISTRY=MIRROR_HOST/);
  });
});

describe('a loopback registry serving TLS with a self-signed certificate', () => {
  let reg: TestRegistry;
  let dir: string;
  let cleanup: () => void;
  before(async () => {
    ({ dir, cleanup } = tempDir());
    const cert = join(dir, 'tls.pem');
    const key = join(dir, 'tls.key');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
    reg = await startRegistry({ tls: { cert, key } });
    const client = testClient({ insecure: true });
    try {
      await pushLayoutImage(client, { endpoint: reg.host, registry: reg.host, repository: 'tls/esgz' }, join(fixturesDir(), 'esgz', 'oci'), manifestDigest('esgz'), 'latest');
    } finally {
      await client.close();
    }
  });
  after(async () => {
    await reg?.stop();
    cleanup?.();
  });

  it('is refused without --insecure, with a message about the certificate, and read with it', async () => {
    const ref = `${reg.host}/tls/esgz:latest`;
    const refused = await runCli(['--root', join(dir, 'r1'), '--retries', '0', 'ls', ref]);
    assert.equal(refused.code, 7);
    assert.match(refused.stderr, /certificate/i);
    const ok = await runCli(['--root', join(dir, 'r2'), '--insecure', 'cat', ref, '/files/size-511']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(ok.stdout.length, 511);
  });
});
