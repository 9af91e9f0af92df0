// Layers of tar entries → eStargz blobs → an OCI layout image, with the annotations the
// reference converter writes. The demo and the tests make their images with it; the
// convert command will stream through the same writer.
import { writeEstargz, type WriteResult, type WriterOptions } from '../toc/writer.js';
import { PREFETCH_SIZE_ANNOTATION, TOC_DIGEST_ANNOTATION, TOC_OFFSET_ANNOTATION, UNCOMPRESSED_SIZE_ANNOTATION } from '../toc/blob.js';
import type { TarEntry } from '../toc/tar.js';
import { writeOciImage } from '../http/oci-layout-writer.js';
import { OCI_LAYER_GZIP } from '../http/media-types.js';
import type { Descriptor } from '../http/image.js';

export interface BuildOptions extends WriterOptions {
  readonly refName?: string;
  /** Leave out the TOC digest annotation (an unverifiable layer). */
  readonly omitTocDigest?: boolean;
  /** Add the hints `stargzfs convert` writes (TOC offset, prefetch size) to the reference's annotations. */
  readonly hints?: boolean;
  /** Set last, over the others (tests use it to make a lying annotation). */
  readonly extraAnnotations?: Readonly<Record<string, string>>;
  /** Rewrite a blob before it is stored (tests use it to make hostile layers). */
  readonly transform?: (blob: Buffer, layer: number, result: WriteResult) => Buffer;
}

export interface BuiltImage {
  readonly manifest: Descriptor;
  readonly layers: readonly WriteResult[];
}

export async function buildEstargzImage(dir: string, layers: readonly (readonly TarEntry[])[], opts: BuildOptions = {}): Promise<BuiltImage> {
  const results: WriteResult[] = [];
  const blobs = layers.map((entries, i) => {
    const parts: Buffer[] = [];
    const r = writeEstargz(entries, (b) => parts.push(b), opts);
    results.push(r);
    const blob = Buffer.concat(parts);
    return opts.transform ? opts.transform(blob, i, r) : blob;
  });
  const manifest = await writeOciImage(dir, {
    ...(opts.refName !== undefined ? { refName: opts.refName } : {}),
    layers: blobs.map((blob, i) => {
      const r = results[i] as WriteResult;
      return {
        blob,
        mediaType: OCI_LAYER_GZIP,
        diffId: r.diffId,
        annotations: {
          ...(opts.omitTocDigest ? {} : { [TOC_DIGEST_ANNOTATION]: r.tocDigest }),
          [UNCOMPRESSED_SIZE_ANNOTATION]: String(r.uncompressedSize),
          ...(opts.hints === true && opts.format !== 'zstdchunked' ? { [TOC_OFFSET_ANNOTATION]: String(r.tocOffset) } : {}),
          ...(opts.hints === true && r.prefetchSize !== undefined ? { [PREFETCH_SIZE_ANNOTATION]: String(r.prefetchSize) } : {}),
          ...opts.extraAnnotations,
        },
      };
    }),
  });
  return { manifest, layers: results };
}
