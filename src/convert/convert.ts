// `convert`: every image of the input (every platform of an index, or those asked) gets
// eStargz layers, a config with the new diff_ids and an OCI manifest whose layer
// descriptors carry the TOC digest and uncompressed size annotations, as the reference
// converter writes them. A layer is streamed once into a spool (see spool.ts), checked
// against its digest and diff_id, and written from there in the new order, compressed
// in parallel; layers already eStargz are copied unchanged unless `rebuild` is set.
import { createHash } from 'node:crypto';
import { open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DigestMismatchError, ImageError } from '../errors.js';
import type { Logger } from '../log.js';
import type { Descriptor, Platform } from '../http/image.js';
import { DOCKER_LAYER_GZIP, OCI_CONFIG, OCI_INDEX, OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_MANIFEST } from '../http/media-types.js';
import { PREFETCH_SIZE_ANNOTATION, TOC_DIGEST_ANNOTATION, TOC_OFFSET_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION, ZSTD_A_CHECKSUM_ANNOTATION, ZSTD_A_POSITION_ANNOTATION } from '../toc/blob.js';
import { writeEstargzStream, type LayerFormat } from '../toc/writer.js';
import { readInput, type ImageStore, type InputImage, type InputLayer } from './input.js';
import type { ImageSink } from './output.js';
import { spoolLayer } from './spool.js';
import { zstdStream } from '../toc/codec.js';

export interface ConvertOptions {
  /** Uncompressed chunk size, bytes. Default 4 MiB. */
  readonly chunkSize?: number | undefined;
  /** Small files share a gzip member until it holds this many bytes. Default 0 (one member per file). */
  readonly minChunkSize?: number | undefined;
  /** gzip level 1–9 (default 6) or zstd level 1–19 (default 3), as the reference's defaults. */
  readonly compressionLevel?: number | undefined;
  /** eStargz (gzip, default) or zstd:chunked (the stargz-snapshotter flavor). */
  readonly format?: LayerFormat | undefined;
  /** Paths to put first in every layer, in first-access order, before `.prefetch.landmark`. */
  readonly prioritized: readonly string[];
  /** Rewrite layers that are eStargz already (also done whenever `prioritized` is not empty: the order is the point). */
  readonly rebuild: boolean;
  /** Platforms to convert from an index; undefined: all. */
  readonly platforms: readonly Platform[] | undefined;
  /** Spool and blob files go here while a layer converts. */
  readonly tmpDir: string;
  /** Members compressed at once. */
  readonly parallel: number;
}

export type ConvertPhase = 'read' | 'write' | 'copy' | 'store';

export interface ConvertProgress {
  readonly image: number;
  readonly images: number;
  readonly layer: number;
  readonly layers: number;
  readonly phase: ConvertPhase;
  /** Bytes of the source blob read so far (read, copy), or of the new blob written (write). */
  readonly bytes: number;
  /** The source blob's size when known, else 0. */
  readonly total: number;
}

export interface ConvertedLayer {
  readonly index: number;
  readonly source: string;
  readonly desc: Descriptor;
  readonly diffId: string;
  /** Copied unchanged (already eStargz). */
  readonly kept: boolean;
  readonly tarBytes: number;
  readonly entries: number;
  readonly missedPrioritized: number;
}

export interface ConvertedImage {
  readonly platform: Platform | undefined;
  readonly manifest: Descriptor;
  readonly layers: readonly ConvertedLayer[];
}

export interface ConvertResult {
  readonly root: Descriptor;
  readonly images: readonly ConvertedImage[];
}

/** Is the layer in the output format already (then it is copied, not rewritten)? */
function inFormat(d: Descriptor, format: LayerFormat): boolean {
  if (format === 'zstdchunked') return d.mediaType === OCI_LAYER_ZSTD && d.annotations?.[ZSTD_A_CHECKSUM_ANNOTATION] !== undefined && d.annotations[TOC_DIGEST_ANNOTATION] !== undefined;
  return (d.mediaType === OCI_LAYER_GZIP || d.mediaType === DOCKER_LAYER_GZIP) && d.annotations?.[TOC_DIGEST_ANNOTATION] !== undefined;
}

export class Converter {
  private readonly log: Logger;
  /** Source layer digest → its conversion, for layers that several platforms share. */
  private readonly done = new Map<string, ConvertedLayer>();
  private seq = 0;

  constructor(
    private readonly store: ImageStore,
    private readonly sink: ImageSink,
    private readonly opts: ConvertOptions,
    log: Logger,
    private readonly onProgress: (p: ConvertProgress) => void = () => {},
  ) {
    this.log = log.child({ mod: 'convert' });
  }

