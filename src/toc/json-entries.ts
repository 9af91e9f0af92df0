// Streaming reader of the TOC JSON: walks `{"version":…, "entries":[…]}` as bytes arrive,
// without building the whole document, and hands each entry object to JSON.parse on its
// own slice. Memory stays at one entry (plus one input chunk) however large the TOC is
// (ESTARGZ.md §4.1, §11.16). Each step either completes or waits for more bytes and is
// re-run from its start; a step is re-run only after the buffer has doubled, and chunks
// are joined to the buffer only then, so a huge value split across many chunks costs
// linear time, not quadratic (issue 22: joining every chunk made a 32 MiB string cost
// seconds).
import { TocFormatError, type ErrorContext } from '../errors.js';

const WS = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WS[c] = 1;

export interface TocHeader {
  version: number | undefined;
  sawEntries: boolean;
}

const NEED_MORE = Symbol('need more input');

/** Entries larger than this have their keys checked before JSON.parse sees them. */
const LONG_ENTRY_BYTES = 64 << 10;
/** Longest object key allowed (xattr names are at most 255 bytes on Linux). */
const MAX_KEY_BYTES = 1024;

/** Bytes of the longest object key in buf[s, e), a JSON value (escapes counted as written). */
function longestKey(buf: Buffer, s: number, e: number): number {
  let longest = 0;
  for (let i = s; i < e; i++) {
    if (buf[i] !== 0x22) continue;
    const start = i;
    for (i++; i < e && buf[i] !== 0x22; i++) if (buf[i] === 0x5c) i++;
    let j = i + 1;
    while (j < e && WS[buf[j] as number]) j++;
    if (buf[j] === 0x3a) longest = Math.max(longest, i - start - 1);
  }
  return longest;
}

type State = 'open' | 'key-or-close' | 'key' | 'entries-first' | 'entries-next' | 'after-value' | 'done';

export class TocJsonParser {
  private buf: Buffer = Buffer.alloc(0);
  /** Chunks not yet joined to buf: only a step that may complete is worth a copy. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private p = 0;
  private base = 0; // bytes dropped from the front of buf, for error offsets
  private state: State = 'open';
  private ended = false;
  private index = 0;
  private retryAt = 0;
  /** Absolute offset of a string the input ended in, and how far it was scanned. */
  private openString = -1;
  private openScanned = 0;
  readonly header: TocHeader = { version: undefined, sawEntries: false };

  constructor(
    private readonly onEntry: (raw: unknown, index: number) => void,
    private readonly ctx: ErrorContext = {},
  ) {}

  push(chunk: Buffer): void {
    if (chunk.length === 0) return;
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    if (this.buf.length - this.p + this.pendingBytes >= this.retryAt) {
      this.join();
      this.run();
    }
  }

  /** Call after the last chunk; throws if the document is incomplete. */
  end(): TocHeader {
    this.ended = true;
    this.join();
    this.run();
    if (this.state !== 'done') this.fail('unexpected end of the TOC', this.p);
    return this.header;
  }

  /** Appends the pending chunks, dropping the consumed bytes (steps hold no offsets between runs). */
  private join(): void {
    if (this.pending.length === 0) return;
    const rest = this.buf.subarray(this.p);
    this.base += this.p;
    this.p = 0;
    this.buf = rest.length === 0 && this.pending.length === 1
      ? (this.pending[0] as Buffer)
      : Buffer.concat([rest, ...this.pending], rest.length + this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
  }

  private run(): void {
    for (;;) {
      const start = this.p;
      try {
        if (!this.step()) return;
      } catch (err) {
        if (err !== NEED_MORE) throw err;
        this.p = start;
        // Retry once the unconsumed bytes have doubled: linear time for huge values.
        this.retryAt = (this.buf.length - this.p) * 2;
        return;
      }
      this.retryAt = 0;
    }
  }

  private fail(msg: string, at: number): never {
    throw new TocFormatError(`malformed TOC JSON at byte ${this.base + at}: ${msg}`, this.ctx);
  }

  private byte(q: number): number {
    if (q >= this.buf.length) {
      if (this.ended) this.fail('unexpected end of the TOC', q);
      throw NEED_MORE;
    }
    return this.buf[q] as number;
  }

  private ws(): void {
    while (WS[this.byte(this.p)]) this.p++;
  }

  /**
   * End (after the closing quote) of the string at `start`. A string still open when the
   * bytes run out is resumed where the scan stopped, not rescanned, once more arrive.
   */
  private stringEnd(start: number): number {
    let q = start + 1;
    if (this.openString === this.base + start) q = Math.max(q, this.openScanned - this.base);
    for (;;) {
      const quote = this.buf.indexOf(0x22, q);
      if (quote < 0) {
        if (this.ended) this.fail('unterminated string', start);
        this.openString = this.base + start;
        this.openScanned = this.base + this.buf.length;
        throw NEED_MORE;
      }
      let bs = 0;
      while (quote - 1 - bs > start && this.buf[quote - 1 - bs] === 0x5c) bs++;
      if (bs % 2 === 0) return quote + 1;
      q = quote + 1;
    }
  }

  /** Skips one value at p (after whitespace); returns [start, end). */
  private value(): [number, number] {
    this.ws();
    const s = this.p;
    const c = this.byte(s);
    if (c === 0x22) return [s, (this.p = this.stringEnd(s))];
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      let q = s;
      for (;;) {
        const d = this.byte(q);
        if (d === 0x22) {
          q = this.stringEnd(q);
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          if (--depth === 0) return [s, (this.p = q + 1)];
        }
        q++;
      }
    }
    let q = s;
    for (;;) {
      if (q >= this.buf.length && this.ended) break;
      const d = this.byte(q);
      if (WS[d] || d === 0x2c || d === 0x7d || d === 0x5d) break;
      q++;
    }
    if (q === s) this.fail('expected a value', s);
    return [s, (this.p = q)];
  }

