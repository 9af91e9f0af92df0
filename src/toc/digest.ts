import { createHash } from 'node:crypto';

/** `sha256:<hex>` of some bytes: the form of every digest in TOCs and descriptors. */
export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