  async run(): Promise<ConvertResult> {
    const input = await readInput(this.store, this.opts.platforms);
    const images: ConvertedImage[] = [];
    for (const [i, image] of input.images.entries()) images.push(await this.image(image, i, input.images.length, input.index !== undefined));
    if (input.index === undefined) {
      return { root: (images[0] as ConvertedImage).manifest, images };
    }
    const index: Record<string, unknown> = {
      schemaVersion: 2,
      mediaType: OCI_INDEX,
      manifests: images.map((img, i) => ({
        ...img.manifest,
        ...(input.images[i]?.desc.platform !== undefined ? { platform: input.images[i]?.desc.platform } : {}),
      })),
      ...(input.index['annotations'] !== undefined ? { annotations: input.index['annotations'] } : {}),
    };
    const root = await this.sink.putRoot(Buffer.from(JSON.stringify(index)), OCI_INDEX);
    return { root, images };
  }

  private async image(image: InputImage, i: number, images: number, inIndex: boolean): Promise<ConvertedImage> {
    const layers: ConvertedLayer[] = [];
    for (const layer of image.layers) {
      const progress = (phase: ConvertPhase, bytes: number): void =>
        this.onProgress({ image: i, images, layer: layer.index, layers: image.layers.length, phase, bytes, total: layer.desc.size });
      let done = this.done.get(layer.desc.digest);
      if (done === undefined) {
        done = !this.opts.rebuild && this.opts.prioritized.length === 0 && inFormat(layer.desc, this.opts.format ?? 'estargz') ? await this.copy(layer, progress) : await this.convert(layer, progress);
        this.done.set(layer.desc.digest, done);
      }
      layers.push(done);
    }
    const rootfs = (image.config['rootfs'] ?? {}) as Record<string, unknown>;
    const config = Buffer.from(JSON.stringify({ ...image.config, rootfs: { ...rootfs, type: 'layers', diff_ids: layers.map((l) => l.diffId) } }));
    const configDesc: Descriptor = { mediaType: OCI_CONFIG, digest: await this.sink.putBlob(config), size: config.length };
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: configDesc,
      layers: layers.map((l) => l.desc),
      ...(image.manifest['annotations'] !== undefined ? { annotations: image.manifest['annotations'] } : {}),
    }));
    let desc: Descriptor;
    if (inIndex) {
      await this.sink.putManifest(manifest, OCI_MANIFEST);
      desc = { mediaType: OCI_MANIFEST, digest: `sha256:${createHash('sha256').update(manifest).digest('hex')}`, size: manifest.length };
    } else {
      desc = await this.sink.putRoot(manifest, OCI_MANIFEST);
    }
    this.log.info({ manifest: desc.digest, platform: image.platform }, 'image converted');
    return { platform: image.platform, manifest: desc, layers };
  }

  /** A source layer → an eStargz blob. */
  private async convert(layer: InputLayer, progress: (phase: ConvertPhase, bytes: number) => void): Promise<ConvertedLayer> {
    const ctx = { layer: layer.desc.digest };
    const base = join(this.opts.tmpDir, `layer-${process.pid}-${this.seq++}`);
    const spooled = await spoolLayer(this.store.stream(layer.desc), `${base}.spool`, ctx, {
      label: `layer ${layer.index}`,
      digest: this.store.hasDigest(layer.desc) ? layer.desc.digest : undefined,
      onBytes: (n) => progress('read', n),
    });
    try {
      if (this.store.hasDigest(layer.desc) && spooled.blobDigest !== layer.desc.digest) {
        throw new DigestMismatchError(`layer ${layer.index} blob`, layer.desc.digest, spooled.blobDigest, ctx);
      }
      if (layer.diffId !== undefined && spooled.diffId !== layer.diffId) {
        throw new DigestMismatchError(`layer ${layer.index} uncompressed content (the config's diff_id)`, layer.diffId, spooled.diffId, ctx);
      }
      const out = await open(`${base}.blob`, 'w');
      let written = 0;
      let result;
      try {
        const buffered = new BufferedWriter(async (b) => {
          await out.write(b, 0, b.length, written);
          written += b.length;
          progress('write', written);
        });
        result = await writeEstargzStream(spooled.entries, (b) => buffered.write(b), {
          chunkSize: this.opts.chunkSize,
          minChunkSize: this.opts.minChunkSize,
          compressionLevel: this.opts.compressionLevel,
          format: this.opts.format,
          prioritized: this.opts.prioritized,
          parallel: this.opts.parallel,
        });
        await buffered.flush();
      } finally {
        await out.close();
      }
      progress('store', result.blobSize);
      await this.sink.putBlobFile(`${base}.blob`, result.blobDigest, result.blobSize);
      this.log.info(
        { layer: layer.index, source: layer.desc.digest, digest: result.blobDigest, from: spooled.compression, tarBytes: spooled.tarBytes, blobBytes: result.blobSize },
        'layer converted',
      );
      return {
        index: layer.index,
        source: layer.desc.digest,
        desc: {
          mediaType: this.opts.format === 'zstdchunked' ? OCI_LAYER_ZSTD : OCI_LAYER_GZIP,
          digest: result.blobDigest,
          size: result.blobSize,
          // As the reference converter writes them, in its order.
          annotations: {
            [TOC_DIGEST_ANNOTATION]: result.tocDigest,
            [UNCOMPRESSED_SIZE_ANNOTATION]: String(result.uncompressedSize),
            ...(result.manifestChecksum !== undefined
              ? { [ZSTD_A_CHECKSUM_ANNOTATION]: result.manifestChecksum, [ZSTD_A_POSITION_ANNOTATION]: result.manifestPosition as string }
              : { [TOC_OFFSET_ANNOTATION]: String(result.tocOffset) }),
            ...(result.prefetchSize !== undefined ? { [PREFETCH_SIZE_ANNOTATION]: String(result.prefetchSize) } : {}),
          },
        },
        diffId: result.diffId,
        kept: false,
        tarBytes: spooled.tarBytes,
        entries: spooled.entries.length,
        missedPrioritized: result.missedPrioritized.length,
      };
    } finally {
      await spooled.close();
      await rm(`${base}.spool`, { force: true });
      await rm(`${base}.blob`, { force: true });
    }
  }

  /** An eStargz layer, copied byte for byte (its digest checked; its diff_id computed if the config has none). */
  private async copy(layer: InputLayer, progress: (phase: ConvertPhase, bytes: number) => void): Promise<ConvertedLayer> {
    const ctx = { layer: layer.desc.digest };
    const path = join(this.opts.tmpDir, `layer-${process.pid}-${this.seq++}.blob`);
    const out = await open(path, 'w');
    const blobHash = createHash('sha256');
    const diffHash = createHash('sha256');
    let bytes = 0;
    let tarBytes = 0;
    try {
      const store = this.store;
      async function* copied(): AsyncGenerator<Buffer> {
        for await (const piece of store.stream(layer.desc)) {
          blobHash.update(piece);
          await out.write(piece, 0, piece.length, bytes);
          bytes += piece.length;
          progress('copy', bytes);
          yield piece;
        }
      }
      const count = (chunk: Buffer): void => {
        diffHash.update(chunk);
        tarBytes += chunk.length;
      };
      if (layer.desc.mediaType === OCI_LAYER_ZSTD) {
        for await (const chunk of zstdStream(copied())) count(chunk);
      } else {
        await pipeline(Readable.from(copied()), createGunzip(), new Writable({
          write(chunk: Buffer, _enc, cb): void {
            count(chunk);
            cb();
          },
        }));
      }
      await out.close();
      const digest = `sha256:${blobHash.digest('hex')}`;
      if (digest !== layer.desc.digest) throw new DigestMismatchError(`layer ${layer.index} blob`, layer.desc.digest, digest, ctx);
      const diffId = `sha256:${diffHash.digest('hex')}`;
      if (layer.diffId !== undefined && diffId !== layer.diffId) {
        throw new DigestMismatchError(`layer ${layer.index} uncompressed content (the config's diff_id)`, layer.diffId, diffId, ctx);
      }
      if (bytes !== layer.desc.size) throw new ImageError(`layer ${layer.index} is ${bytes} bytes, its descriptor says ${layer.desc.size}`, ctx);
      progress('store', bytes);
      await this.sink.putBlobFile(path, digest, bytes);
      this.log.info({ layer: layer.index, digest }, 'layer is eStargz already: copied');
      return { index: layer.index, source: digest, desc: { ...layer.desc, mediaType: layer.desc.mediaType === DOCKER_LAYER_GZIP ? OCI_LAYER_GZIP : layer.desc.mediaType }, diffId, kept: true, tarBytes, entries: 0, missedPrioritized: 0 };
    } finally {
      await out.close().catch(() => undefined);
      await rm(path, { force: true });
    }
  }
}

/** Gathers small writes (one per gzip member) into large ones. */
class BufferedWriter {
  private parts: Buffer[] = [];
  private bytes = 0;

  constructor(private readonly out: (b: Buffer) => Promise<void>, private readonly size = 4 << 20) {}

  async write(b: Buffer): Promise<void> {
    this.parts.push(b);
    this.bytes += b.length;
    if (this.bytes >= this.size) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.bytes === 0) return;
    const data = Buffer.concat(this.parts, this.bytes);
    this.parts = [];
    this.bytes = 0;
    await this.out(data);
  }
}
