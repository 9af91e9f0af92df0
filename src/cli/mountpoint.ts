// The mountpoint as the system sees it: a dead FUSE mount a killed server left behind
// (ENOTCONN), and detaching a mount.
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';

/** True when the mountpoint holds a FUSE mount whose server is gone (ENOTCONN). */
export function isDeadMount(mountpoint: string): boolean {
  try {
    statSync(mountpoint);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ENOTCONN';
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Detaches the filesystem mounted there (lazily: open files keep it alive until closed). */
export function detach(mountpoint: string): void {
  try {
    execFileSync('fusermount3', ['-u', '-z', mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch {
    execFileSync('umount', ['-l', mountpoint], { stdio: ['ignore', 'ignore', 'pipe'] });
  }
}
