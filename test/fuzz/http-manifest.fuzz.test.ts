// Fuzzing src/http/manifest.ts: manifests and indexes as JSON of any shape and as mutated
// documents (numbers made extreme, bytes flipped); manifests and indexes written from
// descriptors read back to those descriptors.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { descriptors, manifestParts, parseJson } from '../../src/http/manifest.js';
import type { Descriptor } from '../../src/http/image.js';
import { fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const digest = fc.stringMatching(/^sha256:[0-9a-f]{64}$/);
const desc = fc.record({
  mediaType: fc.constantFrom('application/vnd.oci.image.layer.v1.tar+gzip', 'application/vnd.oci.image.manifest.v1+json', 'application/vnd.docker.image.rootfs.diff.tar.gzip', ''),
  digest,
  size: fc.oneof(fc.nat(1 << 20), fc.constant(Number.MAX_SAFE_INTEGER)),
  annotations: fc.option(fc.dictionary(fc.string({ maxLength: 20 }), fc.string({ maxLength: 20 }), { maxKeys: 3, noNullPrototype: true }), { nil: undefined }),
  platform: fc.option(fc.record({ os: fc.constantFrom('linux', 'windows'), architecture: fc.constantFrom('amd64', 'arm64'), variant: fc.option(fc.constantFrom('v8', 'v7'), { nil: undefined }) }), { nil: undefined }),
});

const VALID = Buffer.from(JSON.stringify({
  schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json',
  config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: 'sha256:' + 'c'.repeat(64), size: 10 },
  layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: 'sha256:' + 'd'.repeat(64), size: 20, annotations: { a: 'b' } }],
  manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: 'sha256:' + 'e'.repeat(64), size: 30, platform: { os: 'linux', architecture: 'amd64' } }],
}));

function assertDescriptor(d: Descriptor): void {
  assert.ok(Number.isSafeInteger(d.size) && d.size >= 0);
  assert.match(d.digest, /^sha256:[0-9a-f]{64}$/);
  assert.equal(typeof d.mediaType, 'string');
}

describe('fuzz: http/manifest.ts', () => {
  it(`JSON of any shape and mutated documents, read as manifest and as index: ${EACH} inputs`, async (t) => {
    const docs = fc.oneof(fc.json().map((j) => Buffer.from(j)), mutated(VALID), fc.jsonValue().map((v) => Buffer.from(JSON.stringify({ config: v, layers: [v], manifests: [v, v] }))));
    await fuzz(t, EACH, fc.property(docs, (bytes) => {
      const doc = refusedOrValue(() => parseJson(bytes, 'manifest'));
      if (doc === undefined) return;
      const parts = refusedOrValue(() => manifestParts(doc, 'manifest'));
      if (parts !== undefined) [parts.config, ...parts.layers].forEach(assertDescriptor);
      refusedOrValue(() => descriptors(doc, 'index'))?.forEach(assertDescriptor);
    }));
  });

  it(`manifests and indexes written from descriptors read back the same: ${EACH} inputs`, async (t) => {
    await fuzz(t, EACH, fc.property(desc, fc.array(desc, { maxLength: 5 }), (config, list) => {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, config, layers: list, manifests: list }));
      const doc = refusedOrValue(() => parseJson(bytes, 'manifest'));
      assert.ok(doc !== undefined);
      const parts = manifestParts(doc, 'manifest');
      const norm = (d: typeof config): Descriptor => ({ ...d, platform: d.platform !== undefined ? { ...d.platform, variant: d.platform.variant } : undefined });
      assert.deepEqual(parts, { config: norm(config), layers: list.map(norm) });
      assert.deepEqual(descriptors(doc, 'index'), list.map(norm));
    }));
  });
});
