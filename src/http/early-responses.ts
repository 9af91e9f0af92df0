// Requests sent before the registry client exists, and their answers kept for it. A
// mount's first requests (the manifest, the TOCs) go out from the bundle's small entry
// while the CLI's modules load (layer/early-fetch.ts): some 0.2 s of CPU during which
// nothing else could be on the wire. node:http is in Node already; undici is part of
// what is loading. RegistryClient takes an answer when it is about to send the very same
// request, and then treats it as its own: status, digests and lengths checked as usual.
// Only a 200 or 206 is kept; anything else (a 401, a redirect, an error) is dropped, and
// the client asks again itself. The body streams: a reader (the landmark region fetched
// ahead) gets its bytes as they arrive, as from its own request.
import { Agent as HttpAgent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createRequire } from 'node:module';
import { rangesHeader, byteRange } from './api-paths.js';
import { ByterangesSplitter, type Extent, type PartSink } from './ranges.js';

export interface EarlyResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /**
   * The body, from its first byte, as it arrives (each call reads it from the start). It
   * is read off the socket as soon as it comes, whether or not anyone iterates yet: a
   * paused response would stop the transfer it was sent early for.
   */
  body(): AsyncIterable<Buffer>;
}

/** A body kept as it arrives, which any number of readers follow from its start. */
class Arriving implements PartSink {
  private readonly parts: Buffer[] = [];
  private ended = false;
  private failed: Error | undefined;
  private readonly waiting = new Set<() => void>();

  push(b: Buffer): void {
    this.parts.push(b);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  /** Cut off: a reader past what came gets `err` (an ended body stays whole). */
  fail(err: Error): void {
    if (this.ended) return;
    this.failed ??= err;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiting) w();
    this.waiting.clear();
  }

  private async *read(): AsyncGenerator<Buffer> {
    for (let i = 0; ; ) {
      while (i < this.parts.length) yield this.parts[i++] as Buffer;
      if (this.failed !== undefined) throw this.failed;
      if (this.ended) return;
      await new Promise<void>((resolve) => this.waiting.add(resolve));
    }
  }

  /** The body from its first byte, as it arrives (each call reads it from the start). */
  readonly body = (): AsyncIterable<Buffer> => this.read();
}

/** Collects a response's body while it arrives. */
function collect(res: import('node:http').IncomingMessage): () => AsyncIterable<Buffer> {
  const a = new Arriving();
  const cut = (): void => a.fail(new Error('the early response was cut off'));
  res.on('data', (b: Buffer) => a.push(b));
  res.on('end', () => a.end());
  res.on('error', (err: Error) => a.fail(err));
  res.on('aborted', cut);
  res.on('close', cut);
  return a.body;
}

/** Resolves when an early response's body has all arrived (or failed). */
export async function earlyEnd(r: EarlyResponse): Promise<void> {
  const it = r.body()[Symbol.asyncIterator]();
  while (!(await it.next()).done);
}

/** The whole body of an early response. */
export async function earlyBody(r: EarlyResponse): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const b of r.body()) parts.push(b);
  return Buffer.concat(parts);
}

const kept = new Map<string, { answer: Promise<EarlyResponse | undefined>; cancel: () => void }>();
/**
 * An answer nobody took in this long is dropped, its transfer stopped: a mount that
 * planned differently from its early requests (another process changed the chunk cache
 * meanwhile) must not keep 16 MiB arriving, and held, for nothing.
 */
const KEEP_MS = 30_000;

/**
 * One keep-alive agent per scheme: the TOC's request goes out on the manifest's
 * connection, not a new one (a round trip on a real network, three with TLS). A free
 * socket does not hold the process up (the agent unrefs it) and closes after a while.
 */
const agents = new Map<string, HttpAgent>();
function agentFor(protocol: string): HttpAgent {
  let a = agents.get(protocol);
  if (a === undefined) {
    const Agent = protocol === 'https:' ? (createRequire(import.meta.url)('node:https') as typeof import('node:https')).Agent : HttpAgent;
    a = new Agent({ keepAlive: true, timeout: 30_000 });
    agents.set(protocol, a);
  }
  return a;
}
const keyOf = (url: string, range: string | undefined): string => `${url} ${range ?? ''}`;

interface Sent {
  readonly answer: Promise<EarlyResponse | undefined>;
  /** Stops the transfer (or the request, before it is sent). */
  cancel(): void;
}

/** A GET sent now, or once `after` has settled (not at all if cancelled meanwhile). */
function start(url: URL, headers: Readonly<Record<string, string>>, onSent?: () => void, after?: Promise<unknown>): Sent {
  let cancelled = false;
  let cancel = (): void => void (cancelled = true);
  const go = (): Promise<EarlyResponse | undefined> => {
    if (!cancelled) return send(url, headers, onSent, (stop) => (cancel = stop));
    onSent?.();
    return Promise.resolve(undefined);
  };
  return { answer: after === undefined ? go() : after.then(go, go), cancel: () => cancel() };
}

/** Keeps an answer for takeEarly under the request it answers, for KEEP_MS at most. */
function keep(url: URL, range: string | undefined, entry: Sent): void {
  const key = keyOf(url.href, range);
  kept.set(key, entry);
  setTimeout(() => {
    if (kept.get(key) !== entry) return;
    kept.delete(key);
    entry.cancel();
  }, KEEP_MS).unref();
}

