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

/** Collects a response's body while it arrives; any number of readers follow it from the start. */
function collect(res: import('node:http').IncomingMessage): () => AsyncIterable<Buffer> {
  const parts: Buffer[] = [];
  let ended = false;
  let failed: Error | undefined;
  const waiting = new Set<() => void>();
  const wake = (): void => {
    for (const w of waiting) w();
    waiting.clear();
  };
  res.on('data', (b: Buffer) => {
    parts.push(b);
    wake();
  });
  res.on('end', () => {
    ended = true;
    wake();
  });
  const fail = (err: Error): void => {
    failed ??= err;
    wake();
  };
  res.on('error', fail);
  res.on('aborted', () => fail(new Error('the early response was cut off')));
  res.on('close', () => {
    if (!ended) fail(new Error('the early response was cut off'));
  });
  return async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; ; ) {
      while (i < parts.length) yield parts[i++] as Buffer;
      if (failed !== undefined) throw failed;
      if (ended) return;
      await new Promise<void>((resolve) => waiting.add(resolve));
    }
  };
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

/**
 * Sends a GET now, or once `after` has settled; its 200/206 answer waits for takeEarly,
 * resolved when its headers are in. Resolves undefined for anything else. `onSent` is
 * called once the request is on the wire (or has failed). A request held by `after` is
 * kept from the start: the client asking for it meanwhile waits for it, rather than send
 * a second one.
 */
export function sendEarly(
  url: URL, headers: Readonly<Record<string, string>>, onSent?: () => void, after?: Promise<unknown>,
): Promise<EarlyResponse | undefined> {
  let cancelled = false;
  let cancel = (): void => void (cancelled = true);
  const go = (): Promise<EarlyResponse | undefined> => {
    if (!cancelled) return send(url, headers, onSent, (stop) => (cancel = stop));
    onSent?.();
    return Promise.resolve(undefined);
  };
  const answer = after === undefined ? go() : after.then(go, go);
  const key = keyOf(url.href, headers['range']);
  const entry = { answer, cancel: () => cancel() };
  kept.set(key, entry);
  setTimeout(() => {
    if (kept.get(key) !== entry) return;
    kept.delete(key);
    entry.cancel();
  }, KEEP_MS).unref();
  return answer;
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
