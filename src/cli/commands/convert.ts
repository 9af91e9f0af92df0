// `stargzfs convert <src> <dst>`: the image as eStargz, written to a registry or an OCI
// layout. A progress line on a TTY; a summary, or --json, on stdout.
import type { ConvertProgress, ConvertResult, Converter } from '../../convert/convert.js';
import { mib, write, writeJson } from '../output.js';

export async function convertCommand(converter: Converter, src: string, dst: string, json: boolean): Promise<void> {
  const result = await converter.run();
  if (json) {
    await writeJson({ source: src, destination: dst, ...result });
    return;
  }
  await write(summary(result, src, dst));
}

function summary(r: ConvertResult, src: string, dst: string): string {
  const lines: string[] = [];
  for (const img of r.images) {
    const platform = img.platform ? `${img.platform.os}/${img.platform.architecture}${img.platform.variant ? `/${img.platform.variant}` : ''}` : 'image';
    lines.push(`${platform}: ${img.manifest.digest}`);
    for (const l of img.layers) {
      const what = l.kept
        ? 'eStargz already, copied'
        : `${mib(l.tarBytes)} MiB tar, ${l.entries} entries → ${mib(l.desc.size)} MiB eStargz${l.missedPrioritized > 0 ? `, ${l.missedPrioritized} prioritized paths not in this layer` : ''}`;
      lines.push(`  layer ${l.index}: ${l.desc.digest} (${what})`);
    }
  }
  lines.push(`converted ${src} → ${dst}: ${r.root.digest}`);
  return `${lines.join('\n')}\n`;
}

/** Follows convert's progress on a TTY's stderr, one line redrawn at most every 100 ms. */
export function convertProgressLine(tty: boolean): { onProgress: (p: ConvertProgress) => void; stop: () => void } {
  let last = 0;
  let drawn = false;
  return {
    onProgress: (p) => {
      const now = Date.now();
      if (!tty || now - last < 100) return;
      last = now;
      drawn = true;
      const img = p.images > 1 ? `image ${p.image + 1}/${p.images} ` : '';
      const of = p.total > 0 && p.phase !== 'write' ? `/${mib(p.total)}` : '';
      const verb = { read: 'reading', write: 'writing', copy: 'copying', store: 'storing' }[p.phase];
      process.stderr.write(`\r\x1b[K${img}layer ${p.layer + 1}/${p.layers}: ${verb} ${mib(p.bytes)}${of} MiB`);
    },
    stop: () => {
      if (drawn) process.stderr.write('\r\x1b[K');
    },
  };
}
