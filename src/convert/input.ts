// What `convert` reads: an image store (registry, OCI layout, image archive, directory)
// walked from its root descriptor into the images to convert, one per platform. Every
// manifest, index and config is verified by digest when the store can (stores read
// them through bytes()); layer blobs are streamed, and the converter checks their
// digest and diff_id as they pass.
import { ImageError } from '../errors.js';
import { formatPlatform, platformMatches, type Descriptor, type Platform } from '../http/image.js';
import { configPlatform, descriptors, manifestParts, parseJson } from '../http/manifest.js';
import { isIndex, isManifest } from '../http/media-types.js';

export interface ImageStore {
  /** How messages name the source. */
  readonly name: string;
  /** The manifest or index the reference names. */
  root(): Promise<Descriptor>;
  /** A manifest, index or config, verified against its descriptor. */
  bytes(desc: Descriptor): Promise<Buffer>;
  /** A layer blob's bytes, in order (not verified: the converter hashes them as they pass). */
  stream(desc: Descriptor): AsyncIterable<Buffer>;
  /** False for layers whose descriptor digest is made up (a directory); their bytes cannot be checked. */
  hasDigest(desc: Descriptor): boolean;
  close(): Promise<void>;
}

export interface InputLayer {
  readonly index: number;
  readonly desc: Descriptor;
  /** The config's diff_id for this layer, when it has one. */
  readonly diffId: string | undefined;
}

export interface InputImage {
  /** The manifest's descriptor as the source lists it (platform and annotations kept). */
  readonly desc: Descriptor;
  readonly platform: Platform | undefined;
  readonly manifest: Record<string, unknown>;
  readonly config: Record<string, unknown>;
  readonly configDesc: Descriptor;
  readonly layers: readonly InputLayer[];
}

export interface InputSet {
  /** The source's index when it has one (the output is then an index too). */
  readonly index: Record<string, unknown> | undefined;
  readonly images: readonly InputImage[];
}

const REFERENCE_TYPE = 'vnd.docker.reference.type';

/**
 * The images under the store's root: every platform of an index, or those in
 * `platforms`. Attestation manifests (buildx's unknown/unknown) are left out.
 */
export async function readInput(store: ImageStore, platforms: readonly Platform[] | undefined): Promise<InputSet> {
  const root = await store.root();
  const doc = parseJson(await store.bytes(root), `${store.name}: ${root.digest}`);
  const mediaType = (doc['mediaType'] as string | undefined) ?? root.mediaType;
  if (!(isIndex(mediaType) || (!isManifest(mediaType) && Array.isArray(doc['manifests'])))) {
    return { index: undefined, images: [await readImage(store, root, doc)] };
  }
  const all = descriptors(doc, `${store.name}: index ${root.digest}`).filter(
    (d) => d.annotations?.[REFERENCE_TYPE] === undefined && d.platform?.os !== 'unknown',
  );
  const chosen = platforms === undefined ? all : all.filter((d) => platforms.some((p) => platformMatches(p, d.platform)));
  if (chosen.length === 0) {
    const have = all.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ') || 'nothing';
    throw new ImageError(`${store.name}: no image for ${platforms?.map(formatPlatform).join(', ') ?? 'any platform'} (available: ${have})`);
  }
  const images: InputImage[] = [];
  for (const d of chosen) {
    const m = parseJson(await store.bytes(d), `${store.name}: manifest ${d.digest}`);
    if (isIndex((m['mediaType'] as string | undefined) ?? d.mediaType)) throw new ImageError(`${store.name}: nested index ${d.digest} is not supported by convert`);
    images.push(await readImage(store, d, m));
  }
  return { index: doc, images };
}

async function readImage(store: ImageStore, desc: Descriptor, manifest: Record<string, unknown>): Promise<InputImage> {
  const { config: configDesc, layers } = manifestParts(manifest, `${store.name}: manifest ${desc.digest}`);
  const config = parseJson(await store.bytes(configDesc), `${store.name}: config ${configDesc.digest}`);
  const rootfs = config['rootfs'] as { diff_ids?: unknown } | undefined;
  const diffIds = Array.isArray(rootfs?.diff_ids) ? (rootfs.diff_ids as unknown[]) : [];
  if (diffIds.length > 0 && diffIds.length !== layers.length) {
    throw new ImageError(`${store.name}: config ${configDesc.digest} lists ${diffIds.length} diff_ids for ${layers.length} layers`);
  }
  return {
    desc,
    platform: desc.platform ?? configPlatform(config),
    manifest,
    config,
    configDesc,
    layers: layers.map((l, index) => ({ index, desc: l, diffId: typeof diffIds[index] === 'string' ? (diffIds[index] as string) : undefined })),
  };
}
