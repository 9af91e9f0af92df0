// `stargzfs cat <src> <path>...`: raw bytes to stdout, every chunk verified first.
// Symlinks are followed inside the image, as cat(1) follows them on a real rootfs.
import { IsADirectoryError, NotFoundError } from '../../errors.js';
import { isDir, resolvePath, type ImageView, type ViewNode } from '../../toc/view.js';
import { S_IFLNK, S_IFMT, S_IFREG } from '../../toc/inode-db.js';
import type { FileReader } from '../../layer/file-reader.js';
import { normalize } from './ls.js';
import { write } from '../output.js';

const MAX_SYMLINK_HOPS = 40;

export function resolveFollow(view: ImageView, path: string): { node: ViewNode; path: string } {
  let p = normalize(path);
  for (let hop = 0; hop <= MAX_SYMLINK_HOPS; hop++) {
    const node = resolvePath(view, p);
    if ((node.mode & S_IFMT) !== S_IFLNK) return { node, path: p };
    const target = node.link ?? '';
    const base = p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '';
    const joined = target.startsWith('/') ? target : `${base}/${target}`;
    const out: string[] = [];
    for (const part of joined.split('/')) {
      if (part === '' || part === '.') continue;
      if (part === '..') out.pop();
      else out.push(part);
    }
    p = out.length === 0 ? '.' : out.join('/');
  }
  throw new NotFoundError({ path: `${path} (too many levels of symbolic links)` });
}

export async function cat(view: ImageView, reader: FileReader, paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    const { node, path: p } = resolveFollow(view, path);
    if (isDir(node)) throw new IsADirectoryError({ path: p });
    if ((node.mode & S_IFMT) !== S_IFREG) continue; // devices and fifos have no content here
    for await (const piece of reader.stream(node, p)) await write(piece);
  }
}
