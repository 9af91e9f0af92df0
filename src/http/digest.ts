import { createHash } from 'node:crypto';

/** `sha256:<hex>` of some bytes, as descriptors name blobs. (toc/ has its own: folders do not import each other.) */
export const sha256 = (b: Buffer): string => `sha256:${createHash('sha256').update(b).digest('hex')}`;
