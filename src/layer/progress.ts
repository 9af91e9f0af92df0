// Fetch progress of an open image, per layer, as events: the CLI's progress line and the
// mount's status file subscribe instead of polling the reader's internals.
import { EventEmitter } from 'node:events';

export type Phase = 'landmark' | 'learned' | 'background';
/** `none`: nothing to do (a layer without a landmark, an image without a profile). */
export type PhaseState = 'pending' | 'running' | 'done' | 'none' | 'off' | 'failed';

export interface LayerProgress {
  readonly digest: string;
  /** Compressed bytes of the layer's data (what a full fetch reads). */
  readonly totalBytes: number;
  /**
   * Bytes of the layer fetched, each range once: never more than totalBytes. A range
   * fetched again (after a digest error, or once its chunks left a cache that could not
   * keep them) counts in transferredBytes only.
   */
  fetchedBytes: number;
  /** Every byte fetched for the layer, refetches and the gaps between coalesced ranges included. */
  transferredBytes: number;
  phases: Record<Phase, PhaseState>;
  errors: number;
  lastError: { code: string; message: string; path?: string | undefined } | undefined;
}

export type FetchEvent =
  | {
    readonly type: 'fetched'; readonly layer: string; readonly bytes: number; readonly fetchedBytes: number; readonly totalBytes: number;
    /** The fetch job: why it ran and how long it took. */
    readonly priority: 'on_demand' | 'prefetch' | 'background'; readonly ms: number;
  }
  | { readonly type: 'phase'; readonly layer: string; readonly phase: Phase; readonly state: PhaseState }
  | { readonly type: 'error'; readonly layer: string; readonly code: string; readonly message: string; readonly path?: string | undefined };

/** Disjoint [start, end) ranges in order, and the bytes they cover. */
class RangeSet {
  private readonly starts: number[] = [];
  private readonly ends: number[] = [];
  covered = 0;

  add(start: number, end: number): void {
    if (end <= start) return;
    // The first range that ends at or after `start` (touching ranges merge).
    let lo = 0;
    for (let hi = this.ends.length; lo < hi; ) {
      const mid = (lo + hi) >> 1;
      if ((this.ends[mid] as number) < start) lo = mid + 1;
      else hi = mid;
    }
    let last = lo;
    let s = start;
    let e = end;
    for (; last < this.starts.length && (this.starts[last] as number) <= end; last++) {
      s = Math.min(s, this.starts[last] as number);
      e = Math.max(e, this.ends[last] as number);
      this.covered -= (this.ends[last] as number) - (this.starts[last] as number);
    }
    this.starts.splice(lo, last - lo, s);
    this.ends.splice(lo, last - lo, e);
    this.covered += e - s;
  }
}

export class FetchProgress {
  private readonly emitter = new EventEmitter();
  private readonly layers = new Map<string, LayerProgress>();
  /** Per layer: the ranges fetched, and bytes fetched whose ranges were not said. */
  private readonly seen = new Map<string, { ranges: RangeSet; unplaced: number }>();

  addLayer(digest: string, totalBytes: number): void {
    if (this.layers.has(digest)) return;
    this.layers.set(digest, {
      digest, totalBytes, fetchedBytes: 0, transferredBytes: 0, errors: 0, lastError: undefined,
      phases: { landmark: 'pending', learned: 'pending', background: 'pending' },
    });
  }

  on(listener: (e: FetchEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  /** `bytes` fetched for `layer`; `ranges`, when known, are the blob ranges they were for. */
  fetched(
    layer: string, bytes: number, priority: 'on_demand' | 'prefetch' | 'background', ms: number, ranges?: ReadonlyArray<readonly [number, number]>,
  ): void {
    const l = this.layers.get(layer);
    if (l === undefined) return;
    let seen = this.seen.get(layer);
    if (seen === undefined) {
      seen = { ranges: new RangeSet(), unplaced: 0 };
      this.seen.set(layer, seen);
    }
    if (ranges !== undefined) for (const [start, end] of ranges) seen.ranges.add(start, end);
    else seen.unplaced += bytes;
    l.transferredBytes += bytes;
    l.fetchedBytes = Math.min(l.totalBytes, seen.ranges.covered + seen.unplaced);
    this.emit({ type: 'fetched', layer, bytes, fetchedBytes: l.fetchedBytes, totalBytes: l.totalBytes, priority, ms });
  }

  phase(layer: string, phase: Phase, state: PhaseState): void {
    const l = this.layers.get(layer);
    if (l === undefined || l.phases[phase] === state) return;
    l.phases[phase] = state;
    this.emit({ type: 'phase', layer, phase, state });
  }

  error(layer: string, code: string, message: string, path?: string): void {
    const l = this.layers.get(layer);
    if (l !== undefined) {
      l.errors++;
      l.lastError = { code, message, path };
    }
    this.emit({ type: 'error', layer, code, message, path });
  }

  /** A copy of every layer's state, in the order layers were added. */
  snapshot(): LayerProgress[] {
    return [...this.layers.values()].map((l) => ({ ...l, phases: { ...l.phases } }));
  }

  private emit(e: FetchEvent): void {
    this.emitter.emit('event', e);
  }
}
