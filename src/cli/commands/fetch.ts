// `stargzfs fetch <src>`: warms the chunk cache the way a mount does in the background
// (landmark prefetch, learned prefetch, then everything else, as the flags allow), with
// a progress line on a TTY, so an image is local before it is needed.
import type { OpenImage, WarmResult } from '../../layer/image.js';
import type { FetchEvent } from '../../layer/progress.js';
import { writeJson, write } from '../output.js';

const mib = (n: number): string => (n / 2 ** 20).toFixed(1);

export async function fetchCommand(image: OpenImage, json: boolean, tty: boolean): Promise<WarmResult> {
  let last = 0;
  const line = (): void => {
    const layers = image.progress.snapshot();
    const fetched = layers.reduce((n, l) => n + l.fetchedBytes, 0);
    const total = layers.reduce((n, l) => n + l.totalBytes, 0);
    const running = (['landmark', 'learned', 'background'] as const).filter((p) => layers.some((l) => l.phases[p] === 'running'));
    process.stderr.write(`\r\x1b[Kfetch: ${mib(fetched)}/${mib(total)} MiB fetched${running.length > 0 ? ` · ${running.join(', ')}` : ''}`);
  };
  const off = image.progress.on((e: FetchEvent) => {
    if (e.type === 'error') {
      process.stderr.write(`${tty ? '\r\x1b[K' : ''}stargzfs: layer ${e.layer}: ${e.message} (${e.code})\n`);
      return;
    }
    const now = Date.now();
    if (tty && (e.type === 'phase' || now - last > 100)) {
      last = now;
      line();
    }
  });
  try {
    const result = await image.warm();
    if (tty) {
      line();
      process.stderr.write('\n');
    }
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
        const phases = Object.entries(l.phases).map(([p, s]) => `${p} ${s}`).join(', ');
        await write(`layer ${i} ${l.digest}: fetched ${mib(l.fetchedBytes)} MiB of ${mib(l.totalBytes)} MiB; ${phases}${l.errors > 0 ? `; ${l.errors} error(s)` : ''}\n`);
      }
    }
    return result;
  } finally {
    off();
  }
}
