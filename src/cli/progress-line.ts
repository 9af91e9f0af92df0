// One line on a TTY's stderr that follows an image's fetch progress events: bytes fetched
// of the total and the phases running. Errors get lines of their own.
import type { OpenImage } from '../layer/image.js';
import type { FetchEvent } from '../layer/progress.js';
import { mib } from './output.js';

export interface ProgressLine {
  /** Redraws now (e.g. at the end). */
  draw(): void;
  /** Stops following; ends the line. */
  stop(): void;
}

export function followProgress(image: OpenImage, label: string, tty: boolean): ProgressLine {
  let last = 0;
  let drawn = false;
  const draw = (): void => {
    if (!tty) return;
    const layers = image.progress.snapshot();
    const fetched = layers.reduce((n, l) => n + l.fetchedBytes, 0);
    const total = layers.reduce((n, l) => n + l.totalBytes, 0);
    const running = (['landmark', 'learned', 'background'] as const).filter((p) => layers.some((l) => l.phases[p] === 'running'));
    process.stderr.write(`\r\x1b[K${label}: ${mib(fetched)}/${mib(total)} MiB fetched${running.length > 0 ? ` · ${running.join(', ')}` : ''}`);
    drawn = true;
  };
  const off = image.progress.on((e: FetchEvent) => {
    if (e.type === 'error') {
      process.stderr.write(`${tty && drawn ? '\r\x1b[K' : ''}stargzfs: layer ${e.layer}: ${e.message} (${e.code})\n`);
      return;
    }
    const now = Date.now();
    if (e.type === 'phase' || now - last > 100) {
      last = now;
      draw();
    }
  });
  return {
    draw,
    stop: () => {
      off();
      if (tty && drawn) process.stderr.write('\n');
    },
  };
}