/**
 * Sends a GET now; its 200/206 answer waits for takeEarly, resolved when its headers are
 * in. Resolves undefined for anything else. `onSent` is called once the request is on the
 * wire (or has failed).
 */
export function sendEarly(url: URL, headers: Readonly<Record<string, string>>, onSent?: () => void): Promise<EarlyResponse | undefined> {
  const sent = start(url, headers, onSent);
  keep(url, headers['range'], sent);
  return sent.answer;
}

/** Sends a GET for one extent on its own, as the fallback of sendEarlyParts. */
export type SendAlone = (range: string, after?: Promise<unknown>) => Promise<EarlyResponse | undefined>;

/**
 * Several extents of one blob in one request (a multi-range GET), each kept as the answer
 * to its own single-range GET: the registry client takes a part as if it had been sent
 * alone, its bytes streaming as they come. One request, one round trip, and the parts
 * follow each other on the link in the order given, where separate requests would share
 * it or leave it idle between them. A registry that answers otherwise (the whole blob, a
 * single range, an error) has that answer stopped; `alone(i, send)` then asks for extent
 * i by itself, called in extent order. Resolves once the request is on the wire.
 */
export function sendEarlyParts(
  url: URL, extents: readonly Extent[], alone: (i: number, send: SendAlone) => Promise<EarlyResponse | undefined>,
): Promise<void> {
  let sent!: () => void;
  const onWire = new Promise<void>((resolve) => (sent = resolve));
  const whole = start(url, { range: rangesHeader(extents) }, sent);
  const parts = extents.map(() => {
    let resolve!: (r: EarlyResponse | undefined | Promise<EarlyResponse | undefined>) => void;
    const answer = new Promise<EarlyResponse | undefined>((r) => (resolve = r));
    return { answer, resolve, given: false, cancelled: false, fallbacks: [] as Sent[] };
  });
  let fellBack = false;
  const fallBack = (): void => {
    if (fellBack) return;
    fellBack = true;
    parts.forEach((p, i) => {
      if (p.given) return;
      p.given = true;
      p.resolve(p.cancelled ? undefined : alone(i, (range, after) => {
        const f = start(url, { range }, undefined, after);
        p.fallbacks.push(f);
        return f.answer;
      }));
    });
  };
  void whole.answer.then(async (r) => {
    const ct = r?.headers['content-type'] ?? '';
    if (r === undefined || r.status !== 206 || !/^multipart\/byteranges/i.test(ct)) {
      whole.cancel();
      fallBack();
      return;
    }
    const bodies: Arriving[] = [];
    const splitter = new ByterangesSplitter(ct, (e) => {
      const i = extents.findIndex((x) => x.offset === e.offset && x.length === e.length);
      const p = parts[i];
      if (p === undefined || p.given) return undefined;
      const body = new Arriving();
      bodies.push(body);
      p.given = true;
      p.resolve({
        status: 206,
        headers: { 'content-length': String(e.length), 'content-range': `bytes ${e.offset}-${e.offset + e.length - 1}/*` },
        body: body.body,
      });
      return body;
    });
    let cut = new Error('the multi-range answer ended inside this part');
    try {
      for await (const b of r.body()) splitter.push(b);
    } catch (err) {
      cut = err as Error;
    }
    // A part not ended by now never will be: its reader hears so (an ended one stays whole).
    for (const b of bodies) b.fail(cut);
    // Parts the answer did not hold are asked for alone.
    fallBack();
  });
  parts.forEach((p, i) => {
    keep(url, byteRange((extents[i] as Extent).offset, (extents[i] as Extent).length), {
      answer: p.answer,
      cancel: () => {
        p.cancelled = true;
        if (parts.every((x) => x.cancelled)) whole.cancel();
        for (const f of p.fallbacks) f.cancel();
      },
    });
  });
  return onWire;
}

function send(
  url: URL, headers: Readonly<Record<string, string>>, onSent: (() => void) | undefined, cancelWith: (stop: () => void) => void,
): Promise<EarlyResponse | undefined> {
  return new Promise<EarlyResponse | undefined>((resolve) => {
    // node:https (and so tls) only for an https registry.
    const request = url.protocol === 'https:' ? (createRequire(import.meta.url)('node:https') as typeof import('node:https')).request : httpRequest;
    const req = request(url, { method: 'GET', headers: { 'user-agent': 'stargzfs/0.1', ...headers }, agent: agentFor(url.protocol) }, (res) => {
      if (res.statusCode !== 200 && res.statusCode !== 206) {
        res.resume();
        resolve(undefined);
        return;
      }
      resolve({ status: res.statusCode, headers: res.headers, body: collect(res) });
    });
    req.on('error', () => {
      onSent?.();
      resolve(undefined);
    });
    if (onSent !== undefined) req.on('finish', onSent);
    req.setTimeout(30_000, () => req.destroy());
    cancelWith(() => req.destroy());
    req.end();
  });
}

/** The early answer to exactly this GET (taken: one use), or undefined when none was sent. */
export function takeEarly(url: string, range: string | undefined): Promise<EarlyResponse | undefined> | undefined {
  const key = keyOf(url, range);
  const entry = kept.get(key);
  kept.delete(key);
  return entry?.answer;
}

/** Stops an early request nobody will take (a guess that turned out wrong) and forgets it. */
export function dropEarly(url: string, range: string | undefined): void {
  const key = keyOf(url, range);
  const entry = kept.get(key);
  kept.delete(key);
  entry?.cancel();
}
