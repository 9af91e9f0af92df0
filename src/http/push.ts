// The push path: blobs (monolithic, or chunked with PATCH) and manifests. Tests use it
// to put images into a local registry; `convert` will use it to publish.
import { sha256 } from './digest.js';
import { blobPath, manifestPath } from './api-paths.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RegistryError } from '../errors.js';
import type { RegistryClient, RepoTarget } from './registry-client.js';


export async function blobExists(client: RegistryClient, t: RepoTarget, digest: string): Promise<boolean> {
  const r = await client.call(t, { method: 'HEAD', path: blobPath(t.repository, digest), actions: 'pull,push', accept: [404] });
  return r.status === 200;
}

/** Uploads a blob unless the registry has it; `chunkSize` > 0 uses chunked PATCH uploads. */
export async function pushBlob(client: RegistryClient, t: RepoTarget, bytes: Buffer, chunkSize = 0): Promise<string> {
  const digest = sha256(bytes);
  await pushBlobFrom(client, t, { digest, size: bytes.length, read: (off, len) => Promise.resolve(bytes.subarray(off, off + len)) }, chunkSize);
  return digest;
}

/** A blob to upload, read piece by piece (a file too big to hold). */
export interface BlobContent {
  readonly digest: string;
  readonly size: number;
  read(offset: number, length: number): Promise<Buffer>;
}

/**
 * Uploads a blob unless the registry has it: one PUT when `chunkSize` is 0, else PATCH
 * requests of `chunkSize` bytes and a closing PUT, so nothing bigger is ever in memory.
 */
export async function pushBlobFrom(client: RegistryClient, t: RepoTarget, blob: BlobContent, chunkSize = 0): Promise<void> {
  if (await blobExists(client, t, blob.digest)) return;
  const start = await client.call(t, { method: 'POST', path: `/v2/${t.repository}/blobs/uploads/`, actions: 'pull,push', accept: [202] });
  let location = uploadLocation(start.headers['location'], t);
  const chunked = chunkSize > 0 && blob.size > 0;
  if (chunked) {
    for (let off = 0; off < blob.size; off += chunkSize) {
      const piece = await blob.read(off, Math.min(chunkSize, blob.size - off));
      const r = await client.call(t, {
        method: 'PATCH', path: location, actions: 'pull,push', body: piece, accept: [202],
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${off}-${off + piece.length - 1}` },
      });
      location = uploadLocation(r.headers['location'], t);
    }
  }
  const sep = location.includes('?') ? '&' : '?';
  await client.call(t, {
    method: 'PUT', path: `${location}${sep}digest=${encodeURIComponent(blob.digest)}`, actions: 'pull,push', accept: [201],
    body: chunked ? Buffer.alloc(0) : await blob.read(0, blob.size), headers: { 'content-type': 'application/octet-stream' },
  });
}

export async function pushManifest(client: RegistryClient, t: RepoTarget, reference: string, bytes: Buffer, mediaType: string): Promise<string> {
  await client.call(t, {
    method: 'PUT', path: manifestPath(t.repository, reference), actions: 'pull,push', body: bytes,
    headers: { 'content-type': mediaType }, accept: [201],
  });
  return sha256(bytes);
}

function uploadLocation(loc: string | string[] | undefined, t: RepoTarget): string {
  const l = Array.isArray(loc) ? loc[0] : loc;
  if (l === undefined) throw new RegistryError(`${t.endpoint}: upload answer without a Location`);
  if (l.startsWith('http://') || l.startsWith('https://')) {
    const u = new URL(l);
    return `${u.pathname}${u.search}`;
  }
  return l;
}

/**
 * Copies one image of an OCI layout (by its manifest digest) to the registry under
 * `tag`, blobs first, byte for byte, so digests and annotations are preserved.
 */
export async function pushLayoutImage(client: RegistryClient, t: RepoTarget, layoutDir: string, manifestDigest: string, tag: string): Promise<void> {
  const blob = (d: string): Promise<Buffer> => readFile(join(layoutDir, 'blobs', 'sha256', d.slice(7)));
  const bytes = await blob(manifestDigest);
  const doc = JSON.parse(bytes.toString('utf8')) as { mediaType?: string; config?: { digest: string }; layers?: Array<{ digest: string }>; manifests?: Array<{ digest: string }> };
  for (const m of doc.manifests ?? []) await pushLayoutImage(client, t, layoutDir, m.digest, m.digest);
  for (const d of [...(doc.config ? [doc.config] : []), ...(doc.layers ?? [])]) await pushBlob(client, t, await blob(d.digest));
  await pushManifest(client, t, tag, bytes, doc.mediaType ?? 'application/vnd.oci.image.manifest.v1+json');
}
