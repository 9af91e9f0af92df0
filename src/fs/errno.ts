// The one place errors become errno for the kernel.
import { constants } from 'node:os';
import { StargzfsError } from '../errors.js';

const E = constants.errno;

export function errnoOf(err: unknown): number {
  if (err instanceof StargzfsError) {
    switch (err.code) {
      case 'SGZ_NOT_FOUND': return E.ENOENT;
      case 'SGZ_NOT_A_DIRECTORY': return E.ENOTDIR;
      case 'SGZ_SYMLINK_LOOP': return E.ELOOP;
      case 'SGZ_IS_A_DIRECTORY': return E.EISDIR;
      case 'SGZ_STALE': return E.ESTALE;
      case 'SGZ_MOUNTPOINT_BUSY': return E.EBUSY;
      default: return E.EIO; // integrity, format, registry: the bytes cannot be served right
    }
  }
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code !== undefined && code in E) return E[code as keyof typeof E];
  return E.EIO;
}
