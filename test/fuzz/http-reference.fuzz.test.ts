// Fuzzing src/http/reference.ts: image references, arbitrary and mutated from ones users
// type; a reference that parses formats back to itself, and references built from valid
// parts parse to those parts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatImageRef, parseImageRef } from '../../src/http/reference.js';
import { fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const TYPED = ['docker.io/library/debian:12', 'localhost:5000/a/b@sha256:' + 'a'.repeat(64), '[::1]:5000/x:y', 'registry.example/app:1.2', 'ubuntu', 'a/b/c/d:t@sha256:' + '0'.repeat(64)];

describe('fuzz: http/reference.ts', () => {
  it(`arbitrary and mutated references; what parses formats back to itself: ${EACH} inputs`, async (t) => {
    const refs = fc.oneof(
      fc.string({ maxLength: 120 }),
      fc.string({ maxLength: 5000, unit: fc.constantFrom('a', '/', ':', '.', '-', '_', '@', '1') }),
      fc.constantFrom(...TYPED).chain((v) => mutated(Buffer.from(v)).map((b) => b.toString('latin1'))),
    );
    await fuzz(t, EACH, fc.property(refs, (s) => {
      const r = refusedOrValue(() => parseImageRef(s));
      if (r === undefined) return;
      assert.ok(r.repository.length > 0 && r.registry.length > 0 && r.endpoint.length > 0);
      assert.deepEqual(parseImageRef(formatImageRef(r)), r);
    }));
  });

  it(`references built from valid parts parse to those parts: ${EACH} inputs`, async (t) => {
    const component = fc.stringMatching(/^[a-z0-9]{1,5}(?:(?:[._]|__|-{1,3})[a-z0-9]{1,5}){0,2}$/);
    const registry = fc.oneof(fc.stringMatching(/^[a-z0-9]{1,8}\.[a-z]{2,4}(?::[1-9][0-9]{0,3})?$/), fc.constantFrom('localhost', 'localhost:5000', '[::1]:5000'));
    await fuzz(t, EACH, fc.property(registry, fc.array(component, { minLength: 1, maxLength: 4 }), fc.option(fc.stringMatching(/^\w[\w.-]{0,20}$/), { nil: undefined }), fc.option(fc.stringMatching(/^sha256:[0-9a-f]{64}$/), { nil: undefined }),
      (reg, path, tag, digest) => {
        const s = `${reg}/${path.join('/')}${tag !== undefined ? `:${tag}` : ''}${digest !== undefined ? `@${digest}` : ''}`;
        const r = refusedOrValue(() => parseImageRef(s));
        assert.ok(r !== undefined, s);
        assert.equal(r.registry, reg);
        assert.equal(r.repository, path.join('/'));
        assert.equal(r.digest, digest);
        if (tag !== undefined) assert.equal(r.tag, tag);
      }));
  });
});
