// xattrs through a real mount. An image whose entries carry xattrs shows them, and a
// missing name is ENODATA. An image with none tells the kernel xattrs are unsupported
// (the kernel then stops asking: ls -l asked twice per file), so callers get EOPNOTSUPP,
// which ls, cp -a and tar take as "no xattrs".
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';

/** What os.getxattr gives for each (path, name): the value, or the errno's name. */
function getxattrs(queries: ReadonlyArray<readonly [string, string]>): string[] {
  const script = `
import errno, json, os, sys
out = []
for p, n in json.loads(sys.argv[1]):
    try: out.append(os.getxattr(p, n, follow_symlinks=False).decode())
    except OSError as e: out.append(errno.errorcode[e.errno])
print(json.dumps(out))`;
  return JSON.parse(execFileSync('python3', ['-c', script, JSON.stringify(queries)], { encoding: 'utf8' })) as string[];
}

describe('xattrs through a mount', () => {
  let plain: ServedImage | undefined;
  let tagged: ServedImage | undefined;

  before(async () => {
    plain = await serveImage('xattrs/none', [entries([{ name: 'etc/', type: 'dir' }, { name: 'etc/a', body: 'a' }, { name: 'bin/', type: 'dir' }, { name: 'bin/ping', body: 'x', mode: 0o755 }])]);
    tagged = await serveImage('xattrs/some', [entries([
      { name: 'bin/', type: 'dir' },
      { name: 'bin/ping', body: 'x', mode: 0o755, xattrs: { 'user.note': 'hello' } },
      { name: 'bin/ls', body: 'y', mode: 0o755 },
    ])]);
  });
  after(async () => {
    await plain?.stop();
    await tagged?.stop();
  });

  it('an image with xattrs shows them; a missing one is ENODATA', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', join(tagged?.dir ?? '', 'root'), '--no-background-fetch', tagged?.ref ?? ''], join(tagged?.dir ?? '', 'mnt'));
      const got = getxattrs([[join(m.mountpoint, 'bin/ping'), 'user.note'], [join(m.mountpoint, 'bin/ping'), 'user.other'], [join(m.mountpoint, 'bin/ls'), 'user.note']]);
      assert.deepEqual(got, ['hello', 'ENODATA', 'ENODATA']);
    } finally {
      await m?.stop();
    }
  });

  it('an image without xattrs: unsupported (EOPNOTSUPP), and ls -l still lists every file', async () => {
    let m: TestMount | undefined;
    try {
      m = await mountDaemon(['--root', join(plain?.dir ?? '', 'root'), '--no-background-fetch', plain?.ref ?? ''], join(plain?.dir ?? '', 'mnt'));
      const got = getxattrs([[join(m.mountpoint, 'etc/a'), 'security.capability'], [join(m.mountpoint, 'bin/ping'), 'user.note']]);
      assert.deepEqual(got, ['ENOTSUP', 'ENOTSUP']); // EOPNOTSUPP, the same number on Linux
      const ls = execFileSync('ls', ['-l', join(m.mountpoint, 'bin')], { encoding: 'utf8' });
      assert.match(ls, /-rwxr-xr-x +1 root root +1 .* ping\n/);
    } finally {
      await m?.stop();
    }
  });
});
