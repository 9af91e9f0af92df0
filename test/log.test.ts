import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { closeSync, openSync, readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { createLogger, SafeDestination } from '../src/log.js';
import { freeBytes, mountTmpfs } from './helpers/tmpfs.js';

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

  it('a log on a full disk never ends the process: lines are held, written once it has room, and the ones past the limit counted', async () => {
    // /dev/full fails every write with ENOSPC, as a log file on a full disk does.
    const full = openSync('/dev/full', 'w');
    try {
      const log = createLogger('info', new SafeDestination(full));
      for (let i = 0; i < 5000; i++) log.warn({ i }, 'chunk not written');
    } finally {
      closeSync(full);
    }
    // A real file on a tmpfs that fills up, then has room again.
    const disk = mountTmpfs(256 << 10);
    try {
      const file = join(disk.dir, 'mount.log');
      const fd = openSync(file, 'a');
      try {
        const log = createLogger('info', new SafeDestination(fd)).child({ mod: 'test' });
        let i = 0;
        while (freeBytes(disk.dir) > 0 && i < 100_000) log.info({ i: i++, pad: 'x'.repeat(200) }, 'filling');
        // The last page may still take a line or two; these are some 110 KiB, more than is held.
        for (let j = 0; j < 400; j++) log.info({ j, pad: 'x'.repeat(200) }, 'held');
        truncateSync(file, 0);
        log.info('after');
      } finally {
        closeSync(fd);
      }
      const parsed = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '').map((l) => {
        try {
          return JSON.parse(l) as { msg: string; dropped?: number; code?: string; j?: number };
        } catch {
          return { msg: '(cut short)' };
        }
      });
      const note = parsed.find((p) => p.dropped !== undefined);
      assert.ok(note !== undefined && (note.dropped ?? 0) >= 100 && note.code === 'ENOSPC', JSON.stringify(parsed.slice(0, 2)));
      const held = parsed.filter((p) => p.msg === 'held').map((p) => p.j);
      assert.ok(held.length >= 100, `the newest lines were held and written (${held.length})`);
      assert.deepEqual(held, held.slice().sort((a, b) => (a ?? 0) - (b ?? 0)), 'in order');
      assert.equal(held.at(-1), 399);
      assert.equal(parsed.at(-1)?.msg, 'after');
    } finally {
      disk.cleanup();
    }
  });
});
