// Pushes an image from an OCI layout to a registry, byte for byte (the demo's stand-in
// for `stargzfs convert`'s registry output): `node dist/scripts/push-layout.js DIR
// MANIFEST_DIGEST HOST/REPO:TAG`.
import { resolveConfig } from '../src/config.js';
import { createLogger } from '../src/log.js';
import { RegistryClient } from '../src/http/registry-client.js';
import { DockerConfigCredentials } from '../src/http/credentials.js';
import { pushLayoutImage } from '../src/http/push.js';
import { parseImageRef } from '../src/http/reference.js';

const [dir, digest, ref] = process.argv.slice(2);
if (dir === undefined || digest === undefined || ref === undefined) {
  process.stderr.write('usage: push-layout DIR MANIFEST_DIGEST HOST/REPO:TAG\n');
  process.exit(2);
}
const cfg = resolveConfig({ logLevel: 'warn' }, { uid: process.getuid?.() ?? 0, home: process.env['HOME'], xdgCacheHome: undefined, arch: process.arch });
const log = createLogger('warn');
const client = new RegistryClient(cfg.http, new DockerConfigCredentials(cfg.http.dockerConfigDir, log), log);
const r = parseImageRef(ref);
try {
  await pushLayoutImage(client, { endpoint: r.endpoint, registry: r.registry, repository: r.repository }, dir, digest, r.tag ?? 'latest');
} finally {
  await client.close();
}
