// A path inside an image, resolved as the kernel resolves one on a mounted root: symlinks
// in the middle are followed (absolute targets from the image's root, `..` never above
// it), the last one only when asked (stat does not, cat does). Iterative, with at most
// MAX_SYMLINK_HOPS links followed in all, as Linux allows 40: a link cycle or a long
// chain in a hostile image ends in SymlinkLoopError, never in deep recursion.
import { NotADirectoryError, NotFoundError, SymlinkLoopError } from '../errors.js';
import { isDir, type ImageView, type ViewNode } from '../toc/view.js';
import { S_IFLNK, S_IFMT } from '../toc/inode-db.js';

export const MAX_SYMLINK_HOPS = 40;

export interface Resolved {
  readonly node: ViewNode;
  /** The path with every followed link replaced by where it led ('.' for the root). */
  readonly path: string;
}

export function resolveInImage(view: ImageView, path: string, followLast: boolean): Resolved {
  const root = view.root();
  // The directories walked so far, from the root down, and the names that reached them.
  const nodes: ViewNode[] = [];
  const names: string[] = [];
  // Components still to walk, the next one last.
  const todo = path.split('/').reverse();
  let hops = 0;
  while (todo.length > 0) {
    const part = todo.pop() as string;
    if (part === '' || part === '.') continue;
    if (part === '..') {
      nodes.pop();
      names.pop();
      continue;
    }
    const dir = nodes[nodes.length - 1] ?? root;
    const here = [...names, part].join('/');
    if (!isDir(dir)) throw new NotADirectoryError({ path: names.join('/') });
    const next = view.lookup(dir, part);
    if (next === undefined) throw new NotFoundError({ path: here });
    const more = todo.some((p) => p !== '' && p !== '.');
    if ((next.mode & S_IFMT) === S_IFLNK && (more || followLast)) {
      if (++hops > MAX_SYMLINK_HOPS) throw new SymlinkLoopError({ path: `${path} (at ${here})` });
      const target = next.link ?? '';
      if (target.startsWith('/')) {
        nodes.length = 0;
        names.length = 0;
      }
      todo.push(...target.split('/').reverse());
      continue;
    }
    nodes.push(next);
    names.push(part);
  }
  return { node: nodes[nodes.length - 1] ?? root, path: names.length === 0 ? '.' : names.join('/') };
}
