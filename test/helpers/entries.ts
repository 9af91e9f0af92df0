// Tar entries from short specs, for building test layers with our own writer.
import { emptyHeader, type TarEntry, type TarType } from '../../src/toc/tar.js';

export interface Spec {
  name: string;
  type?: TarType;
  body?: string | Buffer;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  link?: string;
  dev?: [number, number];
  xattrs?: Record<string, string | Buffer>;
}

export function entry(s: Spec): TarEntry {
  const type = s.type ?? (s.link !== undefined ? 'symlink' : s.name.endsWith('/') ? 'dir' : 'reg');
  const body = typeof s.body === 'string' ? Buffer.from(s.body) : (s.body ?? Buffer.alloc(0));
  const h = emptyHeader(s.name, type);
  if (s.mode !== undefined) h.mode = s.mode;
  h.uid = s.uid ?? 0;
  h.gid = s.gid ?? 0;
  h.mtime = s.mtime ?? 1700000000;
  h.linkName = s.link ?? '';
  h.size = type === 'reg' ? body.length : 0;
  if (s.dev) [h.devMajor, h.devMinor] = s.dev;
  for (const [k, v] of Object.entries(s.xattrs ?? {})) h.xattrs.set(k, typeof v === 'string' ? Buffer.from(v) : v);
  return { header: h, body: type === 'reg' ? body : Buffer.alloc(0) };
}

export const entries = (specs: readonly Spec[]): TarEntry[] => specs.map(entry);
