// `stargzfs unmount <mountpoint>` and `stargzfs status <mountpoint>`: the mount's own
// status file is the source of both (its pid tells whom to wait for). The file is taken
// only with the inode number the server gives it and on the device mounted there: image
// content cannot have either, so an image shipping /.stargzfs/status.json cannot speak
// for the mount.
import { readFileSync, statSync } from 'node:fs';
import { resolve } from 'node:path';
import { detach, mountInfo } from '../../service/mountpoint.js';
import { STATUS_DIR, STATUS_FILE, STATUS_FILE_INO } from '../../fs/operations.js';
import { NotFoundError } from '../../errors.js';
import { mib, write, writeJson } from '../output.js';
import { alive } from '../pids.js';
import { answerOf, callService } from '../../service/client.js';
import type { CacheHealth } from '../../chunkcache/chunk-store.js';

export interface StatusJson {
  pid: number;
  /** The supervisor holding the mount (absent: none). */
  supervisorPid?: number | null;
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
  /** Set when a service (`stargzfs serve`) serves the mount. */
  service?: { pid: number; controlSocket: string };
}

/** "major:minor" as /proc/self/mountinfo writes a device number (Linux's dev_t encoding). */
export function devString(dev: bigint): string {
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}:${minor}`;
}

export function readStatus(mountpoint: string): StatusJson {
  const none = new NotFoundError({ path: `${mountpoint} (no stargzfs mount there)` });
  const mount = mountInfo(mountpoint);
  if (mount?.fstype !== 'fuse.stargzfs') throw none;
  const file = resolve(mountpoint, STATUS_DIR, STATUS_FILE);
  let text: string;
  try {
    const st = statSync(file, { bigint: true });
    if (st.ino !== BigInt(STATUS_FILE_INO) || devString(st.dev) !== mount.dev) throw none;
    text = readFileSync(file, 'utf8');
  } catch {
    throw none;
  }
  try {
    return JSON.parse(text) as StatusJson;
  } catch {
    throw none;
  }
}

export async function unmountCommand(mountpoint: string): Promise<void> {
  if (mountInfo(mountpoint)?.fstype !== 'fuse.stargzfs') throw new NotFoundError({ path: `${mountpoint} (no stargzfs mount there)` });
  let pid: number | undefined;
  let supervisor: number | undefined;
  let status: StatusJson | undefined;
  try {
    status = readStatus(mountpoint);
    pid = Number.isSafeInteger(status.pid) && status.pid > 1 ? status.pid : undefined;
    supervisor = typeof status.supervisorPid === 'number' && status.supervisorPid > 1 ? status.supervisorPid : undefined;
  } catch {
    pid = undefined; // a dead mount: detaching it is all there is to do
  }
  if (status?.service !== undefined) {
    // The service's mount: it detaches it and answers once the mount is gone (its process stays).
    const answer = await callService(status.service.controlSocket, 'DELETE', `/v1/mounts?mountpoint=${encodeURIComponent(status.mountpoint)}`);
    if (answer !== undefined) {
      answerOf(answer);
      return;
    }
    pid = undefined;
  }
  detach(mountpoint);
  // The serving process ends when its session does, and its supervisor with it; wait for
  // both so a caller can reuse the mountpoint.
  for (let i = 0; pid !== undefined && alive(pid) && i < 200; i++) await new Promise((r) => setTimeout(r, 50));
  for (let i = 0; supervisor !== undefined && alive(supervisor) && i < 100; i++) await new Promise((r) => setTimeout(r, 50));
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
  const lines = [`${s.mountpoint}: ${s.image} (${s.manifest}), ${s.service !== undefined ? 'service ' : ''}pid ${s.pid}, since ${s.startedAt}${s.metrics ? `, metrics at ${s.metrics}` : ''}`];
  for (const l of s.layers) {
    const what = l.lazy ? `${l.format}${l.verified ? '' : ' UNVERIFIED'}` : `NOT LAZY: ${l.notLazyReason ?? l.lastError?.message ?? 'unreadable'}`;
    const phases = l.prefetch !== null ? Object.entries(l.prefetch).map(([k, v]) => `${k} ${v}`).join(', ') : '';
    const again = (l.transferredBytes ?? 0) > l.fetchedBytes ? ` (${mib(l.transferredBytes ?? 0)} MiB transferred)` : '';
    lines.push(`  layer ${l.index} ${l.digest.slice(0, 19)}  ${what}  fetched ${mib(l.fetchedBytes)} of ${mib(l.totalBytes)} MiB${again}  ${phases}${l.errors > 0 ? `  ${l.errors} error(s), last: ${l.lastError?.message ?? ''}` : ''}`);
  }
  if (s.cache !== undefined) lines.push(cacheLine(s.cache));
  await write(`${lines.join('\n')}\n`);
}
