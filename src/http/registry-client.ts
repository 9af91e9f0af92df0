// The registry HTTP client: one undici Agent (a keep-alive pool per origin), auth from
// the WWW-Authenticate challenge (bearer tokens cached per repository scope until they
// expire, or Basic), redirects followed by hand so Authorization never leaves the
// registry's origin, retries with jittered backoff on connection errors, 429 and 5xx
// (honouring Retry-After), and exact-length checks on every ranged body. A body that
// stalls is aborted and retried soon (stallTimeoutMs), a ranged GET silent for a moment
// gets a twin request (hedgeAfterMs), and all attempts of a GET end within retryBudgetMs:
// a reader waits for a bounded time however the registry fails.
import type { Dispatcher } from 'undici';
import Agent from 'undici/lib/dispatcher/agent.js';
import apiRequest from 'undici/lib/api/api-request.js';
import buildConnector from 'undici/lib/core/connect.js';
import type { Socket } from 'node:net';
import type { Logger } from '../log.js';
import { BlobRangeError, ImageError, RangeUnsupportedError, RegistryError, StargzfsError } from '../errors.js';
import { parseChallenge } from './challenge.js';
import type { CredentialSource, Credentials } from './credentials.js';
import { isLoopback } from './reference.js';
import { takeEarly } from './early-responses.js';
import { blobPath, byteRange, rangesHeader } from './api-paths.js';
import { ByterangesReader, coalesce, extract, parseByteranges, type Extent, type Part } from './ranges.js';

export interface RegistryClientOptions {
  /** Speak plain HTTP to every registry (loopback registries always may). Default false. */
  readonly plainHttp: boolean;
  /** Accept self-signed TLS certificates. Default false. */
  readonly insecure: boolean;
  /** Per-request timeout for headers and body, milliseconds. Default 30000. */
  readonly timeoutMs: number;
  /** Attempts after the first for retryable failures. Default 4. */
  readonly retries: number;
  /** A body that brings no byte for this long is aborted and retried, milliseconds. Default 5000. */
  readonly stallTimeoutMs?: number;
  /** All attempts of one GET/HEAD and the waits between them end within this, milliseconds. Default 30000. */
  readonly retryBudgetMs?: number;
  /** A ranged GET that brings no byte for this long gets a twin request; the first answer wins, milliseconds (0: never). Default 1000. */
  readonly hedgeAfterMs?: number;
  /** Requests per origin run at once (the fetch scheduler's concurrency); the pool holds twice as many connections. Default 8. */
  readonly connectionsPerHost: number;
  /** Per registry name (docker.io, ghcr.io, host:port): mirror hosts tried first, in order. */
  readonly mirrors: Readonly<Record<string, readonly string[]>>;
  /** How long a failed mirror is skipped, milliseconds. Default 30000. */
  readonly mirrorBackoffMs: number;
  /** How long a blob's signed redirect target is reused before asking again, milliseconds. Default 300000. */
  readonly redirectTtlMs: number;
}

export interface RepoTarget {
  /** host[:port] to connect to. */
  readonly endpoint: string;
  /** Registry name for credentials (docker.io for Docker Hub). */
  readonly registry: string;
  readonly repository: string;
}

