// A local directory tree as tar entries: regular files, directories, symlinks, hard links
// (by inode), devices and fifos, in sorted depth-first order as tar writes them, parents
// before children. `convert dir:` streams it (bodies read as they are written); the
// benchmarks build images from it in memory.
import { lstatSync, readdirSync, readFileSync, readlinkSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { emptyHeader, type TarEntry, type TarHeader, type TarType } from './tar.js';

function typeOf(st: Stats): TarType | undefined {
  if (st.isFile()) return 'reg';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  if (st.isCharacterDevice()) return 'char';
  if (st.isBlockDevice()) return 'block';
  if (st.isFIFO()) return 'fifo';
  return undefined; // sockets have no tar form
}

// Linux's dev_t encoding (glibc's major()/minor()).
const major = (rdev: number): number => Number((BigInt(rdev) >> 8n) & 0xfffn) | Number((BigInt(rdev) >> 32n) & ~0xfffn);
const minor = (rdev: number): number => (rdev & 0xff) | Number((BigInt(rdev) >> 12n) & ~0xffn);

export interface TreeItem {
  /** `size` is the file's size for a regular file with a body, else 0. */
  readonly header: TarHeader;
  /** Where a regular file's body is (undefined for everything else, hard links included). */
  readonly path: string | undefined;
}

/** Everything under `dir`, named `prefix/…` (prefix without slashes at its ends; its own directories first). */
export function* walkTree(dir: string, prefix = ''): Generator<TreeItem> {
  const links = new Map<string, string>();
  const parts = prefix.split('/').filter(Boolean);
  for (let i = 1; i <= parts.length; i++) yield { header: emptyHeader(`${parts.slice(0, i).join('/')}/`, 'dir'), path: undefined };
  // Depth first with an explicit stack, not recursion: a tree can be deeper than the
  // call stack (issue 22). Children are pushed in reverse so they come out sorted.
  const todo: Array<[string, string]> = [];
  const pushChildren = (abs: string, name: string | undefined): void => {
    const kids = readdirSync(abs).sort();
    for (let i = kids.length - 1; i >= 0; i--) {
      const child = kids[i] as string;
      todo.push([join(abs, child), name !== undefined ? `${name}/${child}` : child]);
    }
  };
  pushChildren(dir, parts.length > 0 ? parts.join('/') : undefined);
  for (let next = todo.pop(); next !== undefined; next = todo.pop()) {
    const [abs, name] = next;
    const st = lstatSync(abs);
    const type = typeOf(st);
    if (type === undefined) continue;
    const h = emptyHeader(type === 'dir' ? `${name}/` : name, type);
    h.mode = st.mode & 0o7777;
    h.uid = st.uid;
    h.gid = st.gid;
    h.mtime = Math.floor(st.mtimeMs / 1000);
    let path: string | undefined;
    const key = `${st.dev}:${st.ino}`;
    if (type === 'reg' && st.nlink > 1 && links.has(key)) {
      h.type = 'hardlink';
      h.linkName = links.get(key) as string;
    } else if (type === 'reg') {
      if (st.nlink > 1) links.set(key, name);
      h.size = st.size;
      path = abs;
    } else if (type === 'symlink') {
      h.linkName = readlinkSync(abs);
    } else if (type === 'char' || type === 'block') {
      h.devMajor = major(st.rdev);
      h.devMinor = minor(st.rdev);
    }
    yield { header: h, path };
    if (type === 'dir') pushChildren(abs, name);
  }
}

/** The tree's entries with their bodies in memory. */
export function directoryEntries(dir: string, prefix: string): TarEntry[] {
  return [...walkTree(dir, prefix)].map(({ header, path }) => {
    const body = path !== undefined ? readFileSync(path) : Buffer.alloc(0);
    return { header: { ...header, size: body.length }, body };
  });
}
