import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { earlyFetchable, plainDaemonMount, plainMount } from '../../src/cli/daemon-args.js';

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

describe('mount read plainly for its first requests (the early fetch)', () => {
  it('reads src, options and flags, --no-X and X=false', () => {
    const m = plainMount(['--root', '/r', '--plain-http', 'mount', 'reg:5000/a/b:1', '/mnt/x', '--no-prefetch', '--allow-other=false']);
    assert.ok(m);
    assert.equal(m.src, 'reg:5000/a/b:1');
    assert.equal(m.daemon, false);
    assert.equal(m.options.get('plain-http'), true);
    assert.equal(m.options.get('prefetch'), false);
    assert.equal(m.options.get('allow-other'), false);
    assert.equal(plainMount(['mount', '--unknown=value', 'a', 'b']), undefined, 'a valued option it does not know');
  });

  it('fetches early only from a registry, and not when options change the first requests', () => {
    const early = (args: string[]) => earlyFetchable(plainMount(args) ?? assert.fail(args.join(' ')));
    assert.deepEqual(early(['mount', 'reg:5000/a:1', '/m']), { ref: 'reg:5000/a:1', plainHttp: false, prefetch: true, learned: true });
    assert.deepEqual(early(['--plain-http', 'mount', 'reg:5000/a:1', '/m', '--daemon']), { ref: 'reg:5000/a:1', plainHttp: true, prefetch: true, learned: true });
    assert.deepEqual(early(['--plain-http=false', 'mount', 'reg:5000/a:1', '/m']), { ref: 'reg:5000/a:1', plainHttp: false, prefetch: true, learned: true });
    assert.deepEqual(early(['mount', 'reg:5000/a:1', '/m', '--no-prefetch']), { ref: 'reg:5000/a:1', plainHttp: false, prefetch: false, learned: true });
    assert.deepEqual(early(['mount', 'reg:5000/a:1', '/m', '--no-learned-prefetch']), { ref: 'reg:5000/a:1', plainHttp: false, prefetch: true, learned: false });
    for (const args of [
      ['mount', 'oci:/layout:1', '/m'],
      ['mount', 'dir:/rootfs', '/m'],
      ['--mirror', 'm:5000', 'mount', 'reg:5000/a:1', '/m'],
      ['--insecure', 'mount', 'reg:5000/a:1', '/m'],
      ['--max-toc-bytes', '1000', 'mount', 'reg:5000/a:1', '/m'],
    ]) assert.equal(early(args), undefined, args.join(' '));
  });
});
