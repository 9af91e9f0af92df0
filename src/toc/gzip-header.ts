// RFC 1952 member header parsing. Footers are gzip members whose Extra field carries
// the TOC offset, so we parse the header for real instead of trusting fixed offsets.

export const FTEXT = 1;
export const FHCRC = 2;
export const FEXTRA = 4;
export const FNAME = 8;
export const FCOMMENT = 16;

export interface GzipHeader {
  /** Bytes from the member start to the first deflate byte. */
  readonly length: number;
  readonly flags: number;
  /** Raw Extra field (without XLEN), when FEXTRA is set. */
  readonly extra: Buffer | undefined;
}

/** Parses the header at `buf[at]`; returns undefined when it is not a gzip deflate header. */
export function parseGzipHeader(buf: Buffer, at = 0): GzipHeader | undefined {
  if (buf.length - at < 10) return undefined;
  if (buf[at] !== 0x1f || buf[at + 1] !== 0x8b || buf[at + 2] !== 8) return undefined;
  const flags = buf[at + 3] as number;
  if (flags & 0xe0) return undefined; // reserved bits must be zero
  let p = at + 10;
  let extra: Buffer | undefined;
  if (flags & FEXTRA) {
    if (p + 2 > buf.length) return undefined;
    const xlen = buf.readUInt16LE(p);
    p += 2;
    if (p + xlen > buf.length) return undefined;
    extra = buf.subarray(p, p + xlen);
    p += xlen;
  }
  for (const flag of [FNAME, FCOMMENT]) {
    if (flags & flag) {
      const end = buf.indexOf(0, p);
      if (end < 0) return undefined;
      p = end + 1;
    }
  }
  if (flags & FHCRC) p += 2;
  if (p > buf.length) return undefined;
  return { length: p - at, flags, extra };
}

/** RFC 1952 Extra subfields: SI1 SI2 LEN(le16) data. Undefined if the field is not well-formed. */
export function parseExtraSubfields(extra: Buffer): Map<string, Buffer> | undefined {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < extra.length) {
    if (p + 4 > extra.length) return undefined;
    const id = extra.toString('latin1', p, p + 2);
    const len = extra.readUInt16LE(p + 2);
    p += 4;
    if (p + len > extra.length) return undefined;
    out.set(id, extra.subarray(p, p + len));
    p += len;
  }
  return out;
}
