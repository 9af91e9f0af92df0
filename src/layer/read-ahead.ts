// Read-ahead policy: a read that continues where the last one of the same file ended
// doubles that file's window (from 1 MiB up to the configured largest), and the part of
// the file past what was asked for already is worth fetching now. Only the policy: the
// reader fetches what it says, at prefetch priority, without waiting for it.

/** Sequential-read state kept for this many files. */
const MAX_STREAMS = 1024;
/** First read-ahead window; it doubles on every sequential read up to the largest. */
const INITIAL_READ_AHEAD = 1 << 20;

interface Stream {
  next: number;
  window: number;
  /** File offset up to which read-ahead has been started. */
  ahead: number;
}

export class ReadAhead {
  private readonly streams = new Map<number, Stream>();

  /** @param maxBytes largest window (0: no read-ahead) */
  constructor(private readonly maxBytes: number) {}

  /**
   * A read of [off, end) of the file `id` (of `size` bytes): the file range to fetch
   * ahead now, or undefined.
   */
  next(id: number, size: number, off: number, end: number): { from: number; to: number } | undefined {
    const max = this.maxBytes;
    if (max <= 0) return undefined;
    const prev = this.streams.get(id);
    const continues = prev !== undefined && prev.next === off;
    if (off !== 0 && !continues) {
      this.remember(id, { next: end, window: 0, ahead: end });
      return undefined;
    }
    const window = Math.min(max, continues && prev.window > 0 ? prev.window * 2 : INITIAL_READ_AHEAD);
    const from = Math.max(end, continues ? prev.ahead : end);
    const to = Math.min(size, end + window);
    this.remember(id, { next: end, window, ahead: Math.max(from, to) });
    return to > from ? { from, to } : undefined;
  }

  private remember(id: number, s: Stream): void {
    this.streams.delete(id);
    this.streams.set(id, s);
    if (this.streams.size > MAX_STREAMS) this.streams.delete(this.streams.keys().next().value as number);
  }
}
