// Files of an image layout or archive, wherever they are: a directory, or members of a
// tar file (an OCI archive or `docker save` output) read in place by offset, never
// extracted.
import { createReadStream } from 'node:fs';
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path/posix';
import { ImageError } from '../errors.js';
import { cleanName, dirname } from '../toc/names.js';
import { padding, TarReader, type TarType } from '../toc/tar.js';

export interface SourceFiles {
  /** How messages name the place. */
  readonly where: string;
  /** A whole file, or undefined when there is none. */
  read(rel: string): Promise<Buffer | undefined>;
  /** A file's bytes in order. */
  stream(rel: string): AsyncIterable<Buffer>;
  close(): Promise<void>;
}

const isMissing = (err: unknown): boolean => (err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR';

export class DirFiles implements SourceFiles {
  constructor(private readonly dir: string) {}

  get where(): string {
    return this.dir;
  }

  async read(rel: string): Promise<Buffer | undefined> {
    try {
      return await readFile(join(this.dir, rel));
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw new ImageError(`cannot read ${join(this.dir, rel)}: ${(err as Error).message}`, {}, { cause: err });
    }
  }

  stream(rel: string): AsyncIterable<Buffer> {
    return createReadStream(join(this.dir, rel), { highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {}
}

interface Member {
  readonly offset: number;
  readonly size: number;
  readonly type: TarType;
  readonly linkName: string;
}

/** Members of a tar file, found by walking its headers once (bodies are skipped, not read). */
export class TarFiles implements SourceFiles {
  private constructor(
    readonly where: string,
    private readonly fh: FileHandle,
    private readonly members: ReadonlyMap<string, Member>,
  ) {}

  static async open(path: string): Promise<TarFiles> {
    let fh: FileHandle;
    try {
      fh = await open(path, 'r');
    } catch (err) {
      throw new ImageError(`cannot open image archive ${path}: ${(err as Error).message}`, {}, { cause: err });
    }
    try {
      return new TarFiles(path, fh, await indexTar(fh, (await fh.stat()).size, path));
    } catch (err) {
      await fh.close();
      throw err;
    }
  }

  async read(rel: string): Promise<Buffer | undefined> {
    const m = this.member(rel);
    if (m === undefined) return undefined;
    return readExactly(this.fh, m.offset, m.size, this.where);
  }

  stream(rel: string): AsyncIterable<Buffer> {
    const m = this.member(rel);
    if (m === undefined) throw new ImageError(`${this.where} has no ${rel}`);
    if (m.size === 0) return (async function* () {})();
    return createReadStream('', { fd: this.fh.fd, start: m.offset, end: m.offset + m.size - 1, autoClose: false, highWaterMark: 1 << 20 });
  }

  async close(): Promise<void> {
    await this.fh.close();
  }

  /** A regular member by name, following symbolic links (docker save links a repeated layer to its first copy). */
  private member(rel: string): Member | undefined {
    let name = cleanName(rel);
    for (let hops = 0; hops < 8; hops++) {
      const m = this.members.get(name);
      if (m === undefined) return undefined;
      if (m.type === 'reg') return m;
      if (m.type === 'symlink') name = cleanName(m.linkName.startsWith('/') ? m.linkName : join(dirname(name), m.linkName));
      else if (m.type === 'hardlink') name = cleanName(m.linkName);
      else return undefined;
    }
    throw new ImageError(`${this.where}: too many links resolving ${rel}`);
  }
}

/** Up to `length` bytes at `offset`: fewer only where the file ends. */
export async function readUpTo(fh: FileHandle, offset: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return buf.subarray(0, done);
}

async function readExactly(fh: FileHandle, offset: number, length: number, where: string): Promise<Buffer> {
  const buf = await readUpTo(fh, offset, length);
  if (buf.length < length) throw new ImageError(`${where} ends at ${offset + buf.length}, inside a member that should end at ${offset + length}`);
  return buf;
}

async function indexTar(fh: FileHandle, size: number, where: string): Promise<Map<string, Member>> {
  const members = new Map<string, Member>();
  let pos = 0;
  while (pos + 512 <= size) {
    const first = await readExactly(fh, pos, 512, where);
    if (first.every((b) => b === 0)) break;
    const reader = new TarReader();
    let got = reader.pushUntilHeader(first);
    let readPos = pos + 512;
    // Long names and PAX records come in entries of their own before the header.
    while (got === undefined) {
      const want = Math.min(64 << 10, size - readPos);
      if (want <= 0) throw new ImageError(`${where}: tar archive ends inside a header`);
      got = reader.pushUntilHeader(await readExactly(fh, readPos, want, where));
      readPos += want;
    }
    const offset = readPos - got.rest.length;
    const h = got.header;
    const bodySize = h.type === 'reg' ? h.size : 0;
    members.set(cleanName(h.name), { offset, size: bodySize, type: h.type, linkName: h.linkName });
    pos = offset + bodySize + padding(bodySize);
  }
  return members;
}
