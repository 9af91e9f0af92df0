// A small tar codec: enough to read the TOC's tar entry and the writer's input (USTAR,
// PAX, GNU long names, base-256 numbers) and to write headers as Go's archive/tar does
// (USTAR when the fields fit, PAX records otherwise).
import { TarError } from '../errors.js';

export type TarType = 'reg' | 'hardlink' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo';

export interface TarHeader {
  name: string;
  type: TarType;
  /** Raw mode field; may carry S_IF type bits as Docker writes them. */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch, possibly fractional (PAX). */
  mtime: number;
  linkName: string;
  uname: string;
  gname: string;
  devMajor: number;
  devMinor: number;
  xattrs: Map<string, Buffer>;
}

export interface TarEntry {
  header: TarHeader;
  body: Buffer;
}

const BLOCK = 512;
const TYPE_BY_FLAG: Record<string, TarType> = {
  '0': 'reg', '\0': 'reg', '7': 'reg', '1': 'hardlink', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};
function entryType(flag: string): TarType {
  const type = TYPE_BY_FLAG[flag];
  if (type === undefined) throw new TarError(`unsupported tar entry type ${JSON.stringify(flag)}`);
  return type;
}
const FLAG_BY_TYPE: Record<TarType, string> = {
  reg: '0', hardlink: '1', symlink: '2', char: '3', block: '4', dir: '5', fifo: '6',
};

export function emptyHeader(name: string, type: TarType): TarHeader {
  return {
    name, type, mode: type === 'dir' ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtime: 0, linkName: '',
    uname: '', gname: '', devMajor: 0, devMinor: 0, xattrs: new Map(),
  };
}

export const padding = (size: number): number => (BLOCK - (size % BLOCK)) % BLOCK;

// ---------------------------------------------------------------- reading

function cstr(buf: Buffer, off: number, len: number): string {
  const end = buf.indexOf(0, off);
  return buf.toString('utf8', off, end < 0 || end > off + len ? off + len : end);
}

function num(buf: Buffer, off: number, len: number, field: string): number {
  const b0 = buf[off] as number;
  if (b0 & 0x80) {
    // GNU base-256: two's complement big-endian, first byte's top bit is the marker.
    let v = BigInt(b0 & 0x7f) - (b0 & 0x40 ? 0x80n : 0n);
    for (let i = 1; i < len; i++) v = (v << 8n) | BigInt(buf[off + i] as number);
    // Only a time may be before zero; a negative size made the readers step backwards.
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < (field === 'mtime' ? BigInt(Number.MIN_SAFE_INTEGER) : 0n)) {
      throw new TarError(`tar header field ${field} out of range`);
    }
    return Number(v);
  }
  const s = buf.toString('latin1', off, off + len).replace(/[\0 ]+$/, '').replace(/^[\0 ]+/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) throw new TarError(`tar header field ${field} is not octal: ${JSON.stringify(s)}`);
  return Number.parseInt(s, 8);
}

/**
 * A PAX record's number: sizes and ids are decimal integers, mtime may be negative and
 * fractional. Number() alone let `size=x` through as NaN, which readers then stepped by.
 */
function paxNumber(key: string, s: string): number {
  const ok = key === 'mtime' ? /^-?\d{1,16}(?:\.\d{1,9})?$/.test(s) : /^\d{1,16}$/.test(s);
  const n = Number(s);
  if (!ok || !Number.isSafeInteger(Math.trunc(n))) throw new TarError(`PAX record ${key} is not a number in range: ${JSON.stringify(s.slice(0, 32))}`);
  return n;
}

function checksumOk(block: Buffer): boolean {
  const stored = num(block, 148, 8, 'chksum');
  let unsigned = 0;
  for (let i = 0; i < BLOCK; i++) unsigned += i >= 148 && i < 156 ? 32 : (block[i] as number);
  return stored === unsigned;
}

function parsePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let p = 0;
  while (p < body.length) {
    const sp = body.indexOf(0x20, p);
    if (sp < 0) throw new TarError('malformed PAX record');
    const len = Number.parseInt(body.toString('latin1', p, sp), 10);
    if (!Number.isSafeInteger(len) || len <= sp - p || p + len > body.length) throw new TarError('malformed PAX record length');
    const rec = body.subarray(sp + 1, p + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq < 0) throw new TarError('malformed PAX record (no =)');
    out.set(rec.toString('utf8', 0, eq), Buffer.from(rec.subarray(eq + 1)));
    p += len;
  }
  return out;
}

/**
 * Incremental tar reader: feed bytes with push(), take complete entries from the
 * return value. Bodies are held in memory (callers that convert huge layers stream
 * them instead; see the convert issue).
 */