export interface HttpResult {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

interface RequestSpec {
  readonly method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH';
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  /** Scope actions for a bearer token: pull, or pull,push. */
  readonly actions?: string;
  /** Statuses the caller handles itself (no error, no retry). */
  readonly accept?: readonly number[];
  /**
   * For a GET: given an answer's status and headers, a callback that sees its body as it
   * arrives (the prefix received so far), or undefined. Called again from the start on a
   * retry, redirect or mirror fallback.
   */
  readonly progress?: (status: number, headers: HttpResult['headers']) => BodyProgress | undefined;
  /**
   * For a ranged GET: a 200 (the whole blob) is RangeUnsupportedError, its body left
   * unread, instead of a result holding the whole blob.
   */
  readonly rangeRequired?: boolean;
  /**
   * For a GET: given a 2xx answer's status and headers, a consumer the body is handed to
   * piece by piece (awaited: it is back-pressure), never held whole; the result's body is
   * then empty. Called again on a retry, which starts from the first byte. Only stalls end
   * such a request, not timeoutMs or retryBudgetMs: a large blob may take long.
   */
  readonly sink?: (status: number, headers: HttpResult['headers']) => BodySink;
  /** Skip the first mirror still in use: a refetch after it sent bad bytes. */
  readonly avoidFirstMirror?: boolean;
  /** For a GET held whole: a longer body (a hostile registry's manifest) is refused, not held (SGZ_IMAGE). */
  readonly maxBytes?: number;
}

/** Takes a streamed body's pieces in order. */
export type BodySink = (piece: Buffer) => void | Promise<void>;

/** How a blob's ranges are read (RegistryBlob's variants). */
export interface RangeOptions {
  /** A registry that ignores Range fails the read (RangeUnsupportedError) instead of sending the whole blob. */
  readonly rangeRequired?: boolean;
  /** Ask another host first (a refetch after bad bytes; see RequestSpec.avoidFirstMirror). */
  readonly avoidFirstMirror?: boolean;
}

/** Sees the prefix of a body received so far; the buffer's bytes never change afterwards. */
export type BodyProgress = (prefix: Buffer) => void;

const RETRYABLE = new Set([429, 500, 502, 503, 504]);

const header = (h: Readonly<Record<string, string | string[] | undefined>>, name: string): string | undefined => {
  const v = h[name];
  return Array.isArray(v) ? v[0] : v;
};

/** What one registry host has answered this process (for metrics). */
export interface HostStats {
  /** Responses by HTTP status. */
  readonly responses: Map<number, number>;
  /** Requests that got no response (connection errors, timeouts). */
  failures: number;
  /** Attempts repeated after a 429, a 5xx or a connection error. */
  retries: number;
}

export class RegistryClient {
  /** Per host (endpoint), since this client was made. */
  readonly hostStats = new Map<string, HostStats>();
  private readonly agent: InstanceType<typeof Agent>;
  /** close() or abort() was called: the agent is closing or gone. */
  private ended = false;
  private readonly log: Logger;
  private readonly tokens = new Map<string, { authorization: string; expires: number }>();
  private readonly mirrorDownUntil = new Map<string, number>();
  private readonly singleRangeOnly = new Set<string>();
  private readonly redirects = new Map<string, { url: URL; until: number }>();
  private readonly schemes = new Map<string, string>();

  /** `onSocket` sees each new connection (the composition root tunes its TCP socket). */
  constructor(private readonly opts: RegistryClientOptions, private readonly creds: CredentialSource, log: Logger, hooks: { onSocket?: (socket: Socket) => unknown } = {}) {
    this.log = log.child({ mod: 'registry' });
    const connector = buildConnector({ rejectUnauthorized: !opts.insecure });
    const onSocket = hooks.onSocket;
    this.agent = new Agent({
      // Twice the fetch concurrency: a twin request or a whole-blob stream is never queued
      // behind the very requests it is meant to overtake.
      connections: opts.connectionsPerHost * 2,
      keepAliveTimeout: 30_000,
      connect: onSocket === undefined ? { rejectUnauthorized: !opts.insecure } : (o, cb) => connector(o, (...args) => {
        if (args[0] === null) onSocket(args[1]);
        cb(...args);
      }),
      headersTimeout: opts.timeoutMs,
      // undici's bodyTimeout is the longest gap between body bytes: the stall detector.
      bodyTimeout: Math.min(opts.timeoutMs, opts.stallTimeoutMs ?? 5000),
    });
  }

  /**
   * Cancels every request in flight: nobody waits for them any more (a mount shutting
   * down; its prefetch would otherwise hold the exit until the last slow body is in).
   */
  abort(): void {
    if (this.ended) return;
    this.ended = true;
    void this.agent.destroy().catch(() => undefined);
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.agent.close();
  }

  private request(url: URL, opts: Omit<Dispatcher.RequestOptions, 'origin' | 'path'>): Promise<Dispatcher.ResponseData> {
    return apiRequest.call(this.agent, { ...opts, origin: url.origin, path: `${url.pathname}${url.search}` } as Dispatcher.RequestOptions);
  }

