// `stargzfs cat <src> <path>...`: raw bytes to stdout, every chunk verified first.
// Symlinks are followed inside the image, as cat(1) follows them on a real rootfs.
import { IsADirectoryError } from '../../errors.js';
import { isDir, type ImageView, type ViewNode } from '../../toc/view.js';
import { S_IFMT, S_IFREG } from '../../toc/inode-db.js';
import type { FileReader } from '../../layer/file-reader.js';
import { resolveInImage } from '../resolve-path.js';
import { write } from '../output.js';

export function resolveFollow(view: ImageView, path: string): { node: ViewNode; path: string } {
  return resolveInImage(view, path, true);
}

export async function cat(view: ImageView, reader: FileReader, paths: readonly string[]): Promise<void> {
  for (const path of paths) {
    const { node, path: p } = resolveFollow(view, path);
    if (isDir(node)) throw new IsADirectoryError({ path: p });
    if ((node.mode & S_IFMT) !== S_IFREG) continue; // devices and fifos have no content here
    for await (const piece of reader.stream(node, p)) await write(piece);
  }
}
