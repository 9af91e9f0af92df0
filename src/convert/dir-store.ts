// A root filesystem directory as convert's input: one layer, written as a tar stream
// while the tree is walked (names sorted, hard links found by inode, devices with their
// numbers), and a minimal config for the given platform. Extended attributes are not
// read: Node has no API for them.
import { lstat, open } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { sha256 } from '../http/digest.js';
import { ImageError } from '../errors.js';
import type { Descriptor, Platform } from '../http/image.js';
import { OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST } from '../http/media-types.js';
import { encodeHeader, END_OF_ARCHIVE, padding } from '../toc/tar.js';
import { walkTree } from '../toc/dir-entries.js';
import type { ImageStore } from './input.js';

/** The layer has no digest before it is written; the converter is told not to check one. */
const NO_DIGEST = `sha256:${'0'.repeat(64)}`;
const PIECE = 1 << 20;

export class DirStore implements ImageStore {
  private readonly made = new Map<string, Buffer>();

  constructor(readonly name: string, private readonly platform: Platform) {}

  async root(): Promise<Descriptor> {
    const s = await lstat(this.name).catch((err: unknown) => {
      throw new ImageError(`cannot read directory ${this.name}: ${(err as Error).message}`, {}, { cause: err });
    });
    if (!s.isDirectory()) throw new ImageError(`${this.name} is not a directory`);
    const config = Buffer.from(JSON.stringify({
      architecture: this.platform.architecture,
      os: this.platform.os,
      ...(this.platform.variant !== undefined ? { variant: this.platform.variant } : {}),
      config: {},
      rootfs: { type: 'layers', diff_ids: [] },
      history: [{ created_by: `stargzfs convert ${this.name}` }],
    }));
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: sha256(config), size: config.length },
      layers: [{ mediaType: OCI_LAYER_TAR, digest: NO_DIGEST, size: 0 }],
    }));
    this.made.set(sha256(config), config);
    this.made.set(sha256(manifest), manifest);
    return { mediaType: OCI_MANIFEST, digest: sha256(manifest), size: manifest.length };
  }

  async bytes(desc: Descriptor): Promise<Buffer> {
    const b = this.made.get(desc.digest);
    if (b === undefined) throw new ImageError(`${this.name}: no document ${desc.digest}`);
    return b;
  }

  stream(): AsyncIterable<Buffer> {
    return treeTar(this.name);
  }

  hasDigest(): boolean {
    return false;
  }

  async close(): Promise<void> {}
}

/** Files up to this size are read whole, synchronously: a converter has nothing else to do meanwhile, and a thread-pool round trip per small file costs more than the read. */
const SMALL = 1 << 20;

/** The tree under `root` as a tar stream, parents before children. */
export async function* treeTar(root: string): AsyncGenerator<Buffer> {
  for (const { header, path } of walkTree(root)) {
    if (path === undefined) {
      yield encodeHeader(header);
    } else if (header.size <= SMALL) {
      const body = readFileSync(path);
      if (body.length !== header.size) throw new ImageError(`${path} changed size while it was read (${header.size} → ${body.length} bytes)`);
      yield Buffer.concat([encodeHeader(header), body, Buffer.alloc(padding(header.size))]);
    } else {
      yield encodeHeader(header);
      yield* fileBody(path, header.size);
    }
  }
  yield END_OF_ARCHIVE;
}

async function* fileBody(abs: string, size: number): AsyncGenerator<Buffer> {
  const fh = await open(abs, 'r');
  try {
    for (let off = 0; off < size; ) {
      const want = Math.min(PIECE, size - off);
      const buf = Buffer.allocUnsafe(want);
      const { bytesRead } = await fh.read(buf, 0, want, off);
      if (bytesRead === 0) throw new ImageError(`${abs} shrank while it was read (${off} of ${size} bytes)`);
      off += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await fh.close();
  }
  if (padding(size) > 0) yield Buffer.alloc(padding(size));
}
