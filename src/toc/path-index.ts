// Path → node id while a TOC is imported, safe against names a hostile image chooses.
// V8 hashes a string longer than 16,383 characters by its length alone, so deep paths of
// one length (a directory 8,000 levels down holding thousands of files) all collide in a
// Map: 4,000 of them took 23 s to insert. Long paths are therefore keyed by their sha256.
// And a directory replaced by a non-directory drops its subtree in time proportional to
// the subtree, through each directory's own list of names, not by scanning every path.
import { createHash } from 'node:crypto';
import { dirname } from './names.js';

/** Paths at least this long are keyed by their digest (well under V8's 16,383). */
const LONG_PATH = 1024;

const keyOf = (path: string): string => (path.length < LONG_PATH ? path : `\0${createHash('sha256').update(path).digest('base64')}`);

export class PathIndex {
  private readonly ids = new Map<string, number>();
  /** Per directory (by key), the paths bound directly in it (by key). */
  private readonly children = new Map<string, Map<string, string>>();

  get(path: string): number | undefined {
    return this.ids.get(keyOf(path));
  }

  has(path: string): boolean {
    return this.ids.has(keyOf(path));
  }

  set(path: string, id: number): void {
    const key = keyOf(path);
    if (!this.ids.has(key) && path !== '') {
      const parent = keyOf(dirname(path));
      let names = this.children.get(parent);
      if (names === undefined) {
        names = new Map();
        this.children.set(parent, names);
      }
      names.set(key, path);
    }
    this.ids.set(key, id);
  }

  /** Forgets every path below `path` (not `path` itself), telling `dropped` of each one's id. */
  dropBelow(path: string, dropped: (id: number) => void): void {
    const stack = [keyOf(path)];
    for (let dir = stack.pop(); dir !== undefined; dir = stack.pop()) {
      const names = this.children.get(dir);
      if (names === undefined) continue;
      this.children.delete(dir);
      for (const key of names.keys()) {
        const id = this.ids.get(key);
        if (id === undefined) continue;
        this.ids.delete(key);
        dropped(id);
        stack.push(key);
      }
    }
  }
}
