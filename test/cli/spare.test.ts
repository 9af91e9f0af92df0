// The spare's side of native/spare_client.c's request, and where spares listen.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { adoptClaim, cpuTimes, parseClaim, spareDir } from '../../src/cli/spare.js';

/** A request as native/spare_client.c writes it (without the length prefix). */
const request = (fields: string[]): Buffer => Buffer.from(fields.map((f) => `${f}\0`).join(''));

describe('spare claims', () => {
  it('reads the bundle, directory, arguments and environment', () => {
    const c = parseClaim(request(['stargzfs-spare/1', '/opt/stargzfs.mjs', '/home/x', '3', 'mount', 'reg/img:1', 'a b', 'HOME=/home/x', 'EMPTY=', 'EQ=a=b']));
    assert.deepEqual(c, { main: '/opt/stargzfs.mjs', cwd: '/home/x', args: ['mount', 'reg/img:1', 'a b'], env: { HOME: '/home/x', EMPTY: '', EQ: 'a=b' } });
  });

  it('takes no arguments and no environment', () => {
    assert.deepEqual(parseClaim(request(['stargzfs-spare/1', '/m', '/', '0'])), { main: '/m', cwd: '/', args: [], env: {} });
  });

  it('refuses another protocol, a short or unterminated request, or a count past the end', () => {
    assert.equal(parseClaim(request(['stargzfs-spare/2', '/m', '/', '0'])), undefined);
    assert.equal(parseClaim(request(['stargzfs-spare/1', '/m', '/'])), undefined);
    assert.equal(parseClaim(Buffer.from('stargzfs-spare/1\0/m\0/\x000')), undefined);
    assert.equal(parseClaim(request(['stargzfs-spare/1', '/m', '/', '3', 'mount'])), undefined);
    assert.equal(parseClaim(request(['stargzfs-spare/1', '/m', '/', '-1'])), undefined);
  });
});

describe('spareDir', () => {
  it('is STARGZFS_SPARE_DIR, else /run/stargzfs/spares for root, else under XDG_RUNTIME_DIR, else none', () => {
    assert.equal(spareDir({ STARGZFS_SPARE_DIR: '/tmp/s', XDG_RUNTIME_DIR: '/run/user/1' }, 1000), '/tmp/s');
    assert.equal(spareDir({}, 0), '/run/stargzfs/spares');
    assert.equal(spareDir({ XDG_RUNTIME_DIR: '/run/user/1000' }, 1000), '/run/user/1000/stargzfs/spares');
    assert.equal(spareDir({}, 1000), undefined);
  });
});

describe('cpuTimes', () => {
  it('reads the idle (with iowait) and total ticks of all CPUs from /proc/stat', () => {
    assert.deepEqual(cpuTimes('cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n'), { idle: 840, total: 1000 });
    assert.equal(cpuTimes('intr 1 2 3\n'), undefined);
    const live = cpuTimes();
    assert.ok(live !== undefined && live.total >= live.idle && live.idle > 0);
  });
});

describe('adoptClaim', () => {
  it('takes the launcher\'s directory, arguments and environment exactly: what it lacks goes, what differs changes', () => {
    const env = { ...process.env };
    const cwd = process.cwd();
    const argv = [...process.argv];
    try {
      process.env['STARGZFS_TEST_ONLY_HERE'] = 'spare';
      process.env['STARGZFS_TEST_CHANGED'] = 'old';
      const want: Record<string, string> = { ...(env as Record<string, string>), STARGZFS_TEST_CHANGED: 'new', STARGZFS_TEST_ADDED: 'x' };
      delete want['STARGZFS_TEST_ONLY_HERE'];
      adoptClaim({ main: 'm', cwd: '/', args: ['mount', 'a', 'b'], env: want });
      assert.deepEqual({ ...process.env }, want);
      assert.equal(process.cwd(), '/');
      assert.deepEqual(process.argv.slice(2), ['mount', 'a', 'b']);
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in env)) delete process.env[k];
      Object.assign(process.env, env);
      process.chdir(cwd);
      process.argv.splice(0, Infinity, ...argv);
    }
  });
});
