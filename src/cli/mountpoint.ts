// The mountpoint as the system sees it: a dead FUSE mount a killed server left behind
// (ENOTCONN), and detaching a mount.
import { execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

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

/** What is mounted exactly at `mountpoint` (the last mount there), from /proc without touching the mount itself. */
export function mountInfo(mountpoint: string): { dev: string; fstype: string } | undefined {
  const want = resolve(mountpoint);
  let found: { dev: string; fstype: string } | undefined;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const at = (f[4] ?? '').replace(/\\(\d{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (at === want) found = { dev: f[2] ?? '', fstype: f[sep + 1] ?? '' };
  }
  return found;
}

/**
 * Raises the kernel's read-ahead for the mount (its backing device info defaults to
 * 128 KiB, which caps FUSE reads of sequential files at that size whatever max_read is).
 * Returns the value set, or undefined where the kernel did not let us (not root).
 */
export function setReadAhead(mountpoint: string, kib: number): number | undefined {
  const dev = mountInfo(mountpoint)?.dev;
  if (dev === undefined) return undefined;
  try {
    writeFileSync(`/sys/class/bdi/${dev}/read_ahead_kb`, String(kib));
    return kib;
  } catch {
    return undefined;
  }
}
