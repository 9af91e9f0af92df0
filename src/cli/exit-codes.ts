// Stable exit codes (documented in the README): scripts and snapshotters branch on them.
import type { ErrorCode } from '../errors.js';

export const EXIT = {
  ok: 0,
  error: 1,
  usage: 2,
  notFound: 3,
  image: 4,
  integrity: 5,
  notLazy: 6,
  registry: 7,
} as const;

export function exitCodeFor(code: ErrorCode | undefined): number {
  switch (code) {
    case 'SGZ_NOT_FOUND':
    case 'SGZ_NOT_A_DIRECTORY':
    case 'SGZ_SYMLINK_LOOP':
    case 'SGZ_IS_A_DIRECTORY':
      return EXIT.notFound;
    case 'SGZ_IMAGE':
    case 'SGZ_REFERENCE':
      return EXIT.image;
    case 'SGZ_DIGEST_MISMATCH':
    case 'SGZ_TOC_UNVERIFIED':
    case 'SGZ_DECODE':
    case 'SGZ_TOC_FORMAT':
    case 'SGZ_TOC_ENTRY':
    case 'SGZ_TOC_TOO_LARGE':
    case 'SGZ_RANGE':
      return EXIT.integrity;
    case 'SGZ_NOT_ESTARGZ':
    case 'SGZ_EXTERNAL_TOC':
      return EXIT.notLazy;
    case 'SGZ_REGISTRY':
    case 'SGZ_RANGE_UNSUPPORTED':
    case 'SGZ_READ_TIMEOUT':
      return EXIT.registry;
    case 'SGZ_CONFIG':
    case 'SGZ_MOUNTPOINT_BUSY':
      return EXIT.usage;
    default:
      return EXIT.error;
  }
}