  /**
   * https, except with --plain-http, or for a loopback registry that turned out not to
   * speak TLS (tried first, as docker does, so a local TLS registry works too).
   */
  origin(t: RepoTarget): string {
    const scheme = this.opts.plainHttp ? 'http' : (this.schemes.get(t.endpoint) ?? 'https');
    return `${scheme}://${t.endpoint}`;
  }

  /** A loopback registry that failed the TLS handshake is spoken to over plain HTTP from then on. */
  private fallBackToHttp(t: RepoTarget, err: unknown): boolean {
    if (this.opts.plainHttp || this.schemes.has(t.endpoint) || !isLoopback(t.endpoint)) return false;
    const code = (err as { code?: string; cause?: { code?: string } }).code ?? (err as { cause?: { code?: string } }).cause?.code;
    const msg = String((err as Error).message);
    if (code === 'EPROTO' || code === 'ERR_SSL_WRONG_VERSION_NUMBER' || code === 'ECONNRESET' || /wrong version number|ssl/i.test(msg)) {
      this.schemes.set(t.endpoint, 'http');
      return true;
    }
    return false;
  }

  /** One registry API call with auth, redirects and retries; throws RegistryError on failure. */
  async call(t: RepoTarget, spec: RequestSpec): Promise<HttpResult> {
    // Reads go to the registry's mirrors first, in order (containerd's `?ns=<registry>`),
    // then to the registry itself; a mirror that fails is skipped for a while.
    const reading = spec.method === 'GET' || spec.method === 'HEAD';
    const mirrors = reading ? (this.opts.mirrors[t.registry] ?? []) : [];
    // One budget for all hosts and attempts: a reader is waiting for this.
    const until = reading && spec.sink === undefined ? Date.now() + (this.opts.retryBudgetMs ?? 30_000) : Number.POSITIVE_INFINITY;
    let avoid = spec.avoidFirstMirror === true;
    for (const mirror of mirrors) {
      const downUntil = this.mirrorDownUntil.get(mirror) ?? 0;
      if (downUntil > Date.now()) continue;
      if (avoid) {
        avoid = false;
        continue;
      }
      const sep = spec.path.includes('?') ? '&' : '?';
      try {
        const res = await this.callHost({ ...t, endpoint: mirror, registry: mirror }, { ...spec, path: `${spec.path}${sep}ns=${encodeURIComponent(t.registry)}` }, 1, until);
        this.mirrorDownUntil.delete(mirror);
        return res;
      } catch (err) {
        if (err instanceof RangeUnsupportedError) throw err;
        const status = err instanceof RegistryError ? err.status : undefined;
        if (status !== undefined && status < 500 && status !== 404 && status !== 401 && status !== 403) throw err;
        if (status === undefined || status >= 500) this.mirrorDownUntil.set(mirror, Date.now() + this.opts.mirrorBackoffMs);
        this.log.warn({ mirror, registry: t.registry }, `mirror failed, trying the next host: ${(err as Error).message}`);
      }
    }
    return this.callHost(t, spec, this.opts.retries, until);
  }

