// The Prometheus metrics of one mount (prom-client). Latencies are observed as they
// happen (FUSE operations, fetch jobs); everything else is read from the counters the
// mount keeps anyway (per layer: bytes fetched and served, cache hits and misses,
// prefetch phases; per registry host: responses, failures, retries) when scraped, so
// the read path pays nothing for it. Process metrics (RSS, open fds) come with
// prom-client's defaults.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface LayerSample {
  readonly index: number;
  readonly digest: string;
  readonly totalBytes: number;
  /** Bytes fetched so far by every path (progress). */
  readonly progressBytes: number;
  readonly phases: Readonly<Record<string, string>> | undefined;
  readonly requests: number;
  readonly fetchedBytes: number;
  readonly servedBytes: number;
  readonly cacheHits: number;
  readonly cacheMisses: number;
}

export interface HostSample {
  readonly responses: ReadonlyMap<number, number>;
  readonly failures: number;
  readonly retries: number;
}

export interface MetricsSources {
  layers(): readonly LayerSample[];
  hosts(): ReadonlyMap<string, HostSample>;
  /** Opens the kernel read by itself (passthrough) and opens read through stargzfs, since the mount began. */
  opens?: () => { readonly passthrough: number; readonly cached: number; readonly cachedWhy?: Readonly<Record<string, number>> | undefined };
}

export type FetchPriority = 'on_demand' | 'prefetch' | 'background';

export class MountMetrics {
  readonly registry = new Registry();
  private readonly opSeconds: Histogram<'op'>;
  private readonly opErrors: Counter<'op' | 'errno'>;
  private readonly fetchSeconds: Histogram<'priority'>;
  private readonly fetchBytes: Counter<'priority'>;

  constructor(sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    this.opSeconds = new Histogram({
      name: 'stargzfs_fuse_operation_duration_seconds',
      help: 'FUSE requests, arrival in the server to reply, by operation',
      labelNames: ['op'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.opErrors = new Counter({ name: 'stargzfs_fuse_operation_errors_total', help: 'FUSE requests answered with an error', labelNames: ['op', 'errno'], registers });
    this.fetchSeconds = new Histogram({
      name: 'stargzfs_fetch_duration_seconds',
      help: 'Fetch jobs (one or more range requests, decoded and verified), by priority; on_demand ones have a reader waiting',
      labelNames: ['priority'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.fetchBytes = new Counter({ name: 'stargzfs_fetch_bytes_total', help: 'Compressed bytes fetched, by priority', labelNames: ['priority'], registers });

    const perLayer = (name: string, help: string, pick: (l: LayerSample) => number): void => {
      new Counter({
        name, help, labelNames: ['layer', 'digest'], registers,
        collect() {
          this.reset();
          for (const l of sources.layers()) this.inc({ layer: String(l.index), digest: l.digest }, pick(l));
        },
      });
    };
    perLayer('stargzfs_layer_fetched_bytes_total', 'Compressed bytes fetched from the registry, per layer', (l) => l.fetchedBytes);
    perLayer('stargzfs_layer_served_bytes_total', 'File bytes returned to readers, per layer', (l) => l.servedBytes);
    perLayer('stargzfs_layer_cache_hits_total', 'Chunks read from the chunk cache, per layer', (l) => l.cacheHits);
    perLayer('stargzfs_layer_cache_misses_total', 'Chunks that had to be fetched for a reader, per layer', (l) => l.cacheMisses);
    perLayer('stargzfs_layer_fetch_requests_total', 'Range requests made, per layer', (l) => l.requests);
    new Gauge({
      name: 'stargzfs_layer_bytes', help: 'Bytes to fetch for the whole layer (its blob, less the TOC)', labelNames: ['layer', 'digest'], registers,
      collect() {
        this.reset();
        for (const l of sources.layers()) this.set({ layer: String(l.index), digest: l.digest }, l.totalBytes);
      },
    });
    new Gauge({
      name: 'stargzfs_layer_progress_bytes', help: 'Bytes of the layer fetched so far by reads, prefetch and background fetch', labelNames: ['layer', 'digest'], registers,
      collect() {
        this.reset();
        for (const l of sources.layers()) this.set({ layer: String(l.index), digest: l.digest }, l.progressBytes);
      },
    });
    new Gauge({
      name: 'stargzfs_layer_phase', help: 'Prefetch and background fetch state per layer: 1 for the state it is in', labelNames: ['layer', 'phase', 'state'], registers,
      collect() {
        this.reset();
        for (const l of sources.layers()) {
          for (const [phase, state] of Object.entries(l.phases ?? {})) this.set({ layer: String(l.index), phase, state }, 1);
        }
      },
    });
    new Counter({
      name: 'stargzfs_registry_responses_total', help: 'Registry responses, per host and HTTP status', labelNames: ['host', 'status'], registers,
      collect() {
        this.reset();
        for (const [host, h] of sources.hosts()) for (const [status, n] of h.responses) this.inc({ host, status: String(status) }, n);
      },
    });
    new Counter({
      name: 'stargzfs_registry_failures_total', help: 'Registry requests that got no response (connection errors, timeouts), per host', labelNames: ['host'], registers,
      collect() {
        this.reset();
        for (const [host, h] of sources.hosts()) this.inc({ host }, h.failures);
      },
    });
    new Counter({
      name: 'stargzfs_fuse_opens_total', help: 'Files opened, by how they are read: passthrough (the kernel reads the cache\'s file itself) or through stargzfs', labelNames: ['mode'], registers,
      collect() {
        this.reset();
        const o = sources.opens?.();
        if (o === undefined) return;
        this.inc({ mode: 'passthrough' }, o.passthrough);
        this.inc({ mode: 'stargzfs' }, o.cached);
      },
    });
    new Counter({
      name: 'stargzfs_fuse_cached_opens_total', help: 'Opens not answered passthrough, by why: notWhole (not one plain file in the cache yet), openThroughPageCache, backingRefused, openTableFull, statusFile; counted by the serving process', labelNames: ['why'], registers,
      collect() {
        this.reset();
        for (const [why, n] of Object.entries(sources.opens?.().cachedWhy ?? {})) this.inc({ why }, n);
      },
    });
    new Counter({
      name: 'stargzfs_registry_retries_total', help: 'Registry requests repeated after a 429, 5xx, expired token or connection error, per host', labelNames: ['host'], registers,
      collect() {
        this.reset();
        for (const [host, h] of sources.hosts()) this.inc({ host }, h.retries);
      },
    });
  }

  observeOp(op: string, seconds: number, errno: number): void {
    this.opSeconds.observe({ op }, seconds);
    if (errno !== 0) this.opErrors.inc({ op, errno: String(errno) });
  }

  observeFetch(priority: FetchPriority, seconds: number, bytes: number): void {
    this.fetchSeconds.observe({ priority }, seconds);
    this.fetchBytes.inc({ priority }, bytes);
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