  private parse(s: number, e: number): unknown {
    // JSON.parse keys an object's fields by string hash, and V8 hashes a string of over
    // 16,383 characters by its length alone: an entry of thousands of such keys would
    // parse in quadratic time. No TOC field or xattr name is anywhere near that long.
    if (e - s > LONG_ENTRY_BYTES) {
      const key = longestKey(this.buf, s, e);
      if (key > MAX_KEY_BYTES) this.fail(`an object key of ${key} bytes (TOC keys and xattr names are at most ${MAX_KEY_BYTES})`, s);
    }
    try {
      return JSON.parse(this.buf.toString('utf8', s, e));
    } catch (err) {
      return this.fail((err as Error).message, s);
    }
  }

  private expect(c: number, what: string): void {
    this.ws();
    if (this.byte(this.p) !== c) this.fail(`expected ${what}`, this.p);
    this.p++;
  }

  /** One step of the document; false when done. */
  private step(): boolean {
    switch (this.state) {
      case 'open':
        this.expect(0x7b, '{');
        this.state = 'key-or-close';
        return true;
      case 'key-or-close':
        this.ws();
        if (this.byte(this.p) === 0x7d) {
          this.p++;
          this.state = 'done';
          return true;
        }
        this.state = 'key';
        return true;
      case 'key': {
        this.ws();
        if (this.byte(this.p) !== 0x22) this.fail('expected a key', this.p);
        const ks = this.p;
        const ke = this.stringEnd(ks);
        this.p = ke;
        this.expect(0x3a, ':');
        const key = this.parse(ks, ke) as string;
        if (key === 'entries') {
          this.ws();
          if (this.byte(this.p) === 0x5b) {
            this.p++;
            this.header.sawEntries = true;
            this.state = 'entries-first';
            return true;
          }
          const [s, e] = this.value();
          if (this.parse(s, e) !== null) this.fail('"entries" must be an array or null', s);
          this.header.sawEntries = true;
        } else {
          const [s, e] = this.value();
          if (key === 'version') {
            const v = this.parse(s, e);
            if (typeof v !== 'number') this.fail('"version" must be a number', s);
            this.header.version = v as number;
          }
        }
        this.state = 'after-value';
        return true;
      }
      case 'entries-first':
      case 'entries-next': {
        this.ws();
        let c = this.byte(this.p);
        if (c === 0x5d) {
          this.p++;
          this.state = 'after-value';
          return true;
        }
        if (this.state === 'entries-next') {
          if (c !== 0x2c) this.fail('expected , or ] in "entries"', this.p);
          this.p++;
          this.ws();
          c = this.byte(this.p);
        }
        if (c !== 0x7b) this.fail('each entry must be an object', this.p);
        const [s, e] = this.value();
        this.onEntry(this.parse(s, e), this.index++);
        this.state = 'entries-next';
        return true;
      }
      case 'after-value': {
        this.ws();
        const c = this.byte(this.p);
        this.p++;
        if (c === 0x2c) this.state = 'key';
        else if (c === 0x7d) this.state = 'done';
        else this.fail('expected , or } after a top-level value', this.p - 1);
        return true;
      }
      case 'done':
        while (this.p < this.buf.length) {
          if (!WS[this.buf[this.p] as number]) this.fail('trailing data after the TOC object', this.p);
          this.p++;
        }
        return false;
    }
  }
}

/** The whole TOC in one buffer. Go decodes a missing "entries" as nil: an empty layer. */
export function forEachTocEntry(json: Buffer, onEntry: (raw: unknown, index: number) => void, ctx: ErrorContext = {}): TocHeader {
  // Long keys are the walking parser's to refuse (see TocJsonParser.parse).
  const fast = json.length > LONG_ENTRY_BYTES && longestKey(json, 0, json.length) > MAX_KEY_BYTES ? undefined : parseWhole(json);
  if (fast !== undefined) {
    fast.entries.forEach((e, i) => onEntry(e, i));
    return fast.header;
  }
  const parser = new TocJsonParser(onEntry, ctx);
  parser.push(json);
  return parser.end();
}

/**
 * JSON.parse of the whole document, several times faster than walking it: for TOCs
 * small enough to hold. Undefined when the document is not a well-formed TOC; the
 * walking parser then says exactly what is wrong where.
 */
function parseWhole(json: Buffer): { header: TocHeader; entries: readonly object[] } | undefined {
  let doc: unknown;
  try {
    doc = JSON.parse(json.toString('utf8'));
  } catch {
    return undefined;
  }
  if (doc === null || typeof doc !== 'object' || Array.isArray(doc)) return undefined;
  const { version, entries } = doc as { version?: unknown; entries?: unknown };
  if (version !== undefined && typeof version !== 'number') return undefined;
  if (entries !== undefined && entries !== null && !Array.isArray(entries)) return undefined;
  const list = (entries ?? []) as unknown[];
  if (!list.every((e) => e !== null && typeof e === 'object' && !Array.isArray(e))) return undefined;
  return { header: { version: version as number | undefined, sawEntries: 'entries' in doc }, entries: list as object[] };
}
