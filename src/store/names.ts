// The names podman looks up in an additional layer store with `:ref`
// (containers-storage 1.43, drivers/overlay getAdditionalLayerPath):
// `<base64 std, padded, of the image reference>/<compressed layer digest>/{diff,info,blob,use}`.
import { isDigest } from '../http/image.js';
import { parseImageRef } from '../http/reference.js';

export const LAYER_FILES = ['diff', 'info', 'blob'] as const;
export type LayerFile = (typeof LAYER_FILES)[number];
/** Created by podman when it takes a layer into use (the store counts it and answers ENOENT). */
export const USE_FILE = 'use';

/**
 * The image reference a directory name encodes, or why it encodes none. Only the exact
 * encoding podman writes is accepted, so one reference has one directory.
 */
export function refOfName(name: string): { ref: string } | { why: string } {
  if (name.length === 0 || name.length > 8192 || !/^[A-Za-z0-9+/]+={0,2}$/.test(name) || name.length % 4 !== 0) return { why: 'not standard base64' };
  const ref = Buffer.from(name, 'base64').toString('utf8');
  if (Buffer.from(ref, 'utf8').toString('base64') !== name) return { why: 'not the base64 of a UTF-8 string' };
  try {
    parseImageRef(ref);
  } catch (err) {
    return { why: (err as Error).message };
  }
  return { ref };
}

export const nameOfRef = (ref: string): string => Buffer.from(ref, 'utf8').toString('base64');

export const isLayerDigest = (name: string): boolean => isDigest(name);
