// Hand-made and tampered layer blobs for the hostile-input tests, built around our own
// writer's output.
import { createHash } from 'node:crypto';
import { gunzipSync, gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { writeEstargz, footer, type WriterOptions } from '../../src/toc/writer.js';
import { emptyHeader, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry } from '../../src/toc/tar.js';
import { parseFooter } from '../../src/toc/footer.js';
import { writeOciImage } from '../../src/http/oci-layout-writer.js';
import { OCI_LAYER_GZIP } from '../../src/http/media-types.js';
import { TOC_DIGEST_ANNOTATION } from '../../src/toc/blob.js';

export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export function writerBlob(entries: readonly TarEntry[], opts: WriterOptions = {}): { blob: Buffer; tocDigest: string } {
  const parts: Buffer[] = [];
  const r = writeEstargz(entries, (b) => parts.push(b), opts);
  return { blob: Buffer.concat(parts), tocDigest: r.tocDigest };
}

/** A gzip member holding a tar entry named `name` with `json`, as the TOC member is written. */
export function tocMember(json: Buffer, name = 'stargz.index.json'): Buffer {
  const h = { ...emptyHeader(name, 'reg'), size: json.length };
  return gzipSync(Buffer.concat([encodeHeader(h), json, Buffer.alloc(padding(json.length)), END_OF_ARCHIVE]));
}

export interface TocEntryJson {
  name: string;
  type: string;
  offset?: number;
  innerOffset?: number;
  [field: string]: unknown;
}

export interface Toc {
  version?: unknown;
  entries: TocEntryJson[];
}

/** The blob's data with a new TOC (given as an object, or raw JSON text) and footer. */
export function withToc(blob: Buffer, toc: Toc | string, opts: { name?: string } = {}): { blob: Buffer; tocDigest: string } {
  const f = parseFooter(blob.subarray(-51), blob.length);
  if (f === undefined) throw new Error('not an eStargz blob');
  const json = Buffer.from(typeof toc === 'string' ? toc : JSON.stringify(toc, null, '\t'));
  const data = blob.subarray(0, f.tocOffset);
  return { blob: Buffer.concat([data, tocMember(json, opts.name), footer(f.tocOffset)]), tocDigest: sha256(json) };
}

export function tocOf(blob: Buffer): Toc {
  const f = parseFooter(blob.subarray(-51), blob.length);
  if (f === undefined) throw new Error('not an eStargz blob');
  const tar = gunzipSync(blob.subarray(f.tocOffset, blob.length - 51));
  const size = Number.parseInt(tar.toString('latin1', 124, 136).replace(/\0.*$/, ''), 8);
  return JSON.parse(tar.toString('utf8', 512, 512 + size)) as Toc;
}

export interface LayerBlob {
  blob: Buffer;
  annotations?: Record<string, string>;
  mediaType?: string;
}

/** An OCI layout at dir/img holding these layer blobs; returns its oci: reference. */
export async function layoutWith(dir: string, layers: readonly LayerBlob[]): Promise<string> {
  const img = join(dir, 'img');
  await writeOciImage(img, {
    layers: layers.map((l) => ({ blob: l.blob, mediaType: l.mediaType ?? OCI_LAYER_GZIP, diffId: sha256(l.blob), annotations: l.annotations ?? {} })),
  });
  return `oci:${img}`;
}

export const tocAnnotation = (digest: string): Record<string, string> => ({ [TOC_DIGEST_ANNOTATION]: digest });
