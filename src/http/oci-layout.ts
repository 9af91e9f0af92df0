// An OCI image layout directory (index.json, blobs/sha256/…) as an image source:
// `oci:<dir>[:<tag>|@<digest>]`. Every manifest, index and config is verified against
// its digest when read; layer blobs are read by range and verified by the TOC.
import { sha256 } from './digest.js';
import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { ImageError, ImageReferenceError } from '../errors.js';
import { FileBlob } from './file-blob.js';
import { isDigest, parsePlatform, type Descriptor, type Platform, type ResolvedImage } from './image.js';
import { configPlatform, descriptors, manifestParts, pickPlatform } from './manifest.js';
import { isIndex, isManifest } from './media-types.js';

export interface OciLayoutRef {
  readonly dir: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

const REF_NAME = 'org.opencontainers.image.ref.name';

export const isOciRef = (ref: string): boolean => ref.startsWith('oci:');

/** `oci:DIR`, `oci:DIR:TAG` or `oci:DIR@sha256:…`. A DIR that exists whole wins over a tag split. */
export async function parseOciRef(ref: string): Promise<OciLayoutRef> {
  if (!isOciRef(ref)) throw new ImageReferenceError(`not an OCI layout reference (oci:DIR[:TAG|@DIGEST]): ${JSON.stringify(ref)}`);
  const rest = ref.slice(4);
  if (rest === '') throw new ImageReferenceError('oci: reference without a directory');
  const at = rest.lastIndexOf('@');
  if (at > 0 && rest.slice(at + 1).startsWith('sha256:')) {
    const digest = rest.slice(at + 1);
    if (!isDigest(digest)) throw new ImageReferenceError(`malformed digest in ${JSON.stringify(ref)}`);
    return { dir: rest.slice(0, at), tag: undefined, digest };
  }
  if (await isDir(rest)) return { dir: rest, tag: undefined, digest: undefined };
  const colon = rest.lastIndexOf(':');
  if (colon > 0 && !rest.slice(colon + 1).includes('/')) {
    return { dir: rest.slice(0, colon), tag: rest.slice(colon + 1), digest: undefined };
  }
  return { dir: rest, tag: undefined, digest: undefined };
}

async function isDir(p: string): Promise<boolean> {
  try {
    return (await stat(p)).isDirectory();
  } catch {
    return false;
  }
}

export class OciLayoutSource {
  private readonly blobs = new Map<string, FileBlob>();

  constructor(
    private readonly ref: string,
    private readonly layout: OciLayoutRef,
  ) {}

  static async open(ref: string): Promise<OciLayoutSource> {
    const layout = await parseOciRef(ref);
    let marker: unknown;
    try {
      marker = JSON.parse(await readFile(join(layout.dir, 'oci-layout'), 'utf8'));
    } catch (err) {
      throw new ImageError(`${layout.dir} is not an OCI image layout (no readable oci-layout file)`, {}, { cause: err });
    }
    if ((marker as { imageLayoutVersion?: unknown }).imageLayoutVersion !== '1.0.0') {
      throw new ImageError(`${layout.dir}/oci-layout: unsupported imageLayoutVersion`);
    }
    return new OciLayoutSource(ref, layout);
  }

  async resolve(platform: string): Promise<ResolvedImage> {
    const want = parsePlatform(platform);
    const index = await this.readJson(join(this.layout.dir, 'index.json'), undefined);
    const manifests = descriptors(index, 'index.json');
    let chosen: Descriptor;
    if (this.layout.digest !== undefined) {
      chosen = manifests.find((d) => d.digest === this.layout.digest) ?? (await this.describe(this.layout.digest));
    } else if (this.layout.tag !== undefined) {
      const named = manifests.filter((d) => d.annotations?.[REF_NAME] === this.layout.tag);
      if (named.length === 0) throw new ImageError(`no image named ${JSON.stringify(this.layout.tag)} in ${this.layout.dir} (it has: ${names(manifests)})`);
      chosen = named.length === 1 ? (named[0] as Descriptor) : pickPlatform(named, want, 'index.json');
    } else if (manifests.length === 1) {
      chosen = manifests[0] as Descriptor;
    } else if (manifests.length > 1 && manifests.every((d) => d.platform !== undefined)) {
      chosen = pickPlatform(manifests, want, 'index.json');
    } else {
      throw new ImageError(
        `${this.layout.dir} holds ${manifests.length} images; name one with oci:DIR:TAG or oci:DIR@DIGEST (it has: ${names(manifests)})`,
      );
    }
    return this.resolveDescriptor(chosen, want, 0);
  }

