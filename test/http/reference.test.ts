import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isLoopback, parseImageRef } from '../../src/http/reference.js';

const D = `sha256:${'c'.repeat(64)}`;

describe('image references', () => {
  const cases: Array<[string, string, string, string, string | undefined, string | undefined]> = [
    ['alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['alpine:3.19', 'docker.io', 'registry-1.docker.io', 'library/alpine', '3.19', undefined],
    ['user/app', 'docker.io', 'registry-1.docker.io', 'user/app', 'latest', undefined],
    ['docker.io/library/alpine', 'docker.io', 'registry-1.docker.io', 'library/alpine', 'latest', undefined],
    ['ghcr.io/org/team/app:v1', 'ghcr.io', 'ghcr.io', 'org/team/app', 'v1', undefined],
    ['localhost:5000/x', 'localhost:5000', 'localhost:5000', 'x', 'latest', undefined],
    ['localhost/x', 'localhost', 'localhost', 'x', 'latest', undefined],
    ['127.0.0.1:5000/a/b:t', '127.0.0.1:5000', '127.0.0.1:5000', 'a/b', 't', undefined],
    ['[::1]:5000/img:tag', '[::1]:5000', '[::1]:5000', 'img', 'tag', undefined],
    [`reg.example/app@${D}`, 'reg.example', 'reg.example', 'app', undefined, D],
    [`reg.example/app:v2@${D}`, 'reg.example', 'reg.example', 'app', 'v2', D],
    ['a.b/c__d/e-f--g.h_i', 'a.b', 'a.b', 'c__d/e-f--g.h_i', 'latest', undefined],
  ];
  for (const [input, registry, endpoint, repository, tag, digest] of cases) {
    it(input, () => assert.deepEqual(parseImageRef(input), { registry, endpoint, repository, tag, digest }));
  }
  for (const bad of ['', 'UPPER', 'a//b', 'app:', 'app@sha256:123', `app:${'t'.repeat(129)}`, 'host:99999/x', '[zz]:1/x', '-lead/x', 'x/', ':tag']) {
    it(`rejects ${JSON.stringify(bad)}`, () => assert.throws(() => parseImageRef(bad), { code: 'SGZ_REFERENCE' }));
  }
  it('knows loopback endpoints', () => {
    assert.ok(isLoopback('127.0.0.1:5000') && isLoopback('localhost') && isLoopback('[::1]:80'));
    assert.ok(!isLoopback('ghcr.io') && !isLoopback('10.0.0.1:5000'));
  });
});
