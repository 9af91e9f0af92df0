// `stargzfs unmount <mountpoint>` and `stargzfs status <mountpoint>`: the mount's own
// status file is the source of both (its pid tells whom to wait for).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { detach, mountInfo } from '../mountpoint.js';
import { STATUS_DIR, STATUS_FILE } from '../../fs/operations.js';
import { NotFoundError } from '../../errors.js';
import { mib, write, writeJson } from '../output.js';
import { alive } from '../pids.js';
import type { CacheHealth } from '../../chunkcache/chunk-store.js';

interface StatusJson {
  pid: number;
  image: string;
  manifest: string;
  startedAt: string;
  metrics: string | null;
  mountpoint: string;
  layers: Array<{
    index: number; digest: string; format: string; verified: boolean; lazy: boolean; notLazyReason: string | null;
    fetchedBytes: number; totalBytes: number; transferredBytes?: number; prefetch: Record<string, string> | null; errors: number;
    lastError: { code: string; message: string } | null;
  }>;
  /** Absent from servers older than the cache section. */
  cache?: CacheHealth;
}

function readStatus(mountpoint: string): StatusJson {
  try {
    return JSON.parse(readFileSync(resolve(mountpoint, STATUS_DIR, STATUS_FILE), 'utf8')) as StatusJson;
  } catch {
    throw new NotFoundError({ path: `${mountpoint} (no stargzfs mount there)` });
  }
}

export async function unmountCommand(mountpoint: string): Promise<void> {
  if (mountInfo(mountpoint)?.fstype !== 'fuse.stargzfs') throw new NotFoundError({ path: `${mountpoint} (no stargzfs mount there)` });
  let pid: number | undefined;
  try {
    pid = readStatus(mountpoint).pid;
  } catch {
    pid = undefined; // a dead mount: detaching it is all there is to do
  }
  detach(mountpoint);
  // The serving process ends when its session does; wait for it so a caller can reuse the mountpoint.
  for (let i = 0; pid !== undefined && alive(pid) && i < 200; i++) await new Promise((r) => setTimeout(r, 50));
}

function cacheLine(c: CacheHealth): string {
  const quota = c.quotaBytes < c.configuredQuotaBytes ? `${mib(c.quotaBytes)} MiB quota (lowered from ${mib(c.configuredQuotaBytes)}: what the disk holds)` : `${mib(c.quotaBytes)} MiB quota`;
  const full = c.diskFull ? '  DISK FULL: new chunks kept in memory only' : '';
  const errors = c.writeErrors > 0 ? `  ${c.writeErrors} write error(s), last ${c.lastWriteError ?? '?'}, ${c.memoryOnlyChunks} chunk(s) kept in memory only` : '';
  return `  cache: ${mib(c.usedBytes)} MiB of a ${quota}${full}${errors}`;
}

export async function statusCommand(mountpoint: string, json: boolean): Promise<void> {
  const s = readStatus(mountpoint);
  if (json) return writeJson(s);
  const lines = [`${s.mountpoint}: ${s.image} (${s.manifest}), pid ${s.pid}, since ${s.startedAt}${s.metrics ? `, metrics at ${s.metrics}` : ''}`];
  for (const l of s.layers) {
    const what = l.lazy ? `${l.format}${l.verified ? '' : ' UNVERIFIED'}` : `NOT LAZY: ${l.notLazyReason ?? l.lastError?.message ?? 'unreadable'}`;
    const phases = l.prefetch !== null ? Object.entries(l.prefetch).map(([k, v]) => `${k} ${v}`).join(', ') : '';
    const again = (l.transferredBytes ?? 0) > l.fetchedBytes ? ` (${mib(l.transferredBytes ?? 0)} MiB transferred)` : '';
    lines.push(`  layer ${l.index} ${l.digest.slice(0, 19)}  ${what}  fetched ${mib(l.fetchedBytes)} of ${mib(l.totalBytes)} MiB${again}  ${phases}${l.errors > 0 ? `  ${l.errors} error(s), last: ${l.lastError?.message ?? ''}` : ''}`);
  }
  if (s.cache !== undefined) lines.push(cacheLine(s.cache));
  await write(`${lines.join('\n')}\n`);
}
