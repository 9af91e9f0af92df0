// Writes a single-image OCI layout: blobs, config, manifest, index.json. Used by tests
// and the demo to make images with our own writer (and later by `convert`).
import { sha256 as digestOf } from './digest.js';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
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


async function putBlob(dir: string, bytes: Buffer): Promise<string> {
  const digest = digestOf(bytes);
  await writeFile(join(dir, 'blobs', 'sha256', digest.slice(7)), bytes);
  return digest;
}

/** Adds an image to the layout at `dir` (created if needed); returns the manifest descriptor. */
export async function writeOciImage(dir: string, image: LayoutImage): Promise<Descriptor> {
  await mkdir(join(dir, 'blobs', 'sha256'), { recursive: true });
  await writeFile(join(dir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const layers: Descriptor[] = [];
  for (const l of image.layers) {
    const digest = await putBlob(dir, l.blob);
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
  const configDesc = { mediaType: OCI_CONFIG, digest: await putBlob(dir, config), size: config.length };
  const manifest = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, config: configDesc, layers }));
  const desc: Descriptor = {
    mediaType: OCI_MANIFEST,
    digest: await putBlob(dir, manifest),
    size: manifest.length,
    ...(image.refName !== undefined ? { annotations: { 'org.opencontainers.image.ref.name': image.refName } } : {}),
  };
  let index: { schemaVersion: number; manifests: Descriptor[] } = { schemaVersion: 2, manifests: [] };
  try {
    index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as typeof index;
  } catch {
    // a new layout
  }
  const others = index.manifests.filter((m) => image.refName === undefined || m.annotations?.['org.opencontainers.image.ref.name'] !== image.refName);
  await writeFile(join(dir, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [...others, desc] }));
  return desc;
}
