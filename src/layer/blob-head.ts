// The head of a layer blob, fetched from the moment the layer is known. A layer that
// `stargzfs convert` prioritized says how long its landmark region is (the
// dev.stargzfs.estargz.prefetch-size annotation), so that region can travel with the
// TOC instead of after it: at 20 ms and 200 Mbit/s, fetching and indexing the TOC of a
// python image took 0.2 s during which the link carried nothing else. Reads that fall
// in the head (the landmark prefetch, a file's first read) are served from it as its
// bytes arrive; every byte is still checked against its chunk's digest by whoever
// decodes it, as bytes from the registry are. Reads past the head, and every read once
// the head has failed or been released, go to the blob as before.
import type { BlobReader } from '../toc/blob.js';

/**
 * The largest head fetched ahead: a longer region is fetched in part, the rest by prefetch
 * after the TOC (a start-up region is a few MB; a 64 MiB head held that much memory and
 * made the 192 MiB file's region slower to come in than prefetch's parallel reads).
 */
export const MAX_HEAD_BYTES = 16 << 20;

/** The head fetched for a region of `hint` bytes in a blob of `size`: the same in the early fetch and here. */
export const headLength = (hint: number, size: number): number => Math.max(0, Math.min(hint, size, MAX_HEAD_BYTES));

interface Waiter {
  readonly offset: number;
  readonly end: number;
  readonly progress: ((prefix: Buffer) => void) | undefined;
  readonly resolve: (b: Buffer) => void;
  readonly reject: (err: unknown) => void;
}

const EMPTY = Buffer.alloc(0);

export class BlobHead implements BlobReader {
  readonly size: number;
  /** Bytes [0, length) come from the head's request. */
  readonly length: number;
  /** What has arrived: a prefix of the head (it may start over when the request is retried). */
  private have: Buffer = EMPTY;
  private state: 'waiting' | 'fetching' | 'done' | 'failed' = 'waiting';
  private released = false;
  private readonly waiters = new Set<Waiter>();

  /** `onError` hears why the head's request failed (reads then go to `inner`). */
  constructor(private readonly inner: BlobReader, hint: number, private readonly onError: (err: Error) => void) {
    this.size = inner.size;
    this.length = headLength(hint, inner.size);
  }

  /**
   * Sends the request for [0, length) (once). Reads of the head wait for it until then.
   * The owner starts it once the TOC has arrived: the TOC is on the way to the mount being
   * ready, and on a shared link the head's bytes would slow it down.
   */
  start(): void {
    if (this.state !== 'waiting') return;
    this.state = 'fetching';
    this.inner.readAt(0, this.length, (prefix) => {
      this.have = prefix;
      this.wake();
    }).then(
      (all) => {
        this.have = all;
        this.state = 'done';
        this.wake();
      },
      (err: unknown) => {
        this.have = EMPTY;
        this.state = 'failed';
        this.onError(err as Error);
        this.wake();
      },
    );
  }

  readAt(offset: number, length: number, progress?: (prefix: Buffer) => void): Promise<Buffer> {
    if (!this.covers(offset, length)) {
      // A read across the head's end: the head's part from it, only the rest from the blob.
      if (offset < this.length && this.covers(offset, this.length - offset)) {
        const inner = this.inner.readAt(this.length, offset + length - this.length);
        return Promise.all([this.readAt(offset, this.length - offset, progress), inner]).then((parts) => Buffer.concat(parts, length));
      }
      return this.inner.readAt(offset, length, progress);
    }
    if (this.have.length >= offset + length) return Promise.resolve(this.have.subarray(offset, offset + length));
    return new Promise((resolve, reject) => {
      const w: Waiter = { offset, end: offset + length, progress, resolve, reject };
      this.waiters.add(w);
      if (progress !== undefined && this.have.length > offset) progress(this.have.subarray(offset));
    });
  }

  async readRanges(
    extents: ReadonlyArray<{ readonly offset: number; readonly length: number }>, gap?: number, arrived?: (index: number, data: Buffer) => void, inOrder?: boolean,
  ): Promise<Buffer[]> {
    const restAt = extents.flatMap((e, i) => (this.covers(e.offset, e.length) ? [] : [i]));
    const rest = restAt.map((i) => extents[i] as { readonly offset: number; readonly length: number });
    const fromInner = rest.length === 0
      ? Promise.resolve([])
      : this.inner.readRanges !== undefined
        ? this.inner.readRanges(rest, gap, arrived === undefined ? undefined : (j, b) => arrived(restAt[j] as number, b), inOrder)
        : Promise.all(rest.map((e) => this.inner.readAt(e.offset, e.length)));
    const fromHead = Promise.all(extents.map((e, i) => {
      if (!this.covers(e.offset, e.length)) return undefined;
      const read = this.readAt(e.offset, e.length);
      if (arrived !== undefined) void read.then((b) => arrived(i, b), () => undefined);
      return read;
    }));
    const [inner, head] = await Promise.all([fromInner, fromHead]);
    let next = 0;
    return head.map((b) => b ?? (inner[next++] as Buffer));
  }

  /** From now on reads go to the blob; the head's bytes are dropped once nothing waits for them. */
  release(): void {
    this.released = true;
    if (this.state === 'waiting') this.state = 'failed';
    if (this.state !== 'fetching' && this.waiters.size === 0) this.have = EMPTY;
  }

  private covers(offset: number, length: number): boolean {
    return !this.released && this.state !== 'failed' && length > 0 && offset + length <= this.length;
  }

  private wake(): void {
    for (const w of this.waiters) {
      if (this.state === 'failed') {
        this.waiters.delete(w);
        this.inner.readAt(w.offset, w.end - w.offset, w.progress).then(w.resolve, w.reject);
      } else if (this.have.length >= w.end) {
        this.waiters.delete(w);
        w.resolve(this.have.subarray(w.offset, w.end));
      } else if (w.progress !== undefined && this.have.length > w.offset) {
        w.progress(this.have.subarray(w.offset));
      }
    }
    if (this.released && this.state !== 'fetching' && this.waiters.size === 0) this.have = EMPTY;
  }
}
