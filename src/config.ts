// The one typed configuration object. cli/ builds it from yargs with resolveConfig();
// every module receives only its own section (plus a logger). Nothing below cli/ reads
// process.env.
import { ConfigError } from './errors.js';
import type { LogLevel } from './log.js';

export interface TocConfig {
  /** Accept layers whose TOC has no digest annotation to verify against (marked unverified). Default false. */
  readonly allowUnverified: boolean;
  /** Largest uncompressed TOC accepted, in bytes. Default 150 MiB (containers/storage's limit). */
  readonly maxTocBytes: number;
  /** Bytes read from the end of a blob in the first request: footer plus, usually, the whole TOC. Default 256 KiB. */
  readonly tailBytes: number;
  /** Largest uncompressed tar of a plain (not eStargz) layer, bytes (it is streamed, never held whole). Default 64 GiB. */
  readonly maxPlainBytes: number;
}

export interface ImageConfig {
  /** Platform to pick from an index, `os/arch[/variant]`. Default: this machine's. */
  readonly platform: string;
}

export interface FuseConfig {
  /**
   * Ask the kernel to read fully cached files from their chunk file itself (FUSE
   * passthrough, Linux 6.9+). Default true (`--no-passthrough`).
   */
  readonly passthrough: boolean;
  /**
   * A supervisor holds each mount's /dev/fuse descriptor and starts a new server if this
   * one dies (native/supervisor.c). Default true (`--no-supervise`).
   */
  readonly supervise: boolean;
  /**
   * The supervisor keeps a standby server loaded, so a death costs a hand-over (some
   * 30 ms) instead of a Node start-up (some 250 ms), for some 65 MB. Default true (`--no-standby`).
   */
  readonly standby: boolean;
}

export interface StateConfig {
  /** State root holding meta.db (and, later, the chunk cache). */
  readonly root: string;
}

export interface HttpConfig {
  /** Speak plain HTTP to registries that are not on loopback (loopback always may). Default false. */
  readonly plainHttp: boolean;
  /** Accept self-signed TLS certificates. Default false. */
  readonly insecure: boolean;
  /** Per-request timeout, milliseconds. Default 30000. */
  readonly timeoutMs: number;
  /** Retries after the first attempt for connection errors, 429 and 5xx. Default 4. */
  readonly retries: number;
  /**
   * A response body that brings no byte for this long is aborted and retried, however
   * long its request may still run, milliseconds. Default 5000.
   */
  readonly stallTimeoutMs: number;
  /**
   * All attempts of one GET or HEAD, with the waits between them (backoff, Retry-After),
   * end within this many milliseconds; a Retry-After past it fails the request at once.
   * A whole-blob stream is exempt (only stalls end it). Default: the read deadline and
   * half a second, 30500 (a reader is told of its own deadline, naming its file, first).
   */
  readonly retryBudgetMs: number;
  /**
   * A ranged GET whose answer brings no byte for this long gets a twin request beside it,
   * and the first answer wins, milliseconds (0: never). Default 1000.
   */
  readonly hedgeAfterMs: number;
  /** Connections per registry host. Default 8. */
  readonly connectionsPerHost: number;
  /** Where the docker CLI's config.json is ($DOCKER_CONFIG or ~/.docker); undefined: no credentials. */
  readonly dockerConfigDir: string | undefined;
  /** Containers auth files (podman's), tried before the docker config. */
  readonly authFiles: readonly string[];
  /** Mirrors per registry name, tried in order before the registry. Default none. */
  readonly mirrors: Readonly<Record<string, readonly string[]>>;
  /** How long a failed mirror is skipped, milliseconds. Default 30000. */
  readonly mirrorBackoffMs: number;
  /** How long a blob's signed redirect target is reused, milliseconds (re-resolved on 403). Default 300000. */
  readonly redirectTtlMs: number;
}

