// `stargzfs unmount <mountpoint>` and `stargzfs status <mountpoint>`: the mount's own
// status file is the source of both (its pid tells whom to wait for).
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { detach, mountInfo } from '../mountpoint.js';
import { STATUS_DIR, STATUS_FILE } from '../../fs/operations.js';
import { NotFoundError } from '../../errors.js';
import { mib, write, writeJson } from '../output.js';
import { alive } from '../pids.js';

interface StatusJson {
  pid: number;
  image: string;
  manifest: string;
  startedAt: string;
  metrics: string | null;
  mountpoint: string;
  layers: Array<{
    index: number; digest: string; format: string; verified: boolean; lazy: boolean; notLazyReason: string | null;
    fetchedBytes: number; totalBytes: number; prefetch: Record<string, string> | null; errors: number;
    lastError: { code: string; message: string } | null;
  }>;
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

export async function statusCommand(mountpoint: string, json: boolean): Promise<void> {
  const s = readStatus(mountpoint);
  if (json) return writeJson(s);
  const lines = [`${s.mountpoint}: ${s.image} (${s.manifest}), pid ${s.pid}, since ${s.startedAt}${s.metrics ? `, metrics at ${s.metrics}` : ''}`];
  for (const l of s.layers) {
    const what = l.lazy ? `${l.format}${l.verified ? '' : ' UNVERIFIED'}` : `NOT LAZY: ${l.notLazyReason ?? l.lastError?.message ?? 'unreadable'}`;
    const phases = l.prefetch !== null ? Object.entries(l.prefetch).map(([k, v]) => `${k} ${v}`).join(', ') : '';
    lines.push(`  layer ${l.index} ${l.digest.slice(0, 19)}  ${what}  fetched ${mib(l.fetchedBytes)} of ${mib(l.totalBytes)} MiB  ${phases}${l.errors > 0 ? `  ${l.errors} error(s), last: ${l.lastError?.message ?? ''}` : ''}`);
  }
  await write(`${lines.join('\n')}\n`);
}
