// A registry image as an image source: manifests negotiated by Accept and verified by
// digest, the platform chosen from an index, layers read by exact byte ranges.
import { sha256 } from './digest.js';
import { blobPath, manifestPath } from './api-paths.js';
import { ImageError } from '../errors.js';
import { parsePlatform, type Descriptor, type Platform, type ResolvedImage } from './image.js';
import { configPlatform, descriptors, manifestParts, parseJson, pickPlatform } from './manifest.js';
import { isIndex, isManifest, MANIFEST_ACCEPT } from './media-types.js';
import { formatImageRef, parseImageRef, type ImageRef } from './reference.js';
import type { BodyProgress, BodySink, HostStats, RangeOptions, RegistryClient, RepoTarget } from './registry-client.js';
import type { Extent } from './ranges.js';


/**
 * Manifests and indexes are read whole: a registry may not make them larger than this
 * (containerd's limit too), so a hostile one cannot fill memory or hand JSON.parse
 * megabytes of keys. Configs, read whole too, may be larger (long histories).
 */
const MAX_MANIFEST_BYTES = 4 << 20;
const MAX_CONFIG_BYTES = 16 << 20;

export class RegistryBlob {
  constructor(
    private readonly client: RegistryClient,
    private readonly target: RepoTarget,
    private readonly digest: string,
    readonly size: number,
    private readonly how: RangeOptions = {},
  ) {}

  readAt(offset: number, length: number, progress?: BodyProgress): Promise<Buffer> {
    return this.client.readRange(this.target, this.digest, offset, length, progress, this.how);
  }

  /** Several extents in as few requests as the registry allows (see RegistryClient.readRanges). */
  readRanges(extents: readonly Extent[], gap = 0, arrived?: (index: number, data: Buffer) => void, inOrder = false): Promise<Buffer[]> {
    return this.client.readRanges(this.target, this.digest, extents, gap, arrived, inOrder, this.how);
  }

  /** This blob, its reads failing with RangeUnsupportedError (body unread) where the registry ignores Range. */
  rangesOnly(): RegistryBlob {
    return new RegistryBlob(this.client, this.target, this.digest, this.size, { ...this.how, rangeRequired: true });
  }

  /** This blob read from another host first, when mirrors are configured (a refetch after bad bytes). */
  elsewhere(): RegistryBlob {
    return new RegistryBlob(this.client, this.target, this.digest, this.size, { ...this.how, avoidFirstMirror: true });
  }

  /** The whole blob in one GET, piece by piece to the sink `start` makes (again on a retry). */
  streamWhole(start: () => BodySink): Promise<number> {
    return this.client.streamBlob(this.target, this.digest, start);
  }
}

export class RegistrySource {
  readonly ref: ImageRef;
  private readonly target: RepoTarget;

  constructor(private readonly input: string, private readonly client: RegistryClient) {
    this.ref = parseImageRef(input);
    this.target = { endpoint: this.ref.endpoint, registry: this.ref.registry, repository: this.ref.repository };
  }

  async resolve(platform: string): Promise<ResolvedImage> {
    const want = parsePlatform(platform);
    const reference = this.ref.digest ?? (this.ref.tag as string);
    return this.resolveManifest(reference, undefined, want, 0);
  }

  blob(desc: Descriptor): RegistryBlob {
    return new RegistryBlob(this.client, this.target, desc.digest, desc.size);
  }

  abort(): void {
    this.client.abort();
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  hostStats(): ReadonlyMap<string, HostStats> {
    return this.client.hostStats;
  }

  /** The platform the image's config names (verified by digest). */
  async configPlatform(config: Descriptor): Promise<Platform | undefined> {
    return configPlatform(parseJson(await this.smallBlob(config), `config ${config.digest}`));
  }

  /** A small blob (a config) read whole and checked against its digest. */
  async smallBlob(desc: Descriptor): Promise<Buffer> {
    if (desc.size > MAX_CONFIG_BYTES) throw new ImageError(`${formatImageRef(this.ref)}: blob ${desc.digest} of ${desc.size} bytes is larger than a config may be (${MAX_CONFIG_BYTES})`);
    const bytes = (await this.client.call(this.target, { method: 'GET', path: blobPath(this.target.repository, desc.digest), maxBytes: MAX_CONFIG_BYTES })).body;
    if (sha256(bytes) !== desc.digest) throw new ImageError(`${formatImageRef(this.ref)}: blob ${desc.digest} has digest ${sha256(bytes)}`);
    return bytes;
  }

  /** A manifest or index by tag or digest; digests are always checked. */
  async fetchManifest(reference: string): Promise<{ bytes: Buffer; digest: string; mediaType: string }> {
    const r = await this.client.call(this.target, { method: 'GET', path: manifestPath(this.target.repository, reference), headers: { accept: MANIFEST_ACCEPT }, maxBytes: MAX_MANIFEST_BYTES });
    const digest = sha256(r.body);
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new ImageError(`${formatImageRef(this.ref)}: manifest ${reference} has digest ${digest}`);
    }
    const claimed = r.headers['docker-content-digest'];
    if (typeof claimed === 'string' && claimed.startsWith('sha256:') && claimed !== digest) {
      throw new ImageError(`${formatImageRef(this.ref)}: manifest digest ${digest} differs from Docker-Content-Digest ${claimed}`);
    }
    const ct = r.headers['content-type'];
    return { bytes: r.body, digest, mediaType: (typeof ct === 'string' ? ct.split(';')[0]?.trim() : undefined) ?? '' };
  }

  private async resolveManifest(reference: string, platformHint: Platform | undefined, want: Platform, depth: number): Promise<ResolvedImage> {
    if (depth > 4) throw new ImageError('nested indexes deeper than 4 levels');
    const m = await this.fetchManifest(reference);
    const doc = parseJson(m.bytes, `manifest ${m.digest}`);
    const mediaType = (doc['mediaType'] as string | undefined) ?? m.mediaType;
    if (isIndex(mediaType) || (!isManifest(mediaType) && Array.isArray(doc['manifests']))) {
      const chosen = pickPlatform(descriptors(doc, `index ${m.digest}`), want, `${formatImageRef(this.ref)}`);
      return this.resolveManifest(chosen.digest, chosen.platform, want, depth + 1);
    }
    const { config, layers } = manifestParts(doc, m.digest);
    // The config is not fetched here: a mount needs none of it, and it would be one more
    // round trip before the first read. configPlatform() reads it for those who ask.
    return { ref: this.input, manifestDigest: m.digest, platform: platformHint, config, layers };
  }
}
