// Fuzzing src/http/challenge.ts: WWW-Authenticate headers as registries send them, arbitrary,
// mutated and long (a backtracking regex would show as a slow input), and challenges
// written from parameters, read back to the same parameters.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseChallenge } from '../../src/http/challenge.js';
import { fuzz, mutated, refusedOrValue, share } from './harness.js';

/** FUZZ_RUNS inputs in all, shared by the 2 properties below. */
const EACH = share(2);

const SEEN = [
  'Bearer realm="https://auth.example/token",service="registry",scope="repository:a/b:pull"',
  'Basic realm="x"',
  'Bearer realm=unquoted, error="invalid_token", error_description="a \\"quoted\\" word"',
];

describe('fuzz: http/challenge.ts', () => {
  it(`arbitrary, mutated and long headers: ${EACH} inputs`, async (t) => {
    const headers = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.string({ maxLength: 4000, unit: fc.constantFrom('a', '=', '"', '\\', ',', ' ', '-', '\t') }),
      fc.constantFrom(...SEEN).chain((v) => mutated(Buffer.from(v)).map((b) => b.toString('latin1'))),
    );
    await fuzz(t, EACH, fc.property(headers, (h) => {
      const c = refusedOrValue(() => parseChallenge(h));
      if (c === undefined) return;
      assert.match(c.scheme, /^[a-z][\w-]*$/);
      for (const [k, v] of Object.entries(c.params)) {
        assert.match(k, /^[\w-]+$/);
        assert.equal(typeof v, 'string');
      }
    }));
  });

  it(`challenges written from parameters read back the same: ${EACH} inputs`, async (t) => {
    const key = fc.stringMatching(/^[a-z][a-z_-]{0,10}$/);
    const value = fc.string({ maxLength: 40 });
    await fuzz(t, EACH, fc.property(fc.constantFrom('Bearer', 'Basic', 'bearer'), fc.uniqueArray(fc.tuple(key, value), { maxLength: 5, selector: ([k]) => k }), fc.constantFrom(',', ', ', ' ,'), (scheme, kv, sep) => {
      const quote = (v: string): string => `"${v.replace(/["\\]/g, '\\$&')}"`;
      const h = `${scheme} ${kv.map(([k, v]) => `${k}=${quote(v)}`).join(sep)}`;
      const c = refusedOrValue(() => parseChallenge(h));
      assert.deepEqual(c, { scheme: scheme.toLowerCase(), params: Object.fromEntries(kv) });
    }));
  });
});
