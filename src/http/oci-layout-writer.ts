// Writes OCI layouts: blobs and index.json (OciLayoutWriter, used by `convert`), and
// whole single-image layouts from blobs in memory (tests and the demo).
import { sha256 as digestOf } from './digest.js';
import { copyFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Descriptor } from './image.js';
import { OCI_CONFIG, OCI_MANIFEST } from './media-types.js';

export interface LayoutLayer {
  readonly blob: Buffer;
  readonly mediaType: string;
  readonly diffId: string;
  readonly annotations?: Readonly<Record<string, string>>;
}

export interface LayoutImage {
  readonly layers: readonly LayoutLayer[];
  readonly refName?: string;
  readonly os?: string;
  readonly architecture?: string;
}


const REF_NAME = 'org.opencontainers.image.ref.name';

/** Blobs and index.json of an OCI layout being written (created if needed). */
export class OciLayoutWriter {
  private ready: Promise<void> | undefined;

  constructor(readonly dir: string) {}

  async putBlob(bytes: Buffer): Promise<string> {
    await this.init();
    const digest = digestOf(bytes);
    await writeFile(this.blobPath(digest), bytes);
    return digest;
  }

  /** Moves a finished blob file into the layout (copies across filesystems). */
  async putBlobFile(path: string, digest: string): Promise<void> {
    await this.init();
    try {
      await rename(path, this.blobPath(digest));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EXDEV') throw err;
      await copyFile(path, this.blobPath(digest));
      await rm(path, { force: true });
    }
  }

  /**
   * Lists a manifest or index in index.json, replacing what had the same ref name
   * (without one, it is added beside what is there).
   */
  async addToIndex(desc: Descriptor, refName: string | undefined): Promise<Descriptor> {
    await this.init();
    const listed: Descriptor = refName !== undefined ? { ...desc, annotations: { ...desc.annotations, [REF_NAME]: refName } } : desc;
    let index: { schemaVersion: number; manifests: Descriptor[] } = { schemaVersion: 2, manifests: [] };
    try {
      index = JSON.parse(await readFile(join(this.dir, 'index.json'), 'utf8')) as typeof index;
    } catch {
      // a new layout
    }
    const others = index.manifests.filter((m) => (refName !== undefined ? m.annotations?.[REF_NAME] !== refName : m.digest !== desc.digest));
    await writeFile(join(this.dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [...others, listed] }));
    return listed;
  }

  private blobPath(digest: string): string {
    return join(this.dir, 'blobs', 'sha256', digest.slice(7));
  }

  private init(): Promise<void> {
    this.ready ??= (async () => {
      await mkdir(join(this.dir, 'blobs', 'sha256'), { recursive: true });
      await writeFile(join(this.dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    })();
    return this.ready;
  }
}

/** Adds an image to the layout at `dir` (created if needed); returns the manifest descriptor. */
export async function writeOciImage(dir: string, image: LayoutImage): Promise<Descriptor> {
  const out = new OciLayoutWriter(dir);
  const layers: Descriptor[] = [];
  for (const l of image.layers) {
    const digest = await out.putBlob(l.blob);
    layers.push({ mediaType: l.mediaType, digest, size: l.blob.length, ...(l.annotations ? { annotations: l.annotations } : {}) });
  }
  const config = Buffer.from(
    JSON.stringify({
      architecture: image.architecture ?? 'amd64',
      os: image.os ?? 'linux',
      config: {},
      rootfs: { type: 'layers', diff_ids: image.layers.map((l) => l.diffId) },
    }),
  );
  const configDesc = { mediaType: OCI_CONFIG, digest: await out.putBlob(config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers }));
  return out.addToIndex({ mediaType: OCI_MANIFEST, digest: await out.putBlob(manifest), size: manifest.length }, image.refName);
}
