// A mount's first requests, sent from the bundle's small entry while the CLI's modules
// load (http/early-responses.ts says why and how they are used): the manifest by the
// reference given and, when that is an image manifest, the TOC tail of each layer not
// indexed yet, exactly as toc/toc-reader.ts will ask for it (from the TOC offset hint
// when the layer has one), and the landmark region of a layer whose annotations give its
// size (layer/blob-head.ts asks for exactly that range) right behind it, in the same
// request: sent after the TOC's first bytes, its own request left the link idle for 15 ms
// at 20 ms per request, the TOC being shorter than a round trip. And the
// first request of the learned prefetch (learned-plan.ts), when meta.db keeps a profile
// of the image: at 20 ms per request it used to leave 85 ms after the manifest's answer,
// behind the CLI's start and the mount. It goes with the manifest's request, for the
// image the reference named last time here; should the manifest name another image, it is
// stopped, and the other image's sent if there is one.
// An index, an error or an odd answer ends it; the normal path then does everything.
import { createHash } from 'node:crypto';
import type { EarlyResponse } from '../http/early-responses.js';
import { MANIFEST_ACCEPT } from '../http/media-types.js';
import { blobPath, byteRange, manifestPath } from '../http/api-paths.js';
import { parseImageRef } from '../http/reference.js';
import { dropEarly, earlyBody, sendEarly, sendEarlyParts } from '../http/early-responses.js';
import { prefetchSizeHint, tocOffsetHint } from '../toc/blob.js';
import { tocTailExtent, type TocReadOptions } from '../toc/toc-reader.js';
import { indexedLayerDigests, peekMetaDb } from '../toc/inode-db.js';
import { firstLearnedRequest, lastImageOf } from './learned-plan.js';
import { headLength } from './blob-head.js';

export interface EarlyFetchTarget {
  /** The image reference as given to the command. */
  readonly ref: string;
  readonly plainHttp: boolean;
  readonly toc: TocReadOptions;
  /** The state's meta.db: layers indexed there already need no TOC. */
  readonly metaDb: string;
  /** The mount will prefetch landmark regions (no --no-prefetch). */
  readonly prefetch: boolean;
  /** The mount will prefetch what its profile learned (no --no-learned-prefetch). */
  readonly learned: boolean;
}

/**
 * Sends the requests; the answers wait for the registry client. Resolves once the first
 * is on the wire: a connection is made, and the request written, only when this thread
 * gets back to its event loop, so the caller waits for that before it runs a stretch of
 * synchronous work (loading or starting the CLI).
 */
