// Byte-range arithmetic for blob reads: coalescing extents into fewer requests and
// parsing multipart/byteranges answers. Pure functions, table-tested.
import { BlobRangeError } from '../errors.js';

export interface Extent {
  readonly offset: number;
  readonly length: number;
}

export interface Group {
  readonly offset: number;
  readonly length: number;
  /** Indexes into the input of the extents this group covers. */
  readonly members: readonly number[];
}

/**
 * Sorts extents and merges those that overlap or lie within `gap` bytes of each other,
 * so that one request fetches them all (the gap bytes are fetched and dropped).
 */
export function coalesce(extents: readonly Extent[], gap: number): Group[] {
  const order = extents.map((e, i) => i).sort((a, b) => (extents[a] as Extent).offset - (extents[b] as Extent).offset);
  const out: Array<{ offset: number; end: number; members: number[] }> = [];
  for (const i of order) {
    const e = extents[i] as Extent;
    const last = out[out.length - 1];
    if (last !== undefined && e.offset <= last.end + gap) {
      last.end = Math.max(last.end, e.offset + e.length);
      last.members.push(i);
    } else {
      out.push({ offset: e.offset, end: e.offset + e.length, members: [i] });
    }
  }
  return out.map((g) => ({ offset: g.offset, length: g.end - g.offset, members: g.members }));
}

export interface Part {
  readonly offset: number;
  readonly data: Buffer;
}

/** The delimiter (`--` and the boundary) a multipart/byteranges Content-Type names. */
export function boundaryOf(contentType: string): Buffer {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (boundary === undefined) throw new BlobRangeError('multipart answer without a boundary');
  return Buffer.from(`--${boundary}`);
}

/** Where a multipart/byteranges part's bytes lie in the blob, from its headers. */
export function partExtent(headers: string): Extent {
  const cr = /content-range:\s*bytes (\d+)-(\d+)\/(\d+|\*)/i.exec(headers);
  if (cr === null) throw new BlobRangeError('multipart part without a Content-Range');
  const offset = Number(cr[1]);
  const last = Number(cr[2]);
  // A range that ends before it starts (or past what a number holds) made a negative
  // length that the readers looped on, allocating, until the process ran out of memory.
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(last) || last < offset) {
    throw new BlobRangeError(`multipart part with an impossible Content-Range: bytes ${cr[1]}-${cr[2]}`);
  }
  return { offset, length: last - offset + 1 };
}

/**
 * Reads a multipart/byteranges body as it grows: each feed() of a longer prefix returns
 * the parts completed since the last (each part's length comes from its Content-Range).
 * A prefix that is not a continuation (a retried request) starts it over.
 */
export class ByterangesReader {
  private readonly delim: Buffer;
  private body: Buffer | undefined;
  /** Where the next part's delimiter is looked for. */
  private pos = 0;
  private closed = false;

  constructor(contentType: string) {
    this.delim = boundaryOf(contentType);
  }

  /** Whether the closing delimiter has been read. */
  get complete(): boolean {
    return this.closed;
  }

  /** Where the parts read so far end. */
  get position(): number {
    return this.pos;
  }

  feed(prefix: Buffer): Part[] {
    if (this.body === undefined || prefix.buffer !== this.body.buffer || prefix.byteOffset !== this.body.byteOffset || prefix.length < this.pos) {
      this.pos = 0;
      this.closed = false;
    }
    this.body = prefix;
    const parts: Part[] = [];
    while (!this.closed) {
      const p = prefix.indexOf(this.delim, this.pos);
      if (p < 0 || p + this.delim.length + 2 > prefix.length) break;
      const after = p + this.delim.length;
      if (prefix[after] === 0x2d && prefix[after + 1] === 0x2d) {
        this.closed = true; // closing delimiter
        break;
      }
      const headerEnd = prefix.indexOf('\r\n\r\n', after);
      if (headerEnd < 0) break;
      const { offset, length } = partExtent(prefix.toString('latin1', after, headerEnd));
      const start = headerEnd + 4;
      if (start + length > prefix.length) break;
      parts.push({ offset, data: prefix.subarray(start, start + length) });
      this.pos = start + length;
    }
    return parts;
  }
}

/** The parts of a whole multipart/byteranges body; a part cut short is an error. */
export function parseByteranges(body: Buffer, contentType: string): Part[] {
  const reader = new ByterangesReader(contentType);
  const parts = reader.feed(body);
  const next = body.indexOf(boundaryOf(contentType), reader.position);
  if (!reader.complete && next >= 0) {
    throw new BlobRangeError(body.indexOf('\r\n\r\n', next) < 0 ? 'multipart part without a header end' : 'multipart part shorter than its Content-Range');
  }
  return parts;
}

/** Cuts the bytes of each requested extent out of the fetched parts; undefined if one is missing. */
export function extract(extents: readonly Extent[], parts: readonly Part[]): Buffer[] | undefined {
  const out: Buffer[] = [];
  for (const e of extents) {
    const part = parts.find((p) => p.offset <= e.offset && e.offset + e.length <= p.offset + p.data.length);
    if (part === undefined) return undefined;
    out.push(part.data.subarray(e.offset - part.offset, e.offset - part.offset + e.length));
  }
  return out;
}

/** Where a part's bytes go as they arrive. */
export interface PartSink {
  push(data: Buffer): void;
  end(): void;
}

/**
 * Splits a multipart/byteranges body into its parts while it arrives: a part's headers
 * name its extent to `onPart`, whose sink then gets the part's bytes (views of the pieces
 * pushed, not copies) as they come, and is ended once its last byte is in. A part
 * `onPart` has no sink for is skipped.
 */
export class ByterangesSplitter {
  private readonly delim: Buffer;
  /** Bytes between parts not yet read as a delimiter and headers. */
  private pending: Buffer = Buffer.alloc(0);
  private part: { sink: PartSink | undefined; left: number } | undefined;
  private closed = false;

  constructor(contentType: string, private readonly onPart: (extent: Extent) => PartSink | undefined) {
    this.delim = boundaryOf(contentType);
  }

  /** Whether the closing delimiter has been read. */
  get complete(): boolean {
    return this.closed;
  }

  push(data: Buffer): void {
    let rest = data;
    while (rest.length > 0 && !this.closed) {
      if (this.part !== undefined) {
        const n = Math.min(this.part.left, rest.length);
        this.part.sink?.push(rest.subarray(0, n));
        this.part.left -= n;
        rest = rest.subarray(n);
        if (this.part.left === 0) {
          this.part.sink?.end();
          this.part = undefined;
        }
        continue;
      }
      const text = this.pending.length === 0 ? rest : Buffer.concat([this.pending, rest]);
      rest = Buffer.alloc(0);
      const p = text.indexOf(this.delim);
      const after = p + this.delim.length;
      const headerEnd = p < 0 ? -1 : text.indexOf('\r\n\r\n', after);
      if (p >= 0 && text.length >= after + 2 && text[after] === 0x2d && text[after + 1] === 0x2d) {
        this.closed = true;
      } else if (headerEnd < 0) {
        // Headers are a few lines; more than this between parts is not multipart/byteranges.
        if (text.length > 16 << 10) throw new BlobRangeError('multipart answer without a part header');
        this.pending = text;
      } else {
        const extent = partExtent(text.toString('latin1', after, headerEnd));
        this.part = { sink: this.onPart(extent), left: extent.length };
        this.pending = Buffer.alloc(0);
        rest = text.subarray(headerEnd + 4);
        if (extent.length === 0) {
          this.part.sink?.end();
          this.part = undefined;
        }
      }
    }
  }
}
