// Reading what an OCI layout holds (manifests, configs, layer blobs, the TOC inside an
// eStargz blob) and making small variations of a fixture layout in a temp dir, for the
// convert tests.
import { createHash } from 'node:crypto';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { parseFooter } from '../../src/toc/footer.js';

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface LayerDesc {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
}

export interface Manifest {
  mediaType: string;
  config: LayerDesc;
  layers: LayerDesc[];
  manifests?: Array<LayerDesc & { platform?: { os: string; architecture: string } }>;
}

export const blobPath = (dir: string, digest: string): string => join(dir, 'blobs', 'sha256', digest.slice(7));
export const blob = (dir: string, digest: string): Buffer => readFileSync(blobPath(dir, digest));
export const json = <T>(dir: string, digest: string): T => JSON.parse(blob(dir, digest).toString('utf8')) as T;

/** The index.json entry named `tag` (or the only one). */
export function indexEntry(dir: string, tag?: string): LayerDesc {
  const index = JSON.parse(readFileSync(join(dir, 'index.json'), 'utf8')) as { manifests: LayerDesc[] };
  const found = tag === undefined ? index.manifests : index.manifests.filter((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (found.length !== 1) throw new Error(`${dir}: ${found.length} images named ${tag ?? '(any)'}`);
  return found[0] as LayerDesc;
}

export function manifestOf(dir: string, tag?: string): Manifest {
  return json<Manifest>(dir, indexEntry(dir, tag).digest);
}

/** The TOC JSON bytes of an eStargz blob, and its footer. */
export function tocBytes(b: Buffer): { json: Buffer; footer: Buffer; tocOffset: number } {
  const f = parseFooter(b.subarray(-51), b.length);
  if (f === undefined) throw new Error('not an eStargz blob');
  const tar = gunzipSync(b.subarray(f.tocOffset, b.length - 51));
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/, ''), 8);
  return { json: tar.subarray(512, 512 + size), footer: b.subarray(-51), tocOffset: f.tocOffset };
}

/** A writable copy of a fixture layout in `dir` (the fixtures themselves are never written). */
export function copyLayout(from: string, to: string): string {
  cpSync(from, to, { recursive: true });
  return to;
}

/** Adds a manifest (and its config) to a layout's blobs; returns the manifest descriptor. */
export function putImage(dir: string, config: Buffer, layers: readonly LayerDesc[]): LayerDesc {
  writeFileSync(blobPath(dir, sha256(config)), config);
  const m = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers,
  }));
  writeFileSync(blobPath(dir, sha256(m)), m);
  return { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: sha256(m), size: m.length };
}
