import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../src/log.js';

describe('logging', () => {
  it('redacts credentials wherever they appear', async () => {
    const lines: string[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, cb) {
        lines.push(chunk.toString());
        cb();
      },
    });
    const log = createLogger('info', sink as never).child({ mod: 'http' });
    log.info({ headers: { authorization: 'Bearer s3cret' }, token: 'tok3n', auth: { password: 'pw' } }, 'request');
    await new Promise((r) => setImmediate(r));
    const out = lines.join('');
    assert.match(out, /"mod":"http"/);
    for (const secret of ['s3cret', 'tok3n', '"pw"']) assert.ok(!out.includes(secret), `${secret} leaked: ${out}`);
  });
});
