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
  fetchedBytes: number;
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

export class FetchProgress {
  private readonly emitter = new EventEmitter();
  private readonly layers = new Map<string, LayerProgress>();

  addLayer(digest: string, totalBytes: number): void {
    if (this.layers.has(digest)) return;
    this.layers.set(digest, {
      digest, totalBytes, fetchedBytes: 0, errors: 0, lastError: undefined,
      phases: { landmark: 'pending', learned: 'pending', background: 'pending' },
    });
  }

  on(listener: (e: FetchEvent) => void): () => void {
    this.emitter.on('event', listener);
    return () => this.emitter.off('event', listener);
  }

  fetched(layer: string, bytes: number, priority: 'on_demand' | 'prefetch' | 'background', ms: number): void {
    const l = this.layers.get(layer);
    if (l === undefined) return;
    l.fetchedBytes += bytes;
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
