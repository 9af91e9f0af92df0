// An OCI image layout as convert's input, in a directory (`oci:DIR[:TAG|@DIGEST]`) or
// in a tar file (an OCI archive). With no tag or digest, a layout holding one image
// gives that image, and one holding several platform manifests gives them all (its
// index.json read as the index).
import { sha256 } from '../http/digest.js';
import { ImageError } from '../errors.js';
import { isDigest, type Descriptor } from '../http/image.js';
import { descriptors, parseJson } from '../http/manifest.js';
import { OCI_INDEX } from '../http/media-types.js';
import type { ImageStore } from './input.js';
import type { SourceFiles } from './files.js';

const REF_NAME = 'org.opencontainers.image.ref.name';

export class LayoutStore implements ImageStore {
  readonly name: string;
  /** Documents that are no blob of the layout (index.json read as the image's index). */
  private readonly made = new Map<string, Buffer>();

  constructor(
    private readonly files: SourceFiles,
    private readonly select: { readonly tag?: string | undefined; readonly digest?: string | undefined },
  ) {
    this.name = files.where;
  }

  async root(): Promise<Descriptor> {
    const indexBytes = await this.files.read('index.json');
    if (indexBytes === undefined || (await this.files.read('oci-layout')) === undefined) {
      throw new ImageError(`${this.name} is not an OCI image layout (no index.json or oci-layout)`);
    }
    const manifests = descriptors(parseJson(indexBytes, `${this.name}/index.json`), `${this.name}/index.json`);
    const { tag, digest } = this.select;
    if (digest !== undefined) {
      const listed = manifests.find((d) => d.digest === digest);
      if (listed !== undefined) return listed;
      const bytes = await this.blob(digest);
      return { mediaType: (parseJson(bytes, digest)['mediaType'] as string | undefined) ?? '', digest, size: bytes.length };
    }
    const named = tag === undefined ? manifests : manifests.filter((d) => d.annotations?.[REF_NAME] === tag);
    if (named.length === 1) return named[0] as Descriptor;
    if (named.length > 1 && named.every((d) => d.platform !== undefined)) {
      const bytes = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: named }));
      const d = sha256(bytes);
      this.made.set(d, bytes);
      return { mediaType: OCI_INDEX, digest: d, size: bytes.length };
    }
    const have = manifests.map((d) => d.annotations?.[REF_NAME] ?? d.digest.slice(0, 19)).join(', ') || 'nothing';
    throw new ImageError(
      tag !== undefined && named.length === 0
        ? `no image named ${JSON.stringify(tag)} in ${this.name} (it has: ${have})`
        : `${this.name} holds ${named.length} images; name one with :TAG or @DIGEST (it has: ${have})`,
    );
  }

  async bytes(desc: Descriptor): Promise<Buffer> {
    const made = this.made.get(desc.digest);
    if (made !== undefined) return made;
    const bytes = await this.blob(desc.digest);
    if (bytes.length !== desc.size) throw new ImageError(`${this.name}: blob ${desc.digest} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
    return bytes;
  }

  stream(desc: Descriptor): AsyncIterable<Buffer> {
    return this.files.stream(blobPath(desc.digest));
  }

  hasDigest(): boolean {
    return true;
  }

  async close(): Promise<void> {
    await this.files.close();
  }

  private async blob(digest: string): Promise<Buffer> {
    const bytes = await this.files.read(blobPath(digest));
    if (bytes === undefined) throw new ImageError(`blob ${digest} is missing from ${this.name}`);
    const actual = sha256(bytes);
    if (actual !== digest) throw new ImageError(`blob ${digest} in ${this.name} has digest ${actual}`);
    return bytes;
  }
}

export function blobPath(digest: string): string {
  if (!isDigest(digest)) throw new ImageError(`unsupported or malformed digest ${JSON.stringify(digest)}`);
  return `blobs/sha256/${digest.slice(7)}`;
}
