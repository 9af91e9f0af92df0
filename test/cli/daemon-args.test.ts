import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { plainDaemonMount } from '../../src/cli/daemon-args.js';

describe('mount --daemon read plainly (the small entry)', () => {
  it('finds the mountpoint and --root wherever the options are', () => {
    assert.deepEqual(plainDaemonMount(['mount', '--daemon', 'img:1', '/mnt/x']), { mountpoint: '/mnt/x', root: undefined });
    assert.deepEqual(plainDaemonMount(['--root', '/r', 'mount', 'img:1', '/mnt/x', '--daemon', '--metrics', ':9500', '--no-prefetch']), { mountpoint: '/mnt/x', root: '/r' });
    assert.deepEqual(plainDaemonMount(['--root=/r', 'mount', '--layer', '-1', '--daemon', 'oci:/a:b', 'm']), { mountpoint: 'm', root: '/r' });
  });
  it('leaves everything else to the CLI', () => {
    for (const args of [
      ['mount', 'img', '/mnt'], // not --daemon
      ['mount', '--daemon', 'img'], // a positional missing
      ['mount', '--daemon', 'img', '/mnt', 'extra'],
      ['cat', '--daemon', 'img', '/p'],
      ['mount', '--daemon', '--help', 'img', '/mnt'],
      ['mount', '--daemon', 'img', '/mnt', '--root'], // a value missing
      ['mount', '--daemon', '--', 'img', '/mnt'],
      ['mount', '--daemon=false', 'img', '/mnt'],
    ]) assert.equal(plainDaemonMount(args), undefined, args.join(' '));
  });
});
