// `stargzfs stat <src> <path> [--json]`
import type { ImageView } from '../../toc/view.js';
import { resolveInImage } from '../resolve-path.js';
import type { OpenImage } from '../../layer/image.js';
import { entryInfo, formatTime, modeString, printable } from '../entry-info.js';
import { normalize } from './ls.js';
import { write, writeJson } from '../output.js';

export async function stat(image: OpenImage, view: ImageView, path: string, json: boolean): Promise<void> {
  const p = normalize(path);
  const { node } = resolveInImage(view, p, false); // lstat: links in the middle are followed
  const e = entryInfo(view, node, p);
  const layer = image.layers.find((l) => l.row?.id === node.layerId);
  const blocks = Math.ceil((e.size ?? 0) / 4096) * 8;
  if (json) {
    await writeJson({
      ...e, blocks, layer: layer?.desc.digest ?? null, layerIndex: layer?.index ?? null, verified: layer?.row?.verified === 1,
    });
    return;
  }
  const lines = [
    `  File: ${printable(p)}${e.link !== null ? ` -> ${printable(e.link)}` : ''}`,
    `  Size: ${e.size ?? 0}\tBlocks: ${blocks}\tIO Block: 4096\t${e.type}`,
    ` Inode: ${e.ino}\tLinks: ${e.nlink}${e.rdev !== null ? `\tDevice type: ${e.rdev}` : ''}`,
    `Access: (${e.mode}/${modeString(e.type, Number.parseInt(e.mode, 8))})\tUid: ${e.uid}\tGid: ${e.gid}`,
    `Modify: ${e.mtime === null ? '- (not defined by the image)' : `${formatTime(e.mtime)} (${e.mtime})`}`,
    ...Object.entries(e.xattrs).map(([k, v]) => ` Xattr: ${printable(k)}=${v}`),
    ` Layer: ${layer !== undefined ? `${layer.index} ${layer.desc.digest}${layer.row?.verified === 1 ? '' : ' (UNVERIFIED)'}` : '(merged root)'}`,
  ];
  await write(`${lines.join('\n')}\n`);
}
