// An image pushed to the real registry behind the fault proxy and opened for reading as
// a mount opens it: the layer/ fault tests read its files through the file reader while
// the proxy misbehaves. Read-ahead and neighbour fetches are off unless asked for, so
// each read is exactly one request the proxy can fault.
import { join } from 'node:path';
import type { ConfigInput } from '../../src/config.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import type { OpenImage } from '../../src/layer/image.js';
import type { BuildOptions } from '../../src/layer/build-image.js';
import { entries, type Spec } from './entries.js';
import { testConfig } from './config.js';
import { serveImage, type ServedImage } from './served-image.js';

export interface ReaderFixture {
  readonly served: ServedImage;
  readonly image: OpenImage;
  /** Bytes [off, off+len) of the file at `path` (the whole file by default), through the reader. */
  read(path: string, off?: number, len?: number): Promise<Buffer>;
}

let n = 0;

/**
 * Pushes `files` as one layer; `fn` runs with the image opened through the proxy, with
 * `config` (or what it makes of the served image: a mirror needs its address) over quiet
 * test defaults.
 */
export async function withServedReader(
  files: readonly Spec[], config: ConfigInput | ((served: ServedImage) => Promise<ConfigInput>), fn: (f: ReaderFixture) => Promise<void>, build: BuildOptions = {},
): Promise<void> {
  const served = await serveImage(`faults/image${++n}`, [entries(files)], { compressionLevel: 1, ...build });
  try {
    const extra = typeof config === 'function' ? await config(served) : config;
    const cfg = testConfig(join(served.dir, 'root'), { readAhead: 0, neighbourBytes: 0, ...extra });
    await withImage(cfg, served.ref, async ({ image }) => {
      const view = image.merged();
      const read = (path: string, off = 0, len?: number): Promise<Buffer> => {
        const node = resolvePath(view, path);
        return image.reader.read(node, path, off, len ?? node.size);
      };
      await fn({ served, image, read });
    });
  } finally {
    await served.stop();
  }
}
