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

  it('a log on a full disk never ends the process: lines are dropped, counted, and reported once it has room', async () => {
    // /dev/full fails every write with ENOSPC, as a log file on a full disk does.
    const full = openSync('/dev/full', 'w');
    try {
      const log = createLogger('info', new SafeDestination(full));
      for (let i = 0; i < 1000; i++) log.warn({ i }, 'chunk not written');
    } finally {
      closeSync(full);
    }
    // A real file on a tmpfs that fills up, then has room again.
    const disk = mountTmpfs(64 << 10);
    try {
      const file = join(disk.dir, 'mount.log');
      const fd = openSync(file, 'a');
      try {
        const log = createLogger('info', new SafeDestination(fd)).child({ mod: 'test' });
        let i = 0;
        while (freeBytes(disk.dir) > 0 && i < 100_000) log.info({ i: i++, pad: 'x'.repeat(200) }, 'filling');
        // The last page may still have room for a line or two; these are more than a page.
        for (let j = 0; j < 50; j++) log.info({ j, pad: 'x'.repeat(200) }, 'lost');
        // Room again: the next line is preceded by the count of those lost.
        truncateSync(file, 0);
        log.info('after');
      } finally {
        closeSync(fd);
      }
      const lines = readFileSync(file, 'utf8').split('\n').filter((l) => l !== '');
      const parsed = lines.map((l) => {
        try {
          return JSON.parse(l) as { msg: string; dropped?: number; code?: string };
        } catch {
          return { msg: '(torn)' };
        }
      });
      const note = parsed.find((p) => p.dropped !== undefined);
      assert.ok(note !== undefined && (note.dropped ?? 0) >= 20 && note.code === 'ENOSPC', JSON.stringify(parsed.slice(-3)));
      assert.equal(parsed.at(-1)?.msg, 'after');
    } finally {
      disk.cleanup();
    }
  });
});

