// Where `convert` writes: an OCI layout (blobs moved in, index.json names the image) or
// a registry (blobs uploaded in PATCH pieces from their files, manifests by digest, the
// top one by tag).
import { open } from 'node:fs/promises';
import { sha256 } from '../http/digest.js';
import type { Descriptor } from '../http/image.js';
import { OciLayoutWriter } from '../http/oci-layout-writer.js';
import { pushBlob, pushBlobFrom, pushManifest } from '../http/push.js';
import type { RegistryClient, RepoTarget } from '../http/registry-client.js';
import { readUpTo } from './files.js';

export interface ImageSink {
  /** How messages name the destination. */
  readonly name: string;
  /** Takes a finished blob file; the file may be moved away. */
  putBlobFile(path: string, digest: string, size: number): Promise<void>;
  putBlob(bytes: Buffer): Promise<string>;
  /** A manifest that an index will list (stored by digest). */
  putManifest(bytes: Buffer, mediaType: string): Promise<void>;
  /** The image's top manifest or index, under the destination's tag; returns its descriptor. */
  putRoot(bytes: Buffer, mediaType: string): Promise<Descriptor>;
}

export class LayoutSink implements ImageSink {
  private readonly out: OciLayoutWriter;

  constructor(dir: string, private readonly tag: string | undefined) {
    this.out = new OciLayoutWriter(dir);
  }

  get name(): string {
    return `oci:${this.out.dir}${this.tag !== undefined ? `:${this.tag}` : ''}`;
  }

  async putBlobFile(path: string, digest: string): Promise<void> {
    await this.out.putBlobFile(path, digest);
  }

  putBlob(bytes: Buffer): Promise<string> {
    return this.out.putBlob(bytes);
  }

  async putManifest(bytes: Buffer): Promise<void> {
    await this.out.putBlob(bytes);
  }

  async putRoot(bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = await this.out.putBlob(bytes);
    return this.out.addToIndex({ mediaType, digest, size: bytes.length }, this.tag);
  }
}

/** Blobs go up in pieces of this size (one PATCH each). */
const UPLOAD_PIECE = 32 << 20;

export class RegistrySink implements ImageSink {
  constructor(
    readonly name: string,
    private readonly client: RegistryClient,
    private readonly target: RepoTarget,
    private readonly tag: string,
  ) {}

  async putBlobFile(path: string, digest: string, size: number): Promise<void> {
    const fh = await open(path, 'r');
    try {
      const read = async (offset: number, length: number): Promise<Buffer> => {
        const buf = await readUpTo(fh, offset, length);
        if (buf.length !== length) throw new Error(`${path} ends at ${offset + buf.length}, before the ${size} bytes written`);
        return buf;
      };
      await pushBlobFrom(this.client, this.target, { digest, size, read }, size > UPLOAD_PIECE ? UPLOAD_PIECE : 0);
    } finally {
      await fh.close();
    }
  }

  putBlob(bytes: Buffer): Promise<string> {
    return pushBlob(this.client, this.target, bytes);
  }

  async putManifest(bytes: Buffer, mediaType: string): Promise<void> {
    await pushManifest(this.client, this.target, sha256(bytes), bytes, mediaType);
  }

  async putRoot(bytes: Buffer, mediaType: string): Promise<Descriptor> {
    const digest = await pushManifest(this.client, this.target, this.tag, bytes, mediaType);
    return { mediaType, digest, size: bytes.length };
  }
}