export interface CacheConfig {
  /** Disk quota for the chunk cache, bytes. Default: a fifth of the free space where the state root is, at least 512 MiB. */
  readonly quotaBytes: number;
  /** Memory LRU for hot chunks, bytes. Default 64 MiB. */
  readonly memoryBytes: number;
}

export interface FetchConfig {
  /** Landmark prefetch of each layer's prioritized region. Default true (`--no-prefetch`). */
  readonly prefetch: boolean;
  /** Prefetch the files earlier mounts of this image read first. Default true (`--no-learned-prefetch`). */
  readonly learnedPrefetch: boolean;
  /** Fetch the rest of every layer in the background. Default true (`--no-background-fetch`). */
  readonly backgroundFetch: boolean;
  /** Background fetch bandwidth, bytes per second; 0 = unlimited. Default 0. */
  readonly backgroundBytesPerSec: number;
  /** Blob reads running at once per image. Default: the connections per registry host. */
  readonly concurrency: number;
  /** Largest read-ahead window for a file read sequentially, bytes. Default 8 MiB. */
  readonly readAheadBytes: number;
  /** Compressed bytes after a missed member fetched with it (the next small files). Default 'auto': round trip × bandwidth as measured. */
  readonly neighbourBytes: number | 'auto';
  /** Members closer than this are read in one request. Default 64 KiB. */
  readonly coalesceGapBytes: number;
  /**
   * Longest an on-demand read waits for its bytes, milliseconds; then it fails (EIO) with
   * SGZ_READ_TIMEOUT naming layer, file and offset. Default 30000 (`--read-timeout 30`).
   */
  readonly readTimeoutMs: number;
}

export interface Config {
  readonly state: StateConfig;
  readonly cache: CacheConfig;
  readonly fetch: FetchConfig;
  readonly http: HttpConfig;
  readonly toc: TocConfig;
  readonly image: ImageConfig;
  readonly fuse: FuseConfig;
  /** Logs go to stderr: JSON lines, or coloured lines for people (`pretty`, the default on a terminal). */
  readonly log: { readonly level: LogLevel; readonly pretty: boolean };
}

export interface ConfigInput {
  root?: string | undefined;
  allowUnverified?: boolean | undefined;
  maxTocBytes?: number | undefined;
  tailBytes?: number | undefined;
  platform?: string | undefined;
  logLevel?: string | undefined;
  /** 'json' | 'pretty'; default pretty when stderr is a terminal. */
  logFormat?: string | undefined;
  plainHttp?: boolean | undefined;
  insecure?: boolean | undefined;
  timeoutMs?: number | undefined;
  retries?: number | undefined;
  /** Milliseconds; see FetchConfig.readTimeoutMs. */
  readTimeoutMs?: number | undefined;
  /** Milliseconds; see HttpConfig.stallTimeoutMs. */
  stallTimeoutMs?: number | undefined;
  /** `registry=mirror-host` items. */
  mirror?: readonly string[] | undefined;
  /** Bytes, or a size with a K/M/G/T suffix (powers of 1024). */
  cacheSize?: string | number | undefined;
  /** Size string or bytes; see CacheConfig.memoryBytes. */
  cacheMemory?: string | number | undefined;
  prefetch?: boolean | undefined;
  learnedPrefetch?: boolean | undefined;
  backgroundFetch?: boolean | undefined;
  /** Bytes per second, or a size with a suffix; 0 or absent: unlimited. */
  backgroundBandwidth?: string | number | undefined;
  readAhead?: string | number | undefined;
  /** A size, or 'auto'. */
  neighbourBytes?: string | number | undefined;
  coalesceGap?: string | number | undefined;
  passthrough?: boolean | undefined;
  supervise?: boolean | undefined;
  standby?: boolean | undefined;
}

