// A small real tmpfs for tests of a full disk: mounted in a fresh temp dir, unmounted (lazily
// if something still holds it) and removed by the returned cleanup. Needs root.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function mountTmpfs(sizeBytes: number, prefix = 'stargzfs-tmpfs-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeBytes}`, 'tmpfs', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (err) {
    rmdirSync(dir);
    throw new Error(`cannot mount a tmpfs (these tests need root): ${(err as { stderr?: Buffer }).stderr?.toString().trim() ?? String(err)}`);
  }
  return {
    dir,
    cleanup: () => {
      try {
        execFileSync('umount', [dir], { stdio: 'ignore' });
      } catch {
        execFileSync('umount', ['-l', dir], { stdio: 'ignore' });
      }
      rmdirSync(dir);
    },
  };
}

/** Bytes free on the filesystem holding `path`. */
export function freeBytes(path: string): number {
  const s = statfsSync(path);
  return s.bavail * s.bsize;
}
