// The mountpoint as the system sees it: a dead FUSE mount a killed server left behind
// (ENOTCONN), and detaching a mount.
import { execFileSync } from 'node:child_process';
import { readFileSync, statfsSync, statSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';

/**
 * True when the mountpoint holds a FUSE mount whose server is gone (ENOTCONN). statfs, not
 * stat: the kernel answers a stat from attributes it still caches (for a day, on our
 * mounts) without asking the dead server, but it always asks for statfs.
 */
export function isDeadMount(mountpoint: string): boolean {
  try {
    statfsSync(mountpoint);
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

interface MountEntry {
  readonly at: string;
  readonly dev: string;
  readonly fstype: string;
}

/**
 * The mount table, from `mountinfo` (default: this process's, read from /proc without
 * touching any mount, so a dead FUSE mount cannot hang us).
 */
function mountTable(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of mountinfo.split('\n')) {
    const f = line.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    // Field 5 is the mountpoint, with space, tab, newline and backslash as octal escapes.
    const at = (f[4] ?? '').replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    out.push({ at, dev: f[2] ?? '', fstype: f[sep + 1] ?? '' });
  }
  return out;
}

/** What is mounted exactly at `mountpoint` (the last mount there). */
export function mountInfo(mountpoint: string): { dev: string; fstype: string } | undefined {
  const want = resolve(mountpoint);
  return mountTable().filter((m) => m.at === want).at(-1);
}

/**
 * The mountpoints at or below `dir`, deepest first (a recursive delete would go through
 * them into the filesystems underneath).
 */
export function mountsUnder(dir: string, mountinfo?: string): string[] {
  const want = resolve(dir);
  const found = new Set(mountTable(mountinfo).map((m) => m.at).filter((at) => at === want || at.startsWith(`${want}/`)));
  return [...found].sort((a, b) => b.length - a.length);
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
