// A chunk of a plain (not eStargz) layer that is no longer cached: such a layer has no
// ranges to fetch, so its whole blob is streamed again (once for all the readers waiting
// at the time), checked against its digest, and every chunk stored again; the chunks
// readers wait for are kept in memory on the way.
import type { BlobReader } from '../toc/blob.js';
import type { LayerRow } from '../toc/inode-db.js';
import { DecodeError, type ErrorContext } from '../errors.js';
import { streamPlainLayer } from '../toc/plain-layer.js';
import { ON_DEMAND, type Scheduler } from './scheduler.js';

export interface PlainRefetchDeps {
  readonly blobFor: (layer: LayerRow) => BlobReader;
  readonly scheduler: Scheduler;
  readonly put: (digest: Buffer, data: Buffer) => Promise<void>;
  readonly get: (digest: Buffer, size: number) => Promise<Buffer | undefined>;
  /** The blob was streamed: its bytes, how many requests of 8 MiB it counts as, the wall time. */
  readonly streamed: (layer: LayerRow, bytes: number, ms: number) => void;
}

export class PlainRefetch {
  private readonly passes = new Map<number, { wanted: Map<string, Buffer | undefined>; done: Promise<void> }>();

  constructor(private readonly deps: PlainRefetchDeps) {}

  async chunk(layer: LayerRow, digest: Buffer, size: number, ctx: ErrorContext): Promise<Buffer> {
    const hex = digest.toString('hex');
    let r = this.passes.get(layer.id);
    if (r === undefined) {
      const wanted = new Map<string, Buffer | undefined>();
      const blob = this.deps.blobFor(layer);
      const done = this.deps.scheduler.submit(ON_DEMAND, blob.size, async () => {
        const t0 = performance.now();
        await streamPlainLayer(blob, layer.digest, Number.MAX_SAFE_INTEGER, ctx, async (c) => {
          const key = c.digest.toString('hex');
          if (wanted.has(key)) wanted.set(key, c.data);
          await this.deps.put(c.digest, c.data);
        });
        this.deps.streamed(layer, blob.size, performance.now() - t0);
      }).finally(() => this.passes.delete(layer.id));
      r = { wanted, done };
      this.passes.set(layer.id, r);
    }
    if (!r.wanted.has(hex)) r.wanted.set(hex, undefined);
    await r.done;
    const data = r.wanted.get(hex) ?? (await this.deps.get(digest, size).catch(() => undefined));
    if (data === undefined) throw new DecodeError('the layer blob no longer holds this chunk', ctx);
    return data;
  }
}
