// Where credentials come from: the containers auth files (podman's auth.json) first, then
// the docker config; the first file that names a registry wins; files that are missing or
// broken are skipped (the broken one with a warning), never an error.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { DockerConfigCredentials } from '../../src/http/credentials.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';

const auth = (user: string, pw: string): { auth: string } => ({ auth: Buffer.from(`${user}:${pw}`).toString('base64') });

describe('credentials', () => {
  it('containers auth files come before the docker config; the first to name a registry wins', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const docker = join(dir, 'docker');
      mkdirSync(docker);
      writeFileSync(join(docker, 'config.json'), JSON.stringify({ auths: { 'a.example:5000': auth('docker', 'd'), 'b.example': auth('docker-b', 'db') } }));
      const runtime = join(dir, 'auth.json');
      writeFileSync(runtime, JSON.stringify({ auths: { 'a.example:5000': auth('podman', 'p') } }));
      const broken = join(dir, 'broken.json');
      writeFileSync(broken, '{not json');
      const creds = new DockerConfigCredentials(docker, createLogger('silent'), [join(dir, 'missing.json'), broken, runtime]);
      assert.deepEqual(await creds.get('a.example:5000'), { username: 'podman', password: 'p', identityToken: undefined });
      assert.deepEqual(await creds.get('b.example'), { username: 'docker-b', password: 'db', identityToken: undefined });
      assert.equal(await creds.get('c.example'), undefined);
      // Without a docker config, the auth file alone.
      const only = new DockerConfigCredentials(undefined, createLogger('silent'), [runtime]);
      assert.equal((await only.get('a.example:5000'))?.username, 'podman');
    } finally {
      cleanup();
    }
  });
});
