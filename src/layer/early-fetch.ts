// A mount's first requests, sent from the bundle's small entry while the CLI's modules
// load (http/early-responses.ts says why and how they are used): the manifest by the
// reference given and, when that is an image manifest, the TOC tail of each layer not
// indexed yet, exactly as toc/toc-reader.ts will ask for it (from the TOC offset hint
// when the layer has one), then, once that has arrived, the landmark region of a layer
// whose annotations give its size (layer/blob-head.ts asks for exactly that range).
// An index, an error or an odd answer ends it; the normal path then does everything.
import { MANIFEST_ACCEPT } from '../http/media-types.js';
import { blobPath, byteRange, manifestPath } from '../http/api-paths.js';
import { parseImageRef } from '../http/reference.js';
import { earlyBody, earlyEnd, sendEarly } from '../http/early-responses.js';
import { prefetchSizeHint, tocOffsetHint } from '../toc/blob.js';
import { tocTailExtent, type TocReadOptions } from '../toc/toc-reader.js';
import { indexedLayerDigests } from '../toc/inode-db.js';
import { headLength } from './blob-head.js';

export interface EarlyFetchTarget {
  /** The image reference as given to the command. */
  readonly ref: string;
  readonly plainHttp: boolean;
  readonly toc: TocReadOptions;
  /** The state's meta.db: layers indexed there already need no TOC. */
  readonly metaDb: string;
  /** The mount will prefetch landmark regions (no --no-prefetch). */
  readonly prefetch: boolean;
}

/**
 * Sends the requests; the answers wait for the registry client. Resolves once the first
 * is on the wire: a connection is made, and the request written, only when this thread
 * gets back to its event loop, so the caller waits for that before it runs a stretch of
 * synchronous work (loading or starting the CLI).
 */
export function startEarlyFetch(target: EarlyFetchTarget): Promise<void> {
  let ref;
  try {
    ref = parseImageRef(target.ref);
  } catch {
    return Promise.resolve(); // the command reports it
  }
  const origin = `${target.plainHttp ? 'http' : 'https'}://${ref.endpoint}`;
  const reference = ref.digest ?? ref.tag;
  if (reference === undefined) return Promise.resolve();
  const manifest = new URL(manifestPath(ref.repository, reference), origin);
  let sent!: () => void;
  const onWire = new Promise<void>((resolve) => (sent = resolve));
  void sendEarly(manifest, { accept: MANIFEST_ACCEPT }, sent).then(async (m) => {
    if (m === undefined) return;
    let layers: unknown;
    try {
      layers = (JSON.parse((await earlyBody(m)).toString('utf8')) as { layers?: unknown }).layers;
    } catch {
      return;
    }
    if (!Array.isArray(layers)) return; // an index: the platform choice is the CLI's
    const descs = (layers as Array<{ digest?: unknown; size?: unknown; annotations?: Record<string, string> }>).filter(
      (l): l is { digest: string; size: number; annotations?: Record<string, string> } =>
        typeof l.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(l.digest) && typeof l.size === 'number' && Number.isSafeInteger(l.size) && l.size > 0,
    );
    const indexed = indexedLayerDigests(target.metaDb, descs.map((l) => l.digest));
    for (const l of descs) {
      if (indexed.has(l.digest)) continue;
      const { offset, length } = tocTailExtent(l.size, tocOffsetHint(l.annotations), target.toc);
      const blob = new URL(blobPath(ref.repository, l.digest), origin);
      const toc = sendEarly(blob, { range: byteRange(offset, length) });
      const hint = prefetchSizeHint(l.annotations);
      // After the TOC: on a shared link the region's bytes would slow the TOC down.
      if (target.prefetch && hint !== undefined) {
        void toc.then(async (r) => (r !== undefined ? earlyEnd(r) : undefined)).catch(() => undefined).then(() => sendEarly(blob, { range: byteRange(0, headLength(hint, l.size)) }));
      }
    }
  });
  return onWire;
}
