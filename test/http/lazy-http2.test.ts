// The bundle's stand-in for node:http2 (src/http/lazy-http2.ts) must give undici exactly
// what node:http2 would: the constants it reads at load, and a working connect().
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as http2 from 'node:http2';
import { constants, connect } from '../../src/http/lazy-http2.js';

describe('lazy node:http2', () => {
  it('has every constant as node:http2 defines it', () => {
    const real = http2.constants as Record<string, unknown>;
    for (const [k, v] of Object.entries(constants)) assert.equal(v, real[k], k);
  });

  it('covers every constant and function undici takes from node:http2', () => {
    const src = readFileSync(createRequire(import.meta.url).resolve('undici/lib/dispatcher/client-h2.js'), 'utf8');
    const block = /const \{\s*constants: \{([^}]*)\}\s*\} = http2/.exec(src)?.[1] ?? '';
    const read = block.split(',').map((s) => s.trim()).filter(Boolean);
    assert.ok(read.length > 0, 'undici still destructures http2.constants');
    assert.deepEqual(read.filter((k) => !(k in constants)), []);
    const used = [...new Set([...src.matchAll(/\bhttp2\.([A-Za-z]+)/g)].map((m) => m[1]))];
    assert.deepEqual(used.filter((k) => k !== 'connect'), []);
  });

  it('connect() is the real one', async () => {
    const s = connect('http://127.0.0.1:9');
    await new Promise<void>((resolve) => s.on('error', () => resolve()));
    s.destroy();
  });
});
