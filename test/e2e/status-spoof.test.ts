// An image that ships its own /.stargzfs (issue 22, item 5): a directory with a forged
// status.json, a regular file, a symlink. The mount's control directory wins over all of
// them, in the merged view and in each --layer view, also after the root is listed, and
// `stargzfs status` / `unmount` read the real status file only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { lstatSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import { runCli } from '../helpers/cli.js';
import { alive } from '../../src/cli/pids.js';
import { mountInfo } from '../../src/service/mountpoint.js';
import { STATUS_DIR_INO } from '../../src/fs/operations.js';

const FORGED = JSON.stringify({ pid: 1, image: 'evil.example/forged:latest', manifest: 'sha256:forged', startedAt: '2000-01-01T00:00:00Z', metrics: null, mountpoint: '/', layers: [] });

const LAYERS = [
  entries([{ name: 'hello.txt', body: 'hello\n' }, { name: '.stargzfs/', type: 'dir' }, { name: '.stargzfs/status.json', body: FORGED }]),
  entries([{ name: '.stargzfs', body: FORGED }]),
  entries([{ name: '.stargzfs', link: 'hello.txt' }]),
];

interface Status { pid: number; image: string; layers: unknown[] }

describe('an image with its own /.stargzfs', () => {
  let served: ServedImage | undefined;
  let n = 0;
  const fresh = (name: string): string => join(served?.dir ?? '', `${name}-${++n}`);

  before(async () => {
    served = await serveImage('spoof/img', LAYERS);
  });
  after(async () => {
    await served?.stop();
  });

  for (const view of [[], ['--layer', '0'], ['--layer', '1'], ['--layer', '2']]) {
    it(`${view.length === 0 ? 'merged' : view.join(' ')}: not listed, the status file is the server's, status and unmount are not fooled`, async () => {
      const s = served as ServedImage;
      let m: TestMount | undefined;
      try {
        m = await mountDaemon([...view, '--root', fresh('root'), '--no-background-fetch', s.ref], fresh('mnt'));
        const mp = m.mountpoint;
        // Listing the root used to hand the kernel the image's entry, whose dentry then hid ours.
        assert.ok(!readdirSync(mp).includes('.stargzfs'), 'the image entry named .stargzfs is not listed');
        readdirSync(mp, { withFileTypes: true });
        assert.equal(lstatSync(join(mp, '.stargzfs')).ino, STATUS_DIR_INO);
        assert.ok(lstatSync(join(mp, '.stargzfs')).isDirectory());
        const file = JSON.parse(readFileSync(join(mp, '.stargzfs', 'status.json'), 'utf8')) as Status;
        assert.equal(file.pid, m.pid);
        assert.notEqual(file.pid, 1);
        const st = await runCli(['status', '--json', mp]);
        assert.equal(st.code, 0, st.stderr);
        const shown = JSON.parse(st.stdout.toString()) as Status;
        assert.equal(shown.pid, m.pid);
        assert.match(shown.image, /spoof\/img/);
        assert.equal(shown.layers.length, LAYERS.length);
        const text = await runCli(['status', mp]);
        assert.doesNotMatch(text.stdout.toString(), /forged/);

        const pid = m.pid;
        const u = await runCli(['unmount', mp]);
        assert.equal(u.code, 0, u.stderr);
        assert.equal(mountInfo(mp), undefined, 'unmounted');
        assert.equal(alive(pid), false, 'unmount waited for the real server');
      } finally {
        await m?.stop();
      }
    });
  }

  it('a forged status file outside a stargzfs mount is not a mount', async () => {
    const dir = fresh('plain');
    mkdirSync(join(dir, '.stargzfs'), { recursive: true });
    writeFileSync(join(dir, '.stargzfs', 'status.json'), FORGED);
    const st = await runCli(['status', dir]);
    assert.equal(st.code, 3, st.stderr);
    assert.match(st.stderr, /no stargzfs mount there/);
    const u = await runCli(['unmount', dir]);
    assert.equal(u.code, 3, u.stderr);
  });
});
