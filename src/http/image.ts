// The image model every source (OCI layout, registry) resolves to.

export interface Platform {
  readonly os: string;
  readonly architecture: string;
  readonly variant?: string | undefined;
}

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly platform?: Platform | undefined;
}

export interface ResolvedImage {
  /** The reference as given. */
  readonly ref: string;
  readonly manifestDigest: string;
  readonly platform: Platform | undefined;
  readonly config: Descriptor;
  /** Base layer first. */
  readonly layers: readonly Descriptor[];
}

export function parsePlatform(s: string): Platform {
  const [os = '', architecture = '', variant] = s.split('/');
  return { os, architecture, variant };
}

export const formatPlatform = (p: Platform): string => [p.os, p.architecture, p.variant].filter(Boolean).join('/');

/** Does `candidate` run on `want`? An absent variant matches (arm64 defaults to v8). */
export function platformMatches(want: Platform, candidate: Platform | undefined): boolean {
  if (candidate === undefined) return false;
  if (candidate.os !== want.os || candidate.architecture !== want.architecture) return false;
  if (want.variant === undefined || candidate.variant === undefined) return true;
  return want.variant === candidate.variant;
}

const DIGEST_RE = /^sha256:[0-9a-f]{64}$/;
export const isDigest = (s: string): boolean => DIGEST_RE.test(s);
