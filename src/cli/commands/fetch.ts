// `stargzfs fetch <src>`: warms the chunk cache the way a mount does in the background
// (landmark prefetch, learned prefetch, then everything else, as the flags allow), with
// a progress line on a TTY, so an image is local before it is needed.
import type { OpenImage, WarmResult } from '../../layer/image.js';
import { followProgress } from '../progress-line.js';
import { mib, writeJson, write } from '../output.js';

export async function fetchCommand(image: OpenImage, json: boolean, tty: boolean): Promise<WarmResult> {
  const line = followProgress(image, 'fetch', tty);
  try {
    const result = await image.warm();
    line.draw();
    line.stop();
    const layers = image.progress.snapshot();
    if (json) {
      await writeJson({
        image: image.resolved.manifestDigest,
        layers: layers.map((l) => ({ digest: l.digest, fetchedBytes: l.fetchedBytes, totalBytes: l.totalBytes, phases: l.phases, errors: l.errors })),
        landmark: result.landmark,
        learned: result.learned ?? null,
        background: result.background ?? null,
      });
    } else {
      for (const [i, l] of layers.entries()) {
        const phases = Object.entries(l.phases).map(([p, st]) => `${p} ${st}`).join(', ');
        await write(`layer ${i} ${l.digest}: fetched ${mib(l.fetchedBytes)} MiB of ${mib(l.totalBytes)} MiB; ${phases}${l.errors > 0 ? `; ${l.errors} error(s)` : ''}\n`);
      }
    }
    return result;
  } catch (err) {
    line.stop();
    throw err;
  }
}
