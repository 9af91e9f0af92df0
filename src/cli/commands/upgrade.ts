// `stargzfs mount --upgrade MOUNTPOINT`: the mount's server is replaced by one started
// from the installed binary, and the mount stays: its supervisor starts the new server,
// hands it the live /dev/fuse connection, and lets the old one go once the new one
// serves; requests the old one had not answered are answered by the new one (src/supervisor/).
import { readStatus } from './unmount.js';
import { SupervisorError } from '../../errors.js';

/** How long the new server may take to start and take over (a Node start, the image from meta.db). */
const UPGRADE_WAIT_MS = 30_000;

export async function upgradeCommand(mountpoint: string): Promise<void> {
  const before = readStatus(mountpoint);
  const supervisor = before.supervisorPid;
  if (typeof supervisor !== 'number' || supervisor <= 1) {
    throw new SupervisorError(`${mountpoint}: no supervisor holds this mount (mounted with --no-supervise, or by a service: send the service SIGHUP)`);
  }
  process.kill(supervisor, 'SIGUSR2');
  const until = Date.now() + UPGRADE_WAIT_MS;
  for (;;) {
    await new Promise((r) => setTimeout(r, 100));
    let now: { pid: number } | undefined;
    try {
      now = readStatus(mountpoint);
    } catch {
      now = undefined; // the old server just went: asked again
    }
    if (now !== undefined && now.pid !== before.pid) {
      process.stderr.write(`stargzfs: ${mountpoint} is served by a new server (pid ${before.pid} → ${now.pid}); the mount stayed\n`);
      return;
    }
    if (Date.now() > until) throw new SupervisorError(`${mountpoint}: no new server took over within ${UPGRADE_WAIT_MS / 1000} s (see the mount's log)`);
  }
}