  /** `until`: no attempt starts, and none runs, past this time (epoch ms). */
  private async callHost(t: RepoTarget, spec: RequestSpec, retries: number, until: number): Promise<HttpResult> {
    const scope = `repository:${t.repository}:${spec.actions ?? 'pull'}`;
    let refreshed = false;
    let stats = this.hostStats.get(t.endpoint);
    if (stats === undefined) this.hostStats.set(t.endpoint, (stats = { responses: new Map(), failures: 0, retries: 0 }));
    for (let attempt = 0; ; attempt++) {
      let res: HttpResult;
      try {
        res = await this.hedged(t, spec, scope, until);
        stats.responses.set(res.status, (stats.responses.get(res.status) ?? 0) + 1);
        if (!this.schemes.has(t.endpoint)) this.schemes.set(t.endpoint, new URL(this.origin(t)).protocol.slice(0, -1));
      } catch (err) {
        if (this.fallBackToHttp(t, err)) {
          attempt--;
          continue;
        }
        stats.failures++;
        if (attempt < retries && !(err instanceof StargzfsError) && (await this.backoff(attempt, undefined, `${spec.method} ${spec.path}: ${(err as Error).message}`, until))) {
          stats.retries++;
          continue;
        }
        if (err instanceof StargzfsError) throw err;
        throw new RegistryError(`${t.endpoint}: ${spec.method} ${redact(spec.path)} failed: ${(err as Error).message}`, undefined, {}, { cause: err });
      }
      if (res.status === 401 && !refreshed) {
        // Refresh once: a new token, and credentials re-read in case they were rotated.
        refreshed = true;
        if (await this.authenticate(t, scope, header(res.headers, 'www-authenticate'), true)) continue;
      }
      if (spec.accept?.includes(res.status)) return res;
      if (RETRYABLE.has(res.status) && attempt < retries && (await this.backoff(attempt, header(res.headers, 'retry-after'), `${spec.method} ${spec.path}: HTTP ${res.status}`, until))) {
        stats.retries++;
        continue;
      }
      if (res.status >= 200 && res.status < 300) return res;
      throw new RegistryError(`${t.endpoint}: ${spec.method} ${redact(spec.path)}: HTTP ${res.status}${registryMessage(res.body)}`, res.status);
    }
  }

  /**
   * One attempt. A ranged GET whose answer brings no byte for hedgeAfterMs (from the start,
   * or since its last byte) gets a twin request beside it; the first answer wins and the
   * other is aborted. A stalled body costs a reader about that long instead of the stall
   * timeout (repeatedly, when stalls come in a row); a body that keeps coming is never
   * doubled. Both failing is the attempt's failure (the first error).
   */
  private hedged(t: RepoTarget, spec: RequestSpec, scope: string, until: number): Promise<HttpResult> {
    const hedgeMs = this.opts.hedgeAfterMs ?? 1000;
    if (spec.method !== 'GET' || spec.headers?.['range'] === undefined || spec.sink !== undefined || hedgeMs <= 0) return this.follow(t, spec, scope, until);
    return new Promise<HttpResult>((resolve, reject) => {
      const runs: AbortController[] = [];
      let failures = 0;
      let firstErr: unknown;
      let settled = false;
      let timer: NodeJS.Timeout | undefined;
      const arm = (): void => {
        clearTimeout(timer);
        if (!settled && runs.length < 2) timer = setTimeout(start, hedgeMs);
      };
      const start = (): void => {
        if (settled) return;
        const ac = new AbortController();
        runs.push(ac);
        if (runs.length === 2) this.log.debug({ path: redact(spec.path), range: spec.headers?.['range'] }, `no byte for ${hedgeMs} ms: a twin request`);
        this.follow(t, spec, scope, until, { signal: ac.signal, onBytes: arm }).then(
          (res) => {
            if (settled) return;
            settled = true;
            clearTimeout(timer);
            for (const other of runs) if (other !== ac) other.abort();
            resolve(res);
          },
          (err: unknown) => {
            if (settled) return;
            failures++;
            firstErr ??= err;
            if (failures < runs.length) return;
            settled = true;
            clearTimeout(timer);
            reject(firstErr);
          },
        );
      };
      start();
      arm();
    });
  }

