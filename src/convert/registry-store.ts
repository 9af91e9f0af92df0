// A registry image as convert's input: manifests by tag or digest (checked), configs
// whole, layer blobs streamed in large ranges with the next one already in flight.
import { ImageError } from '../errors.js';
import { formatImageRef } from '../http/reference.js';
import type { Descriptor } from '../http/image.js';
import { isIndex, isManifest } from '../http/media-types.js';
import { parseJson } from '../http/manifest.js';
import type { RegistrySource } from '../http/registry-source.js';
import type { ImageStore } from './input.js';

/** Bytes per range request while streaming a layer. */
const PIECE = 8 << 20;

export class RegistryStore implements ImageStore {
  readonly name: string;
  private readonly seen = new Map<string, Buffer>();

  constructor(private readonly source: RegistrySource) {
    this.name = formatImageRef(source.ref);
  }

  async root(): Promise<Descriptor> {
    const ref = this.source.ref;
    const m = await this.source.fetchManifest(ref.digest ?? (ref.tag as string));
    this.seen.set(m.digest, m.bytes);
    const mediaType = (parseJson(m.bytes, `${this.name}: manifest`)['mediaType'] as string | undefined) ?? m.mediaType;
    return { mediaType, digest: m.digest, size: m.bytes.length };
  }

  async bytes(desc: Descriptor): Promise<Buffer> {
    const known = this.seen.get(desc.digest);
    if (known !== undefined) return known;
    if (isIndex(desc.mediaType) || isManifest(desc.mediaType)) return (await this.source.fetchManifest(desc.digest)).bytes;
    return this.source.smallBlob(desc);
  }

  async *stream(desc: Descriptor): AsyncGenerator<Buffer> {
    const blob = this.source.blob(desc);
    if (desc.size === 0) return;
    let next: Promise<Buffer> | undefined = blob.readAt(0, Math.min(PIECE, desc.size));
    for (let off = 0; next !== undefined; ) {
      const piece: Buffer = await next;
      if (piece.length === 0) throw new ImageError(`${this.name}: layer ${desc.digest} ended early at ${off} bytes`);
      off += piece.length;
      next = off < desc.size ? blob.readAt(off, Math.min(PIECE, desc.size - off)) : undefined;
      // The read ahead must not be left unobserved if the consumer stops early.
      next?.catch(() => undefined);
      yield piece;
    }
  }

  hasDigest(): boolean {
    return true;
  }

  async close(): Promise<void> {
    await this.source.close();
  }
}