/** Receives a tar stream entry by entry, bodies in pieces (TarReader.feed). */
export interface TarSink {
  header(h: TarHeader): void;
  /** The next piece of the current entry's body (a view: copy what is kept). */
  body(piece: Buffer): void;
}

export class TarReader {
  private buf: Buffer = Buffer.alloc(0);
  /** Inside an entry while feeding: body bytes and padding still to come. */
  private inEntry: { remaining: number; pad: number; meta: { flag: string; parts: Buffer[] } | undefined } | undefined;
  private pax = new Map<string, Buffer>();
  private globalPax = new Map<string, Buffer>();
  private longName: string | undefined;
  private longLink: string | undefined;
  private ended = false;
  /** pushUntilHeader: chunks not yet joined to buf, and the bytes its next step needs. */
  private untilParts: Buffer[] = [];
  private untilBytes = 0;
  private untilNeed = BLOCK;
  push(chunk: Buffer): TarEntry[] {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    const out: TarEntry[] = [];
    for (;;) {
      if (this.ended || this.buf.length < BLOCK) return out;
      const block = this.buf.subarray(0, BLOCK);
      if (block.every((b) => b === 0)) {
        this.ended = true;
        return out;
      }
      if (!checksumOk(block)) throw new TarError('tar header checksum mismatch');
      const size = num(block, 124, 12, 'size');
      const total = BLOCK + size + padding(size);
      if (this.buf.length < total) return out;
      const body = Buffer.from(this.buf.subarray(BLOCK, BLOCK + size));
      this.buf = this.buf.subarray(total);
      const flag = String.fromCharCode(block[156] as number);
      if (this.meta(flag, body)) continue;
      out.push({ header: this.header(block, entryType(flag), size), body });
    }
  }

