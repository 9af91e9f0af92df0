// `docker save` output as convert's input: manifest.json names each image's config
// and layer files inside the tar. The image is described to the converter as an OCI
// manifest made here; layer files are read in place. Older archives name layers
// `<id>/layer.tar` with no digest of their own, so those are checked against the
// config's diff_ids instead (they are uncompressed tars).
import { sha256 } from '../http/digest.js';
import { ImageError } from '../errors.js';
import type { Descriptor } from '../http/image.js';
import { parseJson } from '../http/manifest.js';
import { OCI_CONFIG, OCI_LAYER_TAR, OCI_MANIFEST } from '../http/media-types.js';
import type { ImageStore } from './input.js';
import type { SourceFiles } from './files.js';

interface SavedImage {
  Config?: unknown;
  RepoTags?: unknown;
  Layers?: unknown;
}

const BLOB_PATH = /^blobs\/sha256\/([0-9a-f]{64})$/;

export class DockerArchiveStore implements ImageStore {
  readonly name: string;
  private readonly made = new Map<string, Buffer>();
  /** Digest → member path, for the config and layers. */
  private readonly paths = new Map<string, string>();
  private readonly unchecked = new Set<string>();

  constructor(private readonly files: SourceFiles, private readonly tag: string | undefined) {
    this.name = files.where;
  }

  async root(): Promise<Descriptor> {
    const raw = await this.files.read('manifest.json');
    if (raw === undefined) throw new ImageError(`${this.name} is neither a docker save archive (no manifest.json) nor an OCI archive`);
    let list: SavedImage[];
    try {
      list = JSON.parse(raw.toString('utf8')) as SavedImage[];
      if (!Array.isArray(list)) throw new Error('not an array');
    } catch (err) {
      throw new ImageError(`${this.name}: manifest.json is not a list of images`, {}, { cause: err });
    }
    const tags = (i: SavedImage): string[] => (Array.isArray(i.RepoTags) ? i.RepoTags.filter((t): t is string => typeof t === 'string') : []);
    const chosen = this.tag === undefined ? list : list.filter((i) => tags(i).some((t) => t === this.tag || t.endsWith(`:${this.tag}`)));
    if (chosen.length !== 1) {
      const have = list.flatMap(tags).join(', ') || `${list.length} untagged`;
      throw new ImageError(`${this.name} holds ${chosen.length === 0 ? 'no' : chosen.length} image(s)${this.tag !== undefined ? ` tagged ${this.tag}` : ''}; name one with :TAG (it has: ${have})`);
    }
    const image = chosen[0] as SavedImage;
    if (typeof image.Config !== 'string' || !Array.isArray(image.Layers)) throw new ImageError(`${this.name}: manifest.json entry without Config or Layers`);
    const configBytes = await this.files.read(image.Config);
    if (configBytes === undefined) throw new ImageError(`${this.name}: config ${image.Config} is missing`);
    const configDigest = sha256(configBytes);
    this.made.set(configDigest, configBytes);
    const config = parseJson(configBytes, `${this.name}: ${image.Config}`);
    const diffIds = ((config['rootfs'] as { diff_ids?: unknown } | undefined)?.diff_ids ?? []) as unknown[];
    const layers: Descriptor[] = [];
    for (const [i, path] of (image.Layers as unknown[]).entries()) {
      if (typeof path !== 'string') throw new ImageError(`${this.name}: layer ${i} has no path in manifest.json`);
      const blob = BLOB_PATH.exec(path)?.[1];
      const digest = blob !== undefined ? `sha256:${blob}` : diffIds[i];
      if (typeof digest !== 'string') throw new ImageError(`${this.name}: layer ${i} (${path}) has no digest and no diff_id`);
      if (blob === undefined) this.unchecked.add(digest);
      this.paths.set(digest, path);
      layers.push({ mediaType: OCI_LAYER_TAR, digest, size: 0 });
    }
    const manifest = Buffer.from(JSON.stringify({
      schemaVersion: 2,
      mediaType: OCI_MANIFEST,
      config: { mediaType: OCI_CONFIG, digest: configDigest, size: configBytes.length },
      layers,
    }));
    const digest = sha256(manifest);
    this.made.set(digest, manifest);
    return { mediaType: OCI_MANIFEST, digest, size: manifest.length };
  }

  async bytes(desc: Descriptor): Promise<Buffer> {
    const made = this.made.get(desc.digest);
    if (made === undefined) throw new ImageError(`${this.name}: no document ${desc.digest}`);
    return made;
  }

  stream(desc: Descriptor): AsyncIterable<Buffer> {
    const path = this.paths.get(desc.digest);
    if (path === undefined) throw new ImageError(`${this.name}: no layer ${desc.digest}`);
    return this.files.stream(path);
  }

  hasDigest(desc: Descriptor): boolean {
    return !this.unchecked.has(desc.digest);
  }

  async close(): Promise<void> {
    await this.files.close();
  }
}