export interface Environment {
  uid: number;
  home: string | undefined;
  xdgCacheHome: string | undefined;
  arch: string;
  /** $DOCKER_CONFIG */
  dockerConfig?: string | undefined;
  /** $REGISTRY_AUTH_FILE */
  registryAuthFile?: string | undefined;
  /** $XDG_RUNTIME_DIR */
  xdgRuntimeDir?: string | undefined;
  /** Free bytes on the filesystem of the state root (for the default cache quota). */
  freeBytes?: number | undefined;
  /** stderr is a terminal (the default log format). */
  stderrIsTTY?: boolean | undefined;
}

const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];
const KNOWN_KEYS = new Set(['root', 'allowUnverified', 'maxTocBytes', 'tailBytes', 'platform', 'logLevel', 'logFormat', 'plainHttp', 'insecure', 'timeoutMs', 'retries', 'readTimeoutMs', 'stallTimeoutMs', 'mirror', 'cacheSize', 'cacheMemory', 'prefetch', 'learnedPrefetch', 'backgroundFetch', 'backgroundBandwidth', 'readAhead', 'neighbourBytes', 'coalesceGap', 'passthrough', 'supervise', 'standby']);

/** How TOCs are read unless options say otherwise (also what the early fetch assumes). */
export const TOC_DEFAULTS = Object.freeze({ maxTocBytes: 150 << 20, tailBytes: 256 << 10 });

export function defaultRoot(env: Environment): string {
  if (env.uid === 0) return '/var/lib/stargzfs';
  const base = env.xdgCacheHome ?? (env.home !== undefined ? `${env.home}/.cache` : '/tmp');
  return `${base}/stargzfs`;
}

/** Node's process.arch → OCI architecture names. */
export function ociArch(nodeArch: string): string {
  switch (nodeArch) {
    case 'x64': return 'amd64';
    case 'ia32': return '386';
    default: return nodeArch; // arm64, arm, ppc64, s390x, riscv64 are spelled the same
  }
}

