// One TOC entry, decoded tolerantly (ESTARGZ.md §4.3, §11): absent fields are zero,
// unknown fields are ignored, mode loses its type bits, xattrs are base64, modtime is
// RFC 3339 (seconds for eStargz, nanoseconds for zstd:chunked). A field of the wrong
// type makes that entry unusable (TocEntryError), never the whole layer.
import { TocEntryError } from '../errors.js';

export type EntryType = 'dir' | 'reg' | 'symlink' | 'hardlink' | 'char' | 'block' | 'fifo' | 'chunk';
const TYPES: ReadonlySet<string> = new Set(['dir', 'reg', 'symlink', 'hardlink', 'char', 'block', 'fifo', 'chunk']);

export interface TocEntry {
  readonly name: string;
  readonly type: EntryType;
  readonly size: number;
  /** Seconds since the epoch; absent modtime is 0 (not Go's year 1). */
  readonly mtime: number;
  readonly mtimeNsec: number;
  readonly linkName: string;
  /** Permission bits incl. setuid/setgid/sticky only. */
  readonly perm: number;
  readonly uid: number;
  readonly gid: number;
  readonly devMajor: number;
  readonly devMinor: number;
  readonly xattrs: ReadonlyArray<readonly [string, Buffer]>;
  readonly digest: string;
  readonly offset: number;
  /** zstd:chunked flavor B: exclusive end of the compressed frame(s); 0 = compute. */
  readonly endOffset: number;
  readonly innerOffset: number;
  readonly chunkOffset: number;
  readonly chunkSize: number;
  readonly chunkDigest: string;
  /** zstd:chunked `chunkType: "zeros"`: a hole with no bytes in the blob. */
  readonly zeros: boolean;
}

// Shape only: a digest that is not hex never matches a real hash, so reads fail safely.
const isDigest = (v: string): boolean => v.length === 71 && v.startsWith('sha256:');

const NO_XATTRS: Array<[string, Buffer]> = [];

export function decodeEntry(raw: unknown, index: number, layer?: string): TocEntry {
  const bad = (field: string, why: string, path?: string): never => {
    throw new TocEntryError(`TOC entry #${index}: ${field} ${why}`, { ...(layer !== undefined ? { layer } : {}), ...(path !== undefined ? { path } : {}) });
  };
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) bad('entry', 'is not an object');
  const o = raw as Record<string, unknown>;
  const name = o['name'];
  if (typeof name !== 'string') return bad('name', 'is missing or not a string');
  if (name.includes('\0')) bad('name', 'contains a NUL byte', name);
  const type = o['type'];
  if (typeof type !== 'string' || !TYPES.has(type)) bad('type', `${JSON.stringify(type)} is not a known entry type`, name);

  const int = (key: string, max = Number.MAX_SAFE_INTEGER): number => {
    const v = o[key];
    if (v === undefined || v === null) return 0;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0 || v > max) {
      return bad(key, `must be a non-negative integer, got ${JSON.stringify(v)}`, name);
    }
    return v;
  };
  const str = (key: string): string => {
    const v = o[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') return bad(key, 'must be a string', name);
    return v;
  };
  const digestField = (key: string): string => {
    const v = str(key);
    if (v !== '' && !isDigest(v)) bad(key, `is not a sha256 digest: ${JSON.stringify(v)}`, name);
    return v;
  };

  let mtime = 0;
  let mtimeNsec = 0;
  const mt = o['modtime'];
  if (mt !== undefined && mt !== null && mt !== '') {
    if (typeof mt !== 'string') bad('modtime', 'must be a string', name);
    const t = parseRfc3339(mt as string);
    if (t === undefined) bad('modtime', `is not RFC 3339: ${JSON.stringify(mt)}`, name);
    [mtime, mtimeNsec] = t as [number, number];
  }

  let xattrs: Array<[string, Buffer]> = NO_XATTRS;
  const xa = o['xattrs'];
  if (xa !== undefined && xa !== null) {
    xattrs = [];
    if (typeof xa !== 'object' || Array.isArray(xa)) bad('xattrs', 'must be an object', name);
    for (const [k, v] of Object.entries(xa as Record<string, unknown>)) {
      if (typeof v !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(v) || v.length % 4 !== 0) {
        bad(`xattrs[${JSON.stringify(k)}]`, 'is not standard base64', name);
      }
      if (k === '' || k.includes('\0')) bad('xattrs', `has an invalid name ${JSON.stringify(k)}`, name);
      xattrs.push([k, Buffer.from(v as string, 'base64')]);
    }
  }

  const chunkType = str('chunkType');
  if (chunkType !== '' && chunkType !== 'zeros') bad('chunkType', `${JSON.stringify(chunkType)} is not known`, name);

  return {
    name,
    type: type as EntryType,
    size: int('size'),
    mtime,
    mtimeNsec,
    linkName: str('linkName'),
    perm: int('mode') & 0o7777,
    uid: int('uid', 0xffffffff),
    gid: int('gid', 0xffffffff),
    devMajor: int('devMajor', 0xffffffff),
    devMinor: int('devMinor', 0xffffffff),
    xattrs,
    digest: digestField('digest'),
    offset: int('offset'),
    endOffset: int('endOffset'),
    innerOffset: int('innerOffset'),
    chunkOffset: int('chunkOffset'),
    chunkSize: int('chunkSize'),
    chunkDigest: digestField('chunkDigest'),
    zeros: chunkType === 'zeros',
  };
}

const RFC3339 = /^(-?\d{4,})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:[Zz]|([+-])(\d\d):(\d\d))$/;

// Layers repeat a handful of mtimes thousands of times; parsing each once matters at 200k entries.
const timeCache = new Map<string, [number, number] | undefined>();

/** [seconds, nanoseconds]; Go's zero time (year 1) is treated as absent (0). */
export function parseRfc3339(s: string): [number, number] | undefined {
  // Real timestamps are short; long ones are not worth keeping, and thousands of long
  // ones of one length would all share a hash bucket (V8 hashes long strings by length).
  if (s.length > 64) return parseRfc3339Uncached(s);
  let t = timeCache.get(s);
  if (t === undefined && !timeCache.has(s)) {
    if (timeCache.size > 4096) timeCache.clear();
    t = parseRfc3339Uncached(s);
    timeCache.set(s, t);
  }
  return t;
}

function parseRfc3339Uncached(s: string): [number, number] | undefined {
  const m = RFC3339.exec(s);
  if (m === null) return undefined;
  const [, y, mo, d, h, mi, se, frac, sign, th, tm] = m;
  const date = new Date(0);
  date.setUTCFullYear(Number(y), Number(mo) - 1, Number(d));
  date.setUTCHours(Number(h), Number(mi), Number(se), 0);
  let sec = date.getTime() / 1000;
  if (!Number.isFinite(sec)) return undefined;
  if (sign !== undefined) sec -= (sign === '-' ? -1 : 1) * (Number(th) * 3600 + Number(tm) * 60);
  if (Number(y) === 1 && Number(mo) === 1 && Number(d) === 1 && sec === -62135596800) return [0, 0];
  const nsec = frac !== undefined ? Number(frac.padEnd(9, '0')) : 0;
  return [sec, nsec];
}
