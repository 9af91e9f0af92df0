// `stargzfs ls <src> [path] [-l] [-R] [--json]`
import { isDir, type ImageView, type ViewNode } from '../../toc/view.js';
import { resolveInImage } from '../resolve-path.js';
import { entryInfo, longLine, printable, type EntryInfo } from '../entry-info.js';
import { write, writeJson } from '../output.js';

export interface LsOptions {
  long: boolean;
  recursive: boolean;
  json: boolean;
}

const join = (dir: string, name: string): string => (dir === '.' || dir === '' ? name : `${dir}/${name}`);

export async function ls(view: ImageView, paths: readonly string[], opts: LsOptions): Promise<void> {
  const all: EntryInfo[] = [];
  for (const [i, path] of paths.entries()) {
    if (!opts.json && paths.length > 1) await write(`${i > 0 ? '\n' : ''}${opts.recursive ? '' : `${printable(normalize(path))}:\n`}`);
    await listOne(view, path, opts, all);
  }
  if (opts.json) await writeJson(all);
}

async function listOne(view: ImageView, path: string, opts: LsOptions, all: EntryInfo[]): Promise<void> {
  const start = normalize(path);
  // Links in the middle are followed; the last one is listed as itself, as ls -l does.
  const { node } = resolveInImage(view, start, false);
  if (!isDir(node)) {
    const e = entryInfo(view, node, start);
    if (opts.json) all.push(e);
    else await write(`${opts.long ? longLine(e, start) : printable(start)}\n`);
    return;
  }
  const listDir = async (dir: ViewNode, dirPath: string, header: boolean): Promise<void> => {
    const entries = view.readdir(dir).map((name) => {
      const child = view.lookup(dir, name);
      return child === undefined ? undefined : ([name, child] as const);
    });
    if (!opts.json && header) await write(`\n${printable(dirPath)}:\n`);
    const subdirs: Array<[string, ViewNode]> = [];
    for (const e of entries) {
      if (e === undefined) continue;
      const [name, child] = e;
      const p = join(dirPath, name);
      if (opts.json) all.push(entryInfo(view, child, p));
      else await write(`${opts.long ? longLine(entryInfo(view, child, p), name) : printable(name)}\n`);
      if (opts.recursive && isDir(child)) subdirs.push([p, child]);
    }
    for (const [p, child] of subdirs) await listDir(child, p, true);
  };
  if (!opts.json && opts.recursive) await write(`${printable(start)}:\n`);
  await listDir(node, start, false);
}

export function normalize(path: string): string {
  const p = path.split('/').filter((s) => s !== '' && s !== '.').join('/');
  return p === '' ? '.' : p;
}