  /** `twin`: a signal that ends the exchange (a hedged twin won), and a hook told of every body piece. */
  private async follow(t: RepoTarget, spec: RequestSpec, scope: string, until: number, twin: { signal?: AbortSignal; onBytes?: () => void } = {}): Promise<HttpResult> {
    const home = new URL(this.origin(t)).origin;
    const redirectKey = `${t.endpoint}${spec.path}`;
    // A blob's signed URL from an earlier redirect is reused while it is valid; when the
    // blob store refuses it (expired: 403) the registry is asked for a fresh one.
    const cached = spec.method === 'GET' ? this.redirects.get(redirectKey) : undefined;
    let url = cached !== undefined && cached.until > Date.now() ? cached.url : new URL(spec.path, home);
    for (let hops = 0; hops <= 5; hops++) {
      const headers: Record<string, string> = { 'user-agent': 'stargzfs/0.1', ...spec.headers };
      const auth = url.origin === home ? this.cachedAuth(t, scope) : undefined;
      if (auth !== undefined) headers['authorization'] = auth;
      // The timeout covers the whole exchange, so a body that trickles in cannot hold a read forever.
      // The same request sent early, while the CLI loaded (early-responses.ts).
      const early = spec.method === 'GET' && auth === undefined ? await takeEarly(url.href, headers['range']) : undefined;
      let res: HttpResult;
      if (early !== undefined) {
        this.log.debug({ path: redact(url.pathname), range: headers['range'] }, 'answered by the request sent early');
        const progress = spec.progress?.(early.status, early.headers);
        res = { status: early.status, headers: early.headers, body: await readBody(early.body(), header(early.headers, 'content-length'), progress, spec.maxBytes) };
      } else {
        const left = until - Date.now();
        if (left <= 0) throw new RegistryError(`${t.endpoint}: ${spec.method} ${redact(spec.path)}: gave up after ${this.opts.retryBudgetMs ?? 30_000} ms of attempts`);
        const timeout = spec.sink !== undefined ? undefined : AbortSignal.timeout(Math.min(this.opts.timeoutMs, left));
        const signals = [timeout, twin.signal].filter((x): x is AbortSignal => x !== undefined);
        const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
        const r = await this.request(url, {
          method: spec.method,
          headers,
          body: url.origin === home ? spec.body : undefined,
          signal,
        });
        if (spec.rangeRequired === true && r.statusCode === 200 && headers['range'] !== undefined) {
          // Reading on would bring the whole blob for every read: the caller streams it once instead.
          r.body.destroy();
          throw new RangeUnsupportedError(`${t.endpoint} ignored Range and answered with the whole blob`);
        }
        const sink = spec.method === 'GET' && r.statusCode >= 200 && r.statusCode < 300 ? spec.sink?.(r.statusCode, r.headers) : undefined;
        if (sink !== undefined) {
          for await (const piece of r.body as AsyncIterable<Buffer>) await sink(piece);
          res = { status: r.statusCode, headers: r.headers, body: Buffer.alloc(0) };
        } else {
          const progress = spec.method === 'GET' ? spec.progress?.(r.statusCode, r.headers) : undefined;
          const pieces = twin.onBytes === undefined ? r.body : tap(r.body, twin.onBytes);
          const body = spec.method === 'HEAD' ? (await r.body.dump(), Buffer.alloc(0)) : await readBody(pieces, header(r.headers, 'content-length'), progress, spec.maxBytes).catch((err: unknown) => {
                // A body refused before it was read would hold its connection, and close(), forever.
                r.body.destroy();
                throw err;
              });
          res = { status: r.statusCode, headers: r.headers, body };
        }
      }
      if (url.origin !== home && (res.status === 401 || res.status === 403 || res.status === 404)) {
        if (this.redirects.delete(redirectKey) || hops === 0) {
          this.log.debug({ status: res.status }, 'signed blob URL refused; asking the registry again');
          url = new URL(spec.path, home);
          continue;
        }
      }
      if (res.status === 401 && url.origin === home && auth === undefined) {
        if (await this.authenticate(t, scope, header(res.headers, 'www-authenticate'), false)) continue;
      }
      const location = header(res.headers, 'location');
      if ([301, 302, 303, 307, 308].includes(res.status) && location !== undefined && !spec.accept?.includes(res.status)) {
        // A blob store's signed URL: followed without the registry's Authorization.
        url = new URL(location, url);
        if (spec.method === 'GET' && url.origin !== home) {
          this.redirects.set(redirectKey, { url, until: Date.now() + this.opts.redirectTtlMs });
        }
        continue;
      }
      return res;
    }
    throw new RegistryError(`${t.endpoint}: too many redirects for ${redact(spec.path)}`);
  }

  private cachedAuth(t: RepoTarget, scope: string): string | undefined {
    const key = `${t.endpoint}|${scope}`;
    const tok = this.tokens.get(key);
    if (tok === undefined) return undefined;
    if (tok.expires < Date.now()) {
      this.tokens.delete(key);
      return undefined;
    }
    return tok.authorization;
  }

