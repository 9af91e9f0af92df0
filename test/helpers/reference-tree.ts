// An in-memory reference for the tree rules of ESTARGZ.md §4.5, written the plain way:
// nested maps, paths resolved by walking from the root, link counts computed at the end
// from what is reachable. The SQLite importer must build the same tree.
import { cleanName } from '../../src/toc/names.js';

export interface RefNode {
  id: number;
  type: string;
  perm: number;
  uid: number;
  link: string | null;
  implicit: boolean;
  children: Map<string, RefNode> | null;
}

export function referenceTree(entries: ReadonlyArray<Record<string, unknown>>): RefNode {
  let next = 0;
  const node = (type: string, e?: Record<string, unknown>): RefNode => ({
    id: next++,
    type,
    perm: type === 'symlink' ? 0o777 : e ? Number(e['mode'] ?? 0) & 0o7777 : 0o755,
    uid: e ? Number(e['uid'] ?? 0) : 0,
    link: type === 'symlink' ? String(e?.['linkName'] ?? '') : null,
    implicit: e === undefined,
    children: type === 'dir' ? new Map() : null,
  });
  const root = node('dir');
  const lookup = (path: string): RefNode | undefined => {
    let n: RefNode | undefined = root;
    for (const part of path === '' ? [] : path.split('/')) n = n?.children?.get(part);
    return n;
  };
  const ensureDir = (path: string): RefNode => {
    let n = root;
    for (const part of path === '' ? [] : path.split('/')) {
      const c = n.children?.get(part);
      if (c?.children) n = c;
      else {
        const d = node('dir');
        n.children?.set(part, d);
        n = d;
      }
    }
    return n;
  };
  const split = (path: string): [string, string] => {
    const i = path.lastIndexOf('/');
    return i < 0 ? ['', path] : [path.slice(0, i), path.slice(i + 1)];
  };
  for (const e of entries) {
    const type = String(e['type']);
    if (type === 'chunk') continue;
    const path = cleanName(String(e['name']));
    if (type === 'hardlink') {
      const target = lookup(cleanName(String(e['linkName'] ?? '')));
      if (path === '' || target === undefined || target.children) continue;
      const [dir, base] = split(path);
      ensureDir(dir).children?.set(base, target);
      continue;
    }
    if (path === '') {
      if (type === 'dir') Object.assign(root, { perm: Number(e['mode'] ?? 0) & 0o7777, uid: Number(e['uid'] ?? 0), implicit: false });
      continue;
    }
    const existing = lookup(path);
    if (type === 'dir' && existing?.children) {
      Object.assign(existing, { perm: Number(e['mode'] ?? 0) & 0o7777, uid: Number(e['uid'] ?? 0), implicit: false });
      continue;
    }
    const [dir, base] = split(path);
    ensureDir(dir).children?.set(base, node(type, e));
  }
  return root;
}

/** nlink as the kernel would count it in this tree: names for files, 2 + subdirs for dirs. */
export function referenceLinks(root: RefNode): Map<number, number> {
  const names = new Map<number, number>();
  const walk = (d: RefNode): void => {
    let subdirs = 0;
    for (const c of d.children?.values() ?? []) {
      if (c.children) {
        subdirs++;
        walk(c);
      } else names.set(c.id, (names.get(c.id) ?? 0) + 1);
    }
    names.set(d.id, 2 + subdirs);
  };
  walk(root);
  return names;
}
