// mountsUnder on mountinfo text: prefixes that are not parents, escaped names, deepest first.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mountsUnder } from '../../src/service/mountpoint.js';

const MOUNTINFO = [
  '22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw',
  '40 22 0:45 / /var/lib/s/snapshots/12/fs ro,nosuid,nodev,relatime shared:20 - fuse.stargzfs stargzfs ro,user_id=0,group_id=0,allow_other',
  '41 22 0:46 / /var/lib/s/snapshots/123/fs rw shared:21 - fuse.stargzfs stargzfs rw',
  '42 40 0:47 / /var/lib/s/snapshots/12/fs/deeper rw shared:22 - tmpfs tmpfs rw',
  '43 22 0:48 / /var/lib/s/snapshots/with\\040space/fs rw shared:23 - tmpfs tmpfs rw',
  '',
].join('\n');

describe('mount table', () => {
  it('mounts at or below a directory, deepest first; /…/12 is not a parent of /…/123', () => {
    assert.deepEqual(mountsUnder('/var/lib/s/snapshots/12', MOUNTINFO), ['/var/lib/s/snapshots/12/fs/deeper', '/var/lib/s/snapshots/12/fs']);
    assert.deepEqual(mountsUnder('/var/lib/s/snapshots/12/fs/', MOUNTINFO), ['/var/lib/s/snapshots/12/fs/deeper', '/var/lib/s/snapshots/12/fs']);
    assert.deepEqual(mountsUnder('/var/lib/s/snapshots/with space', MOUNTINFO), ['/var/lib/s/snapshots/with space/fs']);
    assert.deepEqual(mountsUnder('/var/lib/s/snapshots/9', MOUNTINFO), []);
  });

  it('reads this process\'s table by default', () => {
    assert.ok(mountsUnder('/').includes('/'));
  });
});