  /** Answers a challenge; false when there is nothing more to try. */
  private async authenticate(t: RepoTarget, scope: string, www: string | undefined, reload: boolean): Promise<boolean> {
    const key = `${t.endpoint}|${scope}`;
    this.tokens.delete(key);
    const ch = www !== undefined ? parseChallenge(www) : undefined;
    if (ch === undefined) return false;
    const creds = await this.creds.get(t.registry, reload);
    if (ch.scheme === 'basic') {
      if (creds === undefined) return false;
      const basic = Buffer.from(`${creds.username}:${creds.password}`).toString('base64');
      this.tokens.set(key, { authorization: `Basic ${basic}`, expires: Number.MAX_SAFE_INTEGER });
      return true;
    }
    if (ch.scheme !== 'bearer' || ch.params['realm'] === undefined) return false;
    const token = await this.fetchToken(ch.params['realm'], ch.params['service'], ch.params['scope'] ?? scope, creds);
    // Renew a little before the server's expiry: 10 s early for long tokens, a quarter early for short ones.
    const ttl = token.expiresIn > 40 ? token.expiresIn - 10 : token.expiresIn * 0.75;
    this.tokens.set(key, { authorization: `Bearer ${token.token}`, expires: Date.now() + ttl * 1000 });
    return true;
  }

  private async fetchToken(realm: string, service: string | undefined, scope: string, creds: Credentials | undefined): Promise<{ token: string; expiresIn: number }> {
    const url = new URL(realm);
    if (service !== undefined) url.searchParams.set('service', service);
    url.searchParams.set('scope', scope);
    const headers: Record<string, string> = { 'user-agent': 'stargzfs/0.1' };
    if (creds !== undefined && creds.username !== '') {
      headers['authorization'] = `Basic ${Buffer.from(`${creds.username}:${creds.password}`).toString('base64')}`;
    }
    const r = await this.request(url, { method: 'GET', headers });
    const body = Buffer.from(await r.body.arrayBuffer());
    if (r.statusCode !== 200) {
      throw new RegistryError(`token server ${url.host} refused ${scope}: HTTP ${r.statusCode}${registryMessage(body)}`, r.statusCode);
    }
    const j = JSON.parse(body.toString('utf8')) as { token?: string; access_token?: string; expires_in?: number };
    const token = j.token ?? j.access_token;
    if (token === undefined) throw new RegistryError(`token server ${url.host} returned no token`);
    return { token, expiresIn: j.expires_in ?? 60 };
  }

  /** Waits before the next attempt; false (no wait) when that attempt would start past `until`. */
  private async backoff(attempt: number, retryAfter: string | undefined, why: string, until: number): Promise<boolean> {
    let ms = Math.min(100 * 2 ** attempt, 5000) * (0.5 + Math.random());
    if (retryAfter !== undefined) {
      const secs = Number(retryAfter);
      const at = Number.isFinite(secs) ? secs * 1000 : Date.parse(retryAfter) - Date.now();
      if (Number.isFinite(at) && at > 0) ms = Math.min(at, 30_000);
    }
    // An attempt needs some time of its own; starting it with nothing left would only fail later.
    if (Date.now() + ms + 100 >= until) {
      this.log.debug({ attempt, ms: Math.round(ms) }, `not retrying, the retry budget is spent: ${why}`);
      return false;
    }
    this.log.debug({ attempt, ms: Math.round(ms) }, `retrying: ${why}`);
    await new Promise((r) => setTimeout(r, ms));
    return true;
  }

  // ------------------------------------------------------------------ blobs

  /** The blob's size from HEAD, or from Content-Range of `GET bytes=0-0` when HEAD is refused. */
  async blobSize(t: RepoTarget, digest: string): Promise<number> {
    const head = await this.call(t, { method: 'HEAD', path: blobPath(t.repository, digest), accept: [403, 405] });
    const len = Number(header(head.headers, 'content-length'));
    if (head.status === 200 && Number.isSafeInteger(len)) return len;
    const r = await this.call(t, { method: 'GET', path: blobPath(t.repository, digest), headers: { range: byteRange(0, 1) } });
    const total = /\/(\d+)$/.exec(header(r.headers, 'content-range') ?? '')?.[1];
    if (total === undefined) throw new RegistryError(`${t.endpoint}: cannot learn the size of blob ${digest}`);
    return Number(total);
  }