  /** A BlobReader for a layer of this image. */
  blob(desc: Descriptor): FileBlob {
    let b = this.blobs.get(desc.digest);
    if (b === undefined) {
      b = new FileBlob(this.blobPath(desc.digest), desc.size, desc.digest);
      this.blobs.set(desc.digest, b);
    }
    return b;
  }

  async close(): Promise<void> {
    await Promise.all([...this.blobs.values()].map((b) => b.close()));
    this.blobs.clear();
  }

  private blobPath(digest: string): string {
    if (!isDigest(digest)) throw new ImageError(`unsupported or malformed digest ${JSON.stringify(digest)}`);
    return join(this.layout.dir, 'blobs', 'sha256', digest.slice(7));
  }

  private async describe(digest: string): Promise<Descriptor> {
    const bytes = await this.readBlob({ digest, size: -1, mediaType: '' });
    const mediaType = (JSON.parse(bytes.toString('utf8')) as { mediaType?: string }).mediaType ?? '';
    return { digest, size: bytes.length, mediaType };
  }

  private async resolveDescriptor(desc: Descriptor, want: Platform, depth: number): Promise<ResolvedImage> {
    if (depth > 4) throw new ImageError('nested indexes deeper than 4 levels');
    const doc = (await this.readJson(this.blobPath(desc.digest), desc)) as Record<string, unknown>;
    const mediaType = (doc['mediaType'] as string | undefined) ?? desc.mediaType;
    if (isIndex(mediaType) || (mediaType === '' && Array.isArray(doc['manifests']))) {
      const chosen = pickPlatform(descriptors(doc, desc.digest), want, `index ${desc.digest}`);
      return this.resolveDescriptor(chosen, want, depth + 1);
    }
    if (!isManifest(mediaType) && !(mediaType === '' && Array.isArray(doc['layers']))) {
      throw new ImageError(`${desc.digest} has media type ${JSON.stringify(mediaType)}, not an image manifest or index`);
    }
    const { config, layers } = manifestParts(doc, desc.digest);
    const cfg = (await this.readJson(this.blobPath(config.digest), config)) as Record<string, unknown>;
    const platform = desc.platform ?? configPlatform(cfg);
    return { ref: this.ref, manifestDigest: desc.digest, platform, config, layers };
  }

  private async readBlob(desc: Pick<Descriptor, 'digest' | 'size' | 'mediaType'>): Promise<Buffer> {
    let bytes: Buffer;
    try {
      bytes = await readFile(this.blobPath(desc.digest));
    } catch (err) {
      throw new ImageError(`blob ${desc.digest} is missing from ${this.layout.dir}`, {}, { cause: err });
    }
    const actual = sha256(bytes);
    if (actual !== desc.digest) throw new ImageError(`blob ${desc.digest} in ${this.layout.dir} has digest ${actual}`);
    if (desc.size >= 0 && bytes.length !== desc.size) {
      throw new ImageError(`blob ${desc.digest} is ${bytes.length} bytes, its descriptor says ${desc.size}`);
    }
    return bytes;
  }

  private async readJson(path: string, desc: Descriptor | undefined): Promise<unknown> {
    const bytes = desc === undefined ? await readFile(path).catch((err: unknown) => {
      throw new ImageError(`cannot read ${path}`, {}, { cause: err });
    }) : await this.readBlob(desc);
    try {
      return JSON.parse(bytes.toString('utf8'));
    } catch (err) {
      throw new ImageError(`${desc?.digest ?? path} is not valid JSON`, {}, { cause: err });
    }
  }
}

function names(list: readonly Descriptor[]): string {
  const n = list.map((d) => d.annotations?.[REF_NAME] ?? d.digest.slice(0, 19));
  return n.length > 0 ? n.join(', ') : 'nothing';
}