export function startEarlyFetch(target: EarlyFetchTarget): Promise<void> {
  let ref;
  try {
    ref = parseImageRef(target.ref);
  } catch {
    return Promise.resolve(); // the command reports it
  }
  const origin = `${target.plainHttp ? 'http' : 'https'}://${ref.endpoint}`;
  const reference = ref.digest ?? ref.tag;
  if (reference === undefined) return Promise.resolve();
  const manifest = new URL(manifestPath(ref.repository, reference), origin);
  const learnedUrl = (layer: string): URL => new URL(blobPath(ref.repository, layer), origin);
  let sent!: () => void;
  const onWire = new Promise<void>((resolve) => (sent = resolve));
  let guess: { image: string; layer: string; range: string } | undefined;
  const answer = sendEarly(manifest, { accept: MANIFEST_ACCEPT }, () => {
    // Read once the manifest's request is out, so meta.db's opening does not delay it.
    if (target.learned) {
      guess = peekMetaDb(target.metaDb, undefined, (db) => {
        const image = lastImageOf(db, target.ref) ?? ref.digest;
        const first = image !== undefined ? firstLearnedRequest(db, image) : undefined;
        return first !== undefined && image !== undefined ? { image, ...first } : undefined;
      });
    }
    if (guess === undefined) sent();
    else void sendEarly(learnedUrl(guess.layer), { range: guess.range }, sent);
  });
  void answer.then(async (m) => {
    if (m === undefined) {
      if (guess !== undefined) dropEarly(learnedUrl(guess.layer).href, guess.range);
      return;
    }
    let body: Buffer;
    let parsed: { layers?: unknown; manifests?: unknown };
    try {
      body = await earlyBody(m);
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      parsed = {};
      body = Buffer.alloc(0);
    }
    const layers = parsed.layers;
    const image = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    // An index: the platform choice is the CLI's; the guess stands if the index lists it.
    const listed = Array.isArray(parsed.manifests) && (parsed.manifests as Array<{ digest?: unknown }>).some((d) => d.digest === guess?.image);
    if (guess !== undefined && guess.image !== image && !listed) {
      dropEarly(learnedUrl(guess.layer).href, guess.range);
      guess = undefined;
    }
    if (!Array.isArray(layers)) return;
    const descs = (layers as Array<{ digest?: unknown; size?: unknown; annotations?: Record<string, string> }>).filter(
      (l): l is { digest: string; size: number; annotations?: Record<string, string> } =>
        typeof l.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(l.digest) && typeof l.size === 'number' && Number.isSafeInteger(l.size) && l.size > 0,
    );
    const digests = descs.map((l) => l.digest);
    const { indexed, learned } = peekMetaDb(target.metaDb, { indexed: new Set<string>(), learned: undefined }, (db) => ({
      indexed: indexedLayerDigests(db, digests),
      learned: target.learned && guess === undefined ? firstLearnedRequest(db, image) : undefined,
    }));
    if (learned !== undefined) void sendEarly(learnedUrl(learned.layer), { range: learned.range });
    for (const l of descs) {
      if (indexed.has(l.digest)) continue;
      const { offset, length } = tocTailExtent(l.size, tocOffsetHint(l.annotations), target.toc);
      const blob = new URL(blobPath(ref.repository, l.digest), origin);
      const hint = prefetchSizeHint(l.annotations);
      const head = target.prefetch && hint !== undefined ? headLength(hint, l.size) : 0;
      if (head === 0) {
        void sendEarly(blob, { range: byteRange(offset, length) });
      } else if (head > offset) {
        // They overlap (a small layer, all of it prioritized): the TOC's answer ends where the region starts to be needed.
        void sendEarly(blob, { range: byteRange(offset, length) });
        void sendEarly(blob, { range: byteRange(0, head) });
      } else {
        // The TOC, then the region right behind it, in one request. Should the registry
        // not serve that, the TOC alone, and the region once the TOC's rest would be in
        // before the region's first byte could be.
        let toc: { answer: Promise<EarlyResponse | undefined>; sentAt: number } | undefined;
        void sendEarlyParts(blob, [{ offset, length }, { offset: 0, length: head }], (i, send) => {
          if (i === 0) {
            toc = { answer: send(byteRange(offset, length)), sentAt: performance.now() };
            return toc.answer;
          }
          const t = toc;
          const due = t === undefined ? undefined : t.answer.then(async (r) => (r !== undefined ? nearEnd(r, length, t.sentAt) : 0));
          return send(byteRange(0, head), due);
        });
      }
    }
  });
  return onWire;
}

/**
 * Whether a request sent now would get its first byte no sooner than a body that is
 * `left` bytes from its end, arriving at `rate` bytes per ms, ends: its first byte takes
 * `ttfb` ms (what the body's own request took). The region is asked for then, not at the
 * TOC's end: that lost a round trip and the registry's lookup (50 ms at 20 ms per request),
 * and the request waited for the indexer to let go of the thread. Not sooner either: on a
 * shared link the region's bytes would slow the TOC down, and the mount is ready only
 * once the TOC is in.
 */
export function dueBeforeEnd(left: number, rate: number, ttfb: number): boolean {
  return left <= rate * ttfb;
}

/**
 * Resolves once the TOC's remaining bytes would arrive before a request sent now is
 * answered, or at its end; with how many bytes were still to come. `now` is the clock
 * (performance.now, or a test's).
 */
export async function nearEnd(r: EarlyResponse, length: number, sentAt: number, now: () => number = () => performance.now()): Promise<number> {
  const firstAt = now();
  const ttfb = firstAt - sentAt;
  let got = 0;
  let withHeaders = -1;
  for await (const b of r.body()) {
    got += b.length;
    // The first bytes come with the headers: the rate is what came after them.
    if (withHeaders < 0) withHeaders = got;
    const elapsed = now() - firstAt;
    if (elapsed >= 1 && dueBeforeEnd(length - got, (got - withHeaders) / elapsed, ttfb)) return Math.max(0, length - got);
  }
  return 0;
}