  /**
   * Several extents of a blob in as few requests as possible: neighbours within `gap`
   * bytes are coalesced, and the groups are asked for in one multi-range request when
   * the registry serves those (multipart/byteranges). A registry that refuses them (400,
   * 416, or a single range back) is remembered and asked one range at a time. With
   * `inOrder`, each extent is a range of its own, in the order given: the distribution
   * registry sends the parts in that order, so the first is handed on first.
   */
  async readRanges(
    t: RepoTarget, digest: string, extents: readonly Extent[], gap = 0, arrived?: (index: number, data: Buffer) => void, inOrder = false, how: RangeOptions = {},
  ): Promise<Buffer[]> {
    const groups = inOrder ? extents.map((e, i) => ({ offset: e.offset, length: e.length, members: [i] })) : coalesce(extents, gap);
    let parts: Part[] | undefined;
    if (groups.length > 1 && !this.singleRangeOnly.has(t.endpoint)) {
      const r = await this.call(t, {
        method: 'GET',
        path: blobPath(t.repository, digest),
        headers: { range: rangesHeader(groups) },
        accept: [400, 416],
        ...how,
        progress: arrived === undefined ? undefined : (status, headers) => {
          const ct = header(headers, 'content-type') ?? '';
          return status === 206 && /^multipart\/byteranges/i.test(ct) ? partsAsTheyCome(ct, extents, arrived) : undefined;
        },
      });
      const ct = header(r.headers, 'content-type') ?? '';
      if (r.status === 206 && /^multipart\/byteranges/i.test(ct)) {
        try {
          parts = parseByteranges(r.body, ct);
        } catch (err) {
          throw new BlobRangeError(`registry sent a malformed multi-range answer: ${(err as Error).message}`, { layer: digest });
        }
      } else if (r.status === 200) {
        parts = [{ offset: 0, data: r.body }];
      } else {
        this.singleRangeOnly.add(t.endpoint);
        this.log.info({ endpoint: t.endpoint, status: r.status }, 'registry refuses multi-range requests; using single ranges');
      }
    }
    // Single ranges: the order cannot be kept across parallel requests, so fewer of them.
    parts ??= await Promise.all((inOrder ? coalesce(extents, gap) : groups).map(async (g) => {
      const part = { offset: g.offset, data: await this.readRange(t, digest, g.offset, g.length, undefined, how) };
      if (arrived !== undefined) for (const i of g.members) arrived(i, extract([extents[i] as Extent], [part])?.[0] as Buffer);
      return part;
    }));
    const out = extract(extents, parts);
    if (out === undefined) throw new BlobRangeError('registry answer does not cover every requested range', { layer: digest });
    return out;
  }

  /**
   * Exactly `length` bytes of a blob at `offset`; a short, long or misplaced body is an
   * error. `progress` sees the bytes as they arrive, only from an answer whose headers
   * already say it is exactly this range.
   */
  async readRange(t: RepoTarget, digest: string, offset: number, length: number, progress?: BodyProgress, how: RangeOptions = {}): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    const ctx = { layer: digest, offset };
    const r = await this.call(t, {
      method: 'GET',
      path: blobPath(t.repository, digest),
      headers: { range: byteRange(offset, length) },
      ...how,
      progress: progress === undefined ? undefined : (status, headers) =>
        status === 206 && header(headers, 'content-length') === String(length) && contentRangeStart(header(headers, 'content-range')) === offset ? progress : undefined,
    });
    if (r.status === 206) {
      if (contentRangeStart(header(r.headers, 'content-range')) !== offset) {
        throw new BlobRangeError(`registry answered range ${JSON.stringify(header(r.headers, 'content-range'))} for bytes ${offset}+${length}`, ctx);
      }
      if (r.body.length !== length) throw new BlobRangeError(`registry sent ${r.body.length} bytes for a range of ${length}`, ctx);
      return r.body;
    }
    // 200: the registry ignored Range and sent the whole blob.
    if (r.body.length < offset + length) {
      throw new BlobRangeError(`registry ignored Range and sent ${r.body.length} bytes, fewer than ${offset + length}`, ctx);
    }
    this.log.warn({ digest }, 'registry ignored Range: the whole blob was transferred');
    return r.body.subarray(offset, offset + length);
  }

