// `stargzfs spare`: start spare servers (src/cli/spare.ts), list them, or stop them.
import { ConfigError } from '../../errors.js';
import { listSpares, spareDir, startSpares, stopSpares } from '../spare.js';
import { write, writeJson } from '../output.js';

export interface SpareOptions {
  readonly count: number;
  readonly stop: boolean;
  readonly list: boolean;
  readonly json: boolean;
}

export async function spareCommand(main: string, o: SpareOptions): Promise<void> {
  const dir = spareDir(process.env, process.geteuid?.() ?? 0);
  if (dir === undefined) throw new ConfigError('spare', 'no directory for spares: set STARGZFS_SPARE_DIR or XDG_RUNTIME_DIR');
  let pids: number[];
  let said: string;
  if (o.list) {
    pids = listSpares(dir);
    said = `${pids.length} spare(s) waiting in ${dir}`;
  } else if (o.stop) {
    pids = await stopSpares(dir);
    said = `stopped ${pids.length} spare(s) in ${dir}`;
  } else {
    if (!Number.isSafeInteger(o.count) || o.count < 1 || o.count > 64) throw new ConfigError('count', `must be 1–64, got ${o.count}`);
    pids = await startSpares(main, dir, o.count);
    said = `${pids.length} spare(s) waiting in ${dir}`;
  }
  if (o.json) await writeJson({ dir, pids });
  else await write(`${said}${pids.length > 0 ? ` (pid ${pids.join(', ')})` : ''}\n`);
}