export function resolveConfig(input: ConfigInput, env: Environment): Config {
  for (const key of Object.keys(input)) {
    if (!KNOWN_KEYS.has(key)) throw new ConfigError(key, 'unknown option');
  }
  const level = (input.logLevel ?? 'warn') as LogLevel;
  if (!LOG_LEVELS.includes(level)) {
    throw new ConfigError('log-level', `must be one of ${LOG_LEVELS.join(', ')}`);
  }
  if (input.logFormat !== undefined && input.logFormat !== 'json' && input.logFormat !== 'pretty') {
    throw new ConfigError('log-format', `must be json or pretty, got ${JSON.stringify(input.logFormat)}`);
  }
  const pretty = input.logFormat === 'pretty' || (input.logFormat === undefined && env.stderrIsTTY === true);
  const maxTocBytes = positiveInt('max-toc-bytes', input.maxTocBytes, TOC_DEFAULTS.maxTocBytes);
  const tailBytes = positiveInt('tail-bytes', input.tailBytes, TOC_DEFAULTS.tailBytes);
  const platform = input.platform ?? `linux/${ociArch(env.arch)}`;
  if (!/^[a-z0-9_.-]+\/[a-z0-9_.-]+(\/[a-z0-9_.-]+)?$/i.test(platform)) {
    throw new ConfigError('platform', `expected os/arch[/variant], got ${JSON.stringify(platform)}`);
  }
  const connectionsPerHost = 8;
  const readTimeoutMs = positiveInt('read-timeout', input.readTimeoutMs, 30_000);
  return Object.freeze({
    state: Object.freeze({ root: input.root ?? defaultRoot(env) }),
    fetch: Object.freeze({
      prefetch: input.prefetch ?? true,
      learnedPrefetch: input.learnedPrefetch ?? true,
      backgroundFetch: input.backgroundFetch ?? true,
      backgroundBytesPerSec: sizeOrZero('background-bandwidth', input.backgroundBandwidth, 0),
      concurrency: connectionsPerHost,
      readAheadBytes: sizeOrZero('read-ahead', input.readAhead, 8 << 20),
      neighbourBytes: input.neighbourBytes === undefined || input.neighbourBytes === 'auto' ? 'auto' : sizeOrZero('neighbour-bytes', input.neighbourBytes, 0),
      coalesceGapBytes: sizeOrZero('coalesce-gap', input.coalesceGap, 64 << 10),
      readTimeoutMs,
    }),
    cache: Object.freeze({
      quotaBytes: input.cacheSize !== undefined ? parseSize('cache-size', input.cacheSize) : Math.max(512 << 20, Math.floor((env.freeBytes ?? 0) / 5)),
      memoryBytes: input.cacheMemory !== undefined ? parseSize('cache-memory', input.cacheMemory) : 64 << 20,
    }),
    http: Object.freeze({
      plainHttp: input.plainHttp ?? false,
      insecure: input.insecure ?? false,
      timeoutMs: positiveInt('timeout', input.timeoutMs, 30_000),
      retries: input.retries === 0 ? 0 : positiveInt('retries', input.retries, 4),
      stallTimeoutMs: positiveInt('stall-timeout', input.stallTimeoutMs, 5000),
      // A read gives up at its deadline: retrying much past it would only hold a fetch slot.
      retryBudgetMs: readTimeoutMs + 500,
      hedgeAfterMs: 1000,
      connectionsPerHost,
      dockerConfigDir: env.dockerConfig ?? (env.home !== undefined ? `${env.home}/.docker` : undefined),
      authFiles: Object.freeze([env.registryAuthFile, env.xdgRuntimeDir !== undefined ? `${env.xdgRuntimeDir}/containers/auth.json` : undefined].filter((f): f is string => f !== undefined && f !== '')),
      mirrors: parseMirrors(input.mirror ?? []),
      mirrorBackoffMs: 30_000,
      redirectTtlMs: 300_000,
    }),
    toc: Object.freeze({ allowUnverified: input.allowUnverified ?? false, maxTocBytes, tailBytes, maxPlainBytes: 64 * 2 ** 30 }),
    image: Object.freeze({ platform }),
    fuse: Object.freeze({ passthrough: input.passthrough ?? true, supervise: input.supervise ?? true, standby: input.standby ?? true }),
    log: Object.freeze({ level, pretty }),
  });
}

/** `4096`, `512M`, `10G` (powers of 1024) → bytes. */
export function parseSize(option: string, v: string | number): number {
  const m = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i.exec(String(v).trim());
  if (m === null) throw new ConfigError(option, `expected a size like 512M or 10G, got ${JSON.stringify(v)}`);
  const n = Math.floor(Number(m[1]) * 1024 ** ' KMGT'.indexOf((m[2] ?? '').toUpperCase() || ' '));
  if (!Number.isSafeInteger(n) || n <= 0) throw new ConfigError(option, `must be a positive size, got ${JSON.stringify(v)}`);
  return n;
}

/** A size where 0 means "off". */
function sizeOrZero(option: string, v: string | number | undefined, dflt: number): number {
  if (v === undefined) return dflt;
  if (v === 0 || v === '0') return 0;
  return parseSize(option, v);
}

/** `docker.io=mirror.local:5000` items → { 'docker.io': ['mirror.local:5000'] }, order kept. */
function parseMirrors(items: readonly string[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const item of items) {
    const m = /^([^=\s]+)=([^=\s/]+)$/.exec(item);
    if (m === null) throw new ConfigError('mirror', `expected REGISTRY=MIRROR_HOST[:PORT], got ${JSON.stringify(item)}`);
    (out[m[1] as string] ??= []).push(m[2] as string);
  }
  return out;
}

function positiveInt(option: string, value: number | undefined, dflt: number): number {
  if (value === undefined) return dflt;
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(option, `must be a positive integer, got ${String(value)}`);
  }
  return value;
}
