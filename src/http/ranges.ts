// Byte-range arithmetic for blob reads: coalescing extents into fewer requests and
// parsing multipart/byteranges answers. Pure functions, table-tested.

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

/** The parts of a multipart/byteranges body; each part's length comes from its Content-Range. */
export function parseByteranges(body: Buffer, contentType: string): Part[] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (boundary === undefined) throw new Error('multipart answer without a boundary');
  const delim = Buffer.from(`--${boundary}`);
  const parts: Part[] = [];
  let p = body.indexOf(delim);
  while (p >= 0) {
    p += delim.length;
    if (body[p] === 0x2d && body[p + 1] === 0x2d) break; // closing delimiter
    const headerEnd = body.indexOf('\r\n\r\n', p);
    if (headerEnd < 0) throw new Error('multipart part without a header end');
    const headers = body.toString('latin1', p, headerEnd);
    const cr = /content-range:\s*bytes (\d+)-(\d+)\/(\d+|\*)/i.exec(headers);
    if (cr === null) throw new Error('multipart part without a Content-Range');
    const offset = Number(cr[1]);
    const length = Number(cr[2]) - offset + 1;
    const start = headerEnd + 4;
    if (start + length > body.length) throw new Error('multipart part shorter than its Content-Range');
    parts.push({ offset, data: body.subarray(start, start + length) });
    p = body.indexOf(delim, start + length);
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