  /**
   * For a stream whose entry is too big to hold (a TOC): returns the next regular
   * header as soon as its block has arrived, and the bytes after it (the body's start);
   * the caller reads the body from there on.
   */
  pushUntilHeader(chunk: Buffer): { header: TarHeader; rest: Buffer } | undefined {
    // A long extended header arrives in many chunks: they are joined once it is all
    // there, not one by one (quadratic in its size).
    this.untilParts.push(chunk);
    this.untilBytes += chunk.length;
    if (this.buf.length + this.untilBytes < this.untilNeed) return undefined;
    this.buf = this.buf.length === 0 && this.untilParts.length === 1
      ? chunk
      : Buffer.concat([this.buf, ...this.untilParts], this.buf.length + this.untilBytes);
    this.untilParts = [];
    this.untilBytes = 0;
    for (;;) {
      this.untilNeed = BLOCK;
      if (this.buf.length < BLOCK) return undefined;
      const block = this.buf.subarray(0, BLOCK);
      if (block.every((b) => b === 0)) throw new TarError('tar stream has no entry');
      if (!checksumOk(block)) throw new TarError('tar header checksum mismatch');
      const size = num(block, 124, 12, 'size');
      const flag = String.fromCharCode(block[156] as number);
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        const total = BLOCK + size + padding(size);
        this.untilNeed = total;
        if (this.buf.length < total) return undefined;
        this.meta(flag, this.buf.subarray(BLOCK, BLOCK + size));
        this.buf = this.buf.subarray(total);
        continue;
      }
      const header = this.header(block, entryType(flag), size);
      const rest = this.buf.subarray(BLOCK);
      this.buf = Buffer.alloc(0);
      return { header, rest };
    }
  }

  /**
   * Streaming: headers and body pieces go to `sink` as the bytes arrive, so no body is
   * ever held whole (a plain layer's multi-GB file). Do not mix with push().
   */
  feed(chunk: Buffer, sink: TarSink): void {
    let pos = 0;
    while (pos < chunk.length && !this.ended) {
      const e = this.inEntry;
      if (e !== undefined) {
        if (e.remaining > 0) {
          const n = Math.min(e.remaining, chunk.length - pos);
          const piece = chunk.subarray(pos, pos + n);
          if (e.meta !== undefined) e.meta.parts.push(Buffer.from(piece));
          else sink.body(piece);
          e.remaining -= n;
          pos += n;
          continue;
        }
        const n = Math.min(e.pad, chunk.length - pos);
        e.pad -= n;
        pos += n;
        if (e.pad > 0) continue;
        if (e.meta !== undefined) this.meta(e.meta.flag, Buffer.concat(e.meta.parts));
        this.inEntry = undefined;
        continue;
      }
      const take = Math.min(BLOCK - this.buf.length, chunk.length - pos);
      this.buf = Buffer.concat([this.buf, chunk.subarray(pos, pos + take)]);
      pos += take;
      if (this.buf.length < BLOCK) return;
      const block = this.buf;
      this.buf = Buffer.alloc(0);
      if (block.every((b) => b === 0)) {
        this.ended = true;
        return;
      }
      if (!checksumOk(block)) throw new TarError('tar header checksum mismatch');
      const size = num(block, 124, 12, 'size');
      const flag = String.fromCharCode(block[156] as number);
      if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
        this.inEntry = { remaining: size, pad: padding(size), meta: { flag, parts: [] } };
        continue;
      }
      const h = this.header(block, entryType(flag), size);
      sink.header(h);
      this.inEntry = { remaining: h.size, pad: padding(h.size), meta: undefined };
    }
    // A zero-size entry whose header ended the chunk is complete already.
    if (this.inEntry !== undefined && this.inEntry.remaining === 0 && this.inEntry.pad === 0 && this.inEntry.meta === undefined) this.inEntry = undefined;
  }

  /** Throws unless the fed stream ended on an entry boundary. */
  endFeed(): void {
    if (this.ended) return;
    if (this.buf.length !== 0 || (this.inEntry !== undefined && this.inEntry.remaining > 0)) throw new TarError('truncated tar stream');
  }

  /** Applies a PAX or GNU long-name entry to the next header; false for other types. */
  private meta(flag: string, body: Buffer): boolean {
    switch (flag) {
      case 'x': for (const [k, v] of parsePax(body)) this.pax.set(k, v); return true;
      case 'g': for (const [k, v] of parsePax(body)) this.globalPax.set(k, v); return true;
      case 'L': this.longName = cstr(body, 0, body.length); return true;
      case 'K': this.longLink = cstr(body, 0, body.length); return true;
      default: return false;
    }
  }

  /** Throws unless the stream ended on a tar boundary. */
  end(): void {
    if (this.buf.length !== 0 && !this.ended) throw new TarError('truncated tar stream');
  }

  private header(block: Buffer, type: TarType, size: number): TarHeader {
    const magic = block.toString('latin1', 257, 263);
    let name = cstr(block, 0, 100);
    if (magic.startsWith('ustar')) {
      const prefix = cstr(block, 345, 155);
      if (prefix !== '' && magic === 'ustar\0') name = `${prefix}/${name}`;
    }
    const h: TarHeader = {
      name,
      type,
      mode: num(block, 100, 8, 'mode'),
      uid: num(block, 108, 8, 'uid'),
      gid: num(block, 116, 8, 'gid'),
      size,
      mtime: num(block, 136, 12, 'mtime'),
      linkName: cstr(block, 157, 100),
      uname: cstr(block, 265, 32),
      gname: cstr(block, 297, 32),
      devMajor: type === 'char' || type === 'block' ? num(block, 329, 8, 'devmajor') : 0,
      devMinor: type === 'char' || type === 'block' ? num(block, 337, 8, 'devminor') : 0,
      xattrs: new Map(),
    };
    if (this.longName !== undefined) h.name = this.longName;
    if (this.longLink !== undefined) h.linkName = this.longLink;
    const pax = new Map([...this.globalPax, ...this.pax]);
    for (const [k, v] of pax) {
      const s = v.toString('utf8');
      switch (k) {
        case 'path': h.name = s; break;
        case 'linkpath': h.linkName = s; break;
        case 'size': h.size = paxNumber(k, s); break;
        case 'uid': h.uid = paxNumber(k, s); break;
        case 'gid': h.gid = paxNumber(k, s); break;
        case 'mtime': h.mtime = paxNumber(k, s); break;
        case 'uname': h.uname = s; break;
        case 'gname': h.gname = s; break;
        default:
          if (k.startsWith('SCHILY.xattr.')) h.xattrs.set(k.slice('SCHILY.xattr.'.length), v);
      }
    }
    this.pax.clear();
    this.longName = undefined;
    this.longLink = undefined;
    return h;
  }
}

function fixChecksum(block: Buffer): void {
  block.fill(0x20, 148, 156);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += block[i] as number;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
}

export function parseTar(buf: Buffer): TarEntry[] {
  const r = new TarReader();
  const out = r.push(buf);
  r.end();
  return out;
}

// ---------------------------------------------------------------- writing

const isAscii = (s: string): boolean => /^[\x20-\x7e]*$/.test(s);

function octal(block: Buffer, off: number, len: number, v: number): void {
  block.write(v.toString(8).padStart(len - 1, '0') + '\0', off, len, 'latin1');
}

function fitsOctal(v: number, len: number): boolean {
  return Number.isInteger(v) && v >= 0 && v < 8 ** (len - 1);
}