  /**
   * The whole blob in one GET without Range, handed to the sink `start` makes, piece by
   * piece as it arrives (for a registry that ignores Range: one transfer for all reads).
   * A retry starts over with a new sink. Resolves with the bytes of the last attempt.
   */
  async streamBlob(t: RepoTarget, digest: string, start: () => BodySink): Promise<number> {
    let bytes = 0;
    await this.call(t, {
      method: 'GET',
      path: blobPath(t.repository, digest),
      sink: () => {
        bytes = 0;
        const each = start();
        return (piece) => {
          bytes += piece.length;
          return each(piece);
        };
      },
    });
    return bytes;
  }
}

/**
 * The whole body, into one buffer sized from Content-Length when there is one (a 16 MiB
 * range then costs no re-copying); more bytes than announced is an error, not data.
 */
async function readBody(body: AsyncIterable<Buffer>, contentLength: string | undefined, progress?: BodyProgress, max = Number.MAX_SAFE_INTEGER): Promise<Buffer> {
  const len = contentLength !== undefined ? Number(contentLength) : Number.NaN;
  const tooLarge = (): ImageError => new ImageError(`the answer is larger than ${max} bytes, more than it may be`);
  if (Number.isSafeInteger(len) && len > max) throw tooLarge();
  if (!Number.isSafeInteger(len)) {
    const parts: Buffer[] = [];
    let have = 0;
    for await (const chunk of body) {
      have += chunk.length;
      if (have > max) throw tooLarge();
      parts.push(chunk);
    }
    return Buffer.concat(parts);
  }
  const out = Buffer.allocUnsafe(len);
  let at = 0;
  for await (const chunk of body) {
    if (at + chunk.length > len) throw new Error(`body longer than its Content-Length ${len}`);
    chunk.copy(out, at);
    at += chunk.length;
    progress?.(out.subarray(0, at));
  }
  return at === len ? out : out.subarray(0, at);
}

/** The body's pieces, `each` told of every one. */
async function* tap(body: AsyncIterable<Buffer>, each: () => void): AsyncGenerator<Buffer> {
  for await (const piece of body) {
    each();
    yield piece;
  }
}

/** A body progress that hands each requested extent over once the part holding it is in. */
function partsAsTheyCome(contentType: string, extents: readonly Extent[], arrived: (index: number, data: Buffer) => void): BodyProgress | undefined {
  let reader: ByterangesReader;
  try {
    reader = new ByterangesReader(contentType);
  } catch {
    return undefined;
  }
  const given = new Set<number>();
  return (prefix) => {
    let parts: Part[];
    try {
      parts = reader.feed(prefix);
    } catch {
      return; // the whole answer is checked when it is in
    }
    for (const p of parts) {
      extents.forEach((e, i) => {
        if (given.has(i) || e.offset < p.offset || e.offset + e.length > p.offset + p.data.length) return;
        given.add(i);
        arrived(i, p.data.subarray(e.offset - p.offset, e.offset - p.offset + e.length));
      });
    }
  };
}

/** Where a single-range answer's Content-Range says its bytes start (undefined: not a single range). */
function contentRangeStart(value: string | undefined): number | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(value ?? '');
  return m === null ? undefined : Number(m[1]);
}

/** Paths may carry upload state or signed queries; keep only the path. */
function redact(path: string): string {
  const q = path.indexOf('?');
  return q < 0 ? path : `${path.slice(0, q)}?…`;
}

function registryMessage(body: Buffer): string {
  try {
    const j = JSON.parse(body.toString('utf8')) as { errors?: Array<{ code?: string; message?: string }> };
    const e = j.errors?.[0];
    return e ? ` (${e.code ?? ''}${e.message ? `: ${e.message}` : ''})` : '';
  } catch {
    return '';
  }
}
