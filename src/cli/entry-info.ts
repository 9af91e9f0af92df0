// One node as the CLI prints it (ls -l, stat, --json). Field meanings follow
// stat(2); `size` is null for directories and `mtime` null when no layer defines it.
import { S_IFBLK, S_IFCHR, S_IFDIR, S_IFIFO, S_IFLNK, S_IFMT, S_IFREG } from '../toc/inode-db.js';
import type { ImageView, ViewNode } from '../toc/view.js';

export type FileType = 'dir' | 'reg' | 'symlink' | 'char' | 'block' | 'fifo';

export interface EntryInfo {
  path: string;
  type: FileType;
  /** Permission bits incl. setuid/setgid/sticky, 4 octal digits. */
  mode: string;
  uid: number;
  gid: number;
  size: number | null;
  mtime: number | null;
  link: string | null;
  nlink: number;
  rdev: string | null;
  /** name → base64 value. */
  xattrs: Record<string, string>;
  ino: number;
}

export function fileType(mode: number): FileType {
  switch (mode & S_IFMT) {
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    case S_IFCHR: return 'char';
    case S_IFBLK: return 'block';
    case S_IFIFO: return 'fifo';
    case S_IFREG:
    default: return 'reg';
  }
}

export function entryInfo(view: ImageView, node: ViewNode, path: string): EntryInfo {
  const type = fileType(node.mode);
  const xattrs: Record<string, string> = {};
  for (const x of view.xattrs(node)) xattrs[x.name] = x.value.toString('base64');
  return {
    path,
    type,
    mode: (node.mode & 0o7777).toString(8).padStart(4, '0'),
    uid: node.uid,
    gid: node.gid,
    size: type === 'dir' ? null : type === 'reg' || type === 'symlink' ? node.size : 0,
    mtime: node.mtime,
    link: type === 'symlink' ? node.link : null,
    nlink: node.nlink,
    rdev: type === 'char' || type === 'block' ? `${node.rdevMajor}:${node.rdevMinor}` : null,
    xattrs,
    ino: node.ino,
  };
}

const PERM = 'rwxrwxrwx';

/** `drwxr-xr-x` as ls shows it, with s/S, t/T for setuid, setgid and sticky. */
export function modeString(type: FileType, mode: number): string {
  const t = { dir: 'd', reg: '-', symlink: 'l', char: 'c', block: 'b', fifo: 'p' }[type];
  const c = [...PERM].map((ch, i) => (mode & (0o400 >> i) ? ch : '-'));
  const special = (i: number, bit: number, on: string, off: string): void => {
    if (mode & bit) c[i] = c[i] === '-' ? off : on;
  };
  special(2, 0o4000, 's', 'S');
  special(5, 0o2000, 's', 'S');
  special(8, 0o1000, 't', 'T');
  return t + c.join('');
}

export function formatTime(sec: number | null): string {
  if (sec === null) return '-'.padStart(16);
  const d = new Date(sec * 1000);
  if (Number.isNaN(d.getTime())) return String(sec);
  return d.toISOString().replace('T', ' ').slice(0, 16);
}

/** Printable name: control bytes and backslashes escaped, so one entry is one line. */
export function printable(s: string): string {
  return s.replace(/[\\\x00-\x1f\x7f]/g, (ch) => (ch === '\\' ? '\\\\' : `\\x${ch.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

export function longLine(e: EntryInfo, name: string): string {
  const size = e.rdev !== null ? e.rdev.replace(':', ', ') : e.size === null ? '-' : String(e.size);
  const link = e.link !== null ? ` -> ${printable(e.link)}` : '';
  const m = Number.parseInt(e.mode, 8);
  return `${modeString(e.type, m)} ${String(e.nlink).padStart(3)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${formatTime(e.mtime)} ${printable(name)}${link}`;
}
