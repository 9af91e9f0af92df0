// What is mounted at or below a snapshot's directory, from /proc/self/mountinfo (reading it
// touches no mount, so a dead FUSE mount cannot hang us). A recursive delete goes through
// mounts into the filesystems underneath, so a directory is deleted only when this is empty.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

/** The mountpoints in `mountinfo` (the file's text) at or below `dir`, deepest first. */
export function mountsUnder(dir: string, mountinfo: string = readFileSync('/proc/self/mountinfo', 'utf8')): string[] {
  const want = resolve(dir);
  const found = new Set<string>();
  for (const line of mountinfo.split('\n')) {
    // Field 5 is the mountpoint, with space, tab, newline and backslash as octal escapes.
    const at = line.split(' ')[4];
    if (at === undefined) continue;
    const path = at.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
    if (path === want || path.startsWith(`${want}/`)) found.add(path);
  }
  return [...found].sort((a, b) => b.length - a.length);
}
