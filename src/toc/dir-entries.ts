// A local directory tree as tar entries (the writer's input): regular files, directories,
// symlinks, hard links (by inode), devices and fifos, in sorted depth-first order as tar
// writes them. Used to build images from a directory (benchmarks now, convert later).
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { emptyHeader, type TarEntry, type TarType } from './tar.js';

function typeOf(st: Stats): TarType | undefined {
  if (st.isFile()) return 'reg';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets have no tar form
}

/** Entries for everything under `dir`, named `prefix/…` (prefix without slashes at its ends). */
export function directoryEntries(dir: string, prefix: string): TarEntry[] {
  const out: TarEntry[] = [];
  const links = new Map<string, string>();
  const parts = prefix.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) out.push({ header: emptyHeader(`${parts.slice(0, i).join('/')}/`, 'dir'), body: Buffer.alloc(0) });
  const walk = (abs: string, name: string): void => {
    const st = lstatSync(abs);
    const type = typeOf(st);
    if (type === undefined) return;
    const h = emptyHeader(type === 'dir' ? `${name}/` : name, type);
    h.mode = st.mode & 0o7777;
    h.uid = st.uid;
    h.gid = st.gid;
    h.mtime = Math.floor(st.mtimeMs / 1000);
    let body = Buffer.alloc(0);
    const key = `${st.dev}:${st.ino}`;
    if (type === 'reg' && st.nlink > 1 && links.has(key)) {
      h.type = 'hardlink';
      h.linkName = links.get(key) as string;
    } else if (type === 'reg') {
      if (st.nlink > 1) links.set(key, name);
      body = readFileSync(abs);
      h.size = body.length;
    } else if (type === 'symlink') {
      h.linkName = readlinkSync(abs);
    } else if (type === 'char' || type === 'block') {
      h.devMajor = Math.floor(st.rdev / 256);
      h.devMinor = st.rdev % 256;
    }
    out.push({ header: h, body });
    if (type === 'dir') for (const child of readdirSync(abs).sort()) walk(join(abs, child), `${name}/${child}`);
  };
  for (const child of readdirSync(dir).sort()) walk(join(dir, child), parts.length > 0 ? `${parts.join('/')}/${child}` : child);
  return out;
}