/** Splits a long name into USTAR prefix/name at a slash, if possible. */
function splitUstar(name: string): [string, string] | undefined {
  if (!isAscii(name)) return undefined;
  if (name.length <= 100) return ['', name];
  for (let i = name.length - 1; i > 0; i--) {
    if (name[i] === '/' && i <= 155 && name.length - i - 1 <= 100 && name.length - i - 1 > 0) {
      return [name.slice(0, i), name.slice(i + 1)];
    }
  }
  return undefined;
}

function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'latin1'), body]);
}

function ustarBlock(h: TarHeader, name: string, prefix: string, flag: string, size: number): Buffer {
  const b = Buffer.alloc(BLOCK);
  b.write(name, 0, 100, 'utf8');
  octal(b, 100, 8, fitsOctal(h.mode, 8) ? h.mode : h.mode & 0o7777);
  octal(b, 108, 8, fitsOctal(h.uid, 8) ? h.uid : 0);
  octal(b, 116, 8, fitsOctal(h.gid, 8) ? h.gid : 0);
  octal(b, 124, 12, size);
  const mt = Math.round(h.mtime);
  octal(b, 136, 12, fitsOctal(mt, 12) ? mt : 0);
  b[156] = flag.charCodeAt(0);
  if (isAscii(h.linkName) && h.linkName.length <= 100) b.write(h.linkName, 157, 100, 'utf8');
  b.write('ustar\x0000', 257, 8, 'latin1');
  if (isAscii(h.uname) && h.uname.length <= 32) b.write(h.uname, 265, 32, 'utf8');
  if (isAscii(h.gname) && h.gname.length <= 32) b.write(h.gname, 297, 32, 'utf8');
  octal(b, 329, 8, fitsOctal(h.devMajor, 8) ? h.devMajor : 0);
  octal(b, 337, 8, fitsOctal(h.devMinor, 8) ? h.devMinor : 0);
  b.write(prefix, 345, 155, 'utf8');
  fixChecksum(b);
  return b;
}

/** Header block(s) for one entry: a PAX extended header first when USTAR cannot hold it. */
export function encodeHeader(h: TarHeader): Buffer {
  const records: Buffer[] = [];
  const split = splitUstar(h.name);
  if (split === undefined) records.push(paxRecord('path', Buffer.from(h.name, 'utf8')));
  if (!isAscii(h.linkName) || h.linkName.length > 100) records.push(paxRecord('linkpath', Buffer.from(h.linkName, 'utf8')));
  if (!fitsOctal(h.uid, 8)) records.push(paxRecord('uid', Buffer.from(String(h.uid))));
  if (!fitsOctal(h.gid, 8)) records.push(paxRecord('gid', Buffer.from(String(h.gid))));
  if (!fitsOctal(h.size, 12)) records.push(paxRecord('size', Buffer.from(String(h.size))));
  const mt = Math.round(h.mtime);
  if (!fitsOctal(mt, 12)) records.push(paxRecord('mtime', Buffer.from(String(mt))));
  if (!isAscii(h.uname) || h.uname.length > 32) records.push(paxRecord('uname', Buffer.from(h.uname, 'utf8')));
  if (!isAscii(h.gname) || h.gname.length > 32) records.push(paxRecord('gname', Buffer.from(h.gname, 'utf8')));
  for (const [k, v] of [...h.xattrs].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    records.push(paxRecord(`SCHILY.xattr.${k}`, v));
  }
  const flag = FLAG_BY_TYPE[h.type];
  const size = h.type === 'reg' ? h.size : 0;
  const main = ustarBlock(h, split?.[1] ?? 'pax-name', split?.[0] ?? '', flag, fitsOctal(size, 12) ? size : 0);
  if (records.length === 0) return main;
  const pax = Buffer.concat(records);
  const paxHeader = ustarBlock(emptyHeader('PaxHeaders/entry', 'reg'), 'PaxHeaders/entry', '', 'x', pax.length);
  return Buffer.concat([paxHeader, pax, Buffer.alloc(padding(pax.length)), main]);
}

export const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK);

/** A whole tar stream from entries (used by tests and the demo to make writer input). */
export function encodeTar(entries: readonly TarEntry[]): Buffer {
  const parts: Buffer[] = [];
  for (const e of entries) {
    parts.push(encodeHeader({ ...e.header, size: e.header.type === 'reg' ? e.body.length : 0 }));
    if (e.header.type === 'reg') {
      parts.push(e.body, Buffer.alloc(padding(e.body.length)));
    }
  }
  parts.push(END_OF_ARCHIVE);
  return Buffer.concat(parts);
}
