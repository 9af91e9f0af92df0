// Parsing and choosing among manifests, shared by every image source.
import { ImageError } from '../errors.js';
import { formatPlatform, isDigest, platformMatches, type Descriptor, type Platform } from './image.js';

export function descriptors(doc: unknown, where: string): Descriptor[] {
  const m = (doc as { manifests?: unknown }).manifests;
  if (!Array.isArray(m)) throw new ImageError(`${where} has no "manifests" array`);
  return m.map((d, i) => descriptor(d, `${where} manifest ${i}`));
}

export function descriptor(raw: unknown, where: string): Descriptor {
  const d = raw as Record<string, unknown> | null;
  if (d === null || typeof d !== 'object') throw new ImageError(`${where}: descriptor is not an object`);
  const { mediaType, digest, size, annotations, platform } = d;
  if (typeof digest !== 'string' || !isDigest(digest)) throw new ImageError(`${where}: missing or malformed digest`);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) throw new ImageError(`${where}: missing or malformed size`);
  const p = platform as { os?: unknown; architecture?: unknown; variant?: unknown } | undefined;
  return {
    mediaType: typeof mediaType === 'string' ? mediaType : '',
    digest,
    size,
    annotations: annotations !== null && typeof annotations === 'object' ? (annotations as Record<string, string>) : undefined,
    platform:
      p !== undefined && typeof p.os === 'string' && typeof p.architecture === 'string'
        ? { os: p.os, architecture: p.architecture, variant: typeof p.variant === 'string' ? p.variant : undefined }
        : undefined,
  };
}

export function pickPlatform(list: readonly Descriptor[], want: Platform, where: string): Descriptor {
  const match = list.find((d) => platformMatches(want, d.platform));
  if (match === undefined) {
    const have = list.map((d) => (d.platform ? formatPlatform(d.platform) : '?')).join(', ');
    throw new ImageError(`${where}: no image for platform ${formatPlatform(want)} (available: ${have}); choose one with --platform`);
  }
  return match;
}

export function parseJson(bytes: Buffer, what: string): Record<string, unknown> {
  try {
    const v = JSON.parse(bytes.toString('utf8')) as unknown;
    if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch (err) {
    throw new ImageError(`${what} is not a valid JSON object`, {}, { cause: err });
  }
}

/** The layers and config of an image manifest document. */
export function manifestParts(doc: Record<string, unknown>, where: string): { config: Descriptor; layers: Descriptor[] } {
  const config = descriptor(doc['config'], `${where} config`);
  const layers = Array.isArray(doc['layers']) ? doc['layers'].map((l, i) => descriptor(l, `${where} layer ${i}`)) : [];
  return { config, layers };
}

export function configPlatform(cfg: Record<string, unknown>): Platform | undefined {
  const { os, architecture, variant } = cfg as { os?: unknown; architecture?: unknown; variant?: unknown };
  return typeof os === 'string' && typeof architecture === 'string'
    ? { os, architecture, variant: typeof variant === 'string' ? variant : undefined }
    : undefined;
}
