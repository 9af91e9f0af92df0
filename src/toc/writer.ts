// The eStargz writer (ESTARGZ.md §2, §6): a tar's entries become a blob of gzip members
// that still decompresses to a valid tar, plus the TOC and the 51-byte footer. As the
// reference writes it: every file payload and every chunk starts a member (unless
// minChunkSize lets small payloads share one, recorded as innerOffset); tar headers go
// into whichever member is open; prioritized files come first, followed by
// `.prefetch.landmark`, or `.no.prefetch.landmark` leads when nothing is prioritized.
import { createHash } from 'node:crypto';
import { sha256 } from './digest.js';
import { gzipSync } from 'node:zlib';
import { cleanName, dirname, HIDDEN_ROOT_NAMES, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME } from './names.js';
import { emptyHeader, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry, type TarHeader } from './tar.js';

export interface WriterOptions {
  /** Uncompressed chunk size in bytes. Default 4 MiB (the reference's). */
  readonly chunkSize?: number;
  /**
   * Payloads start a new member only once the open member holds at least this many
   * uncompressed bytes (the reference counts compressed bytes; readers cannot tell).
   * 0 (default): every payload starts a member.
   */
  readonly minChunkSize?: number;
  /** Paths to move to the front, in first-access order. */
  readonly prioritized?: readonly string[];
  /** gzip level 0–9. Default 6. */
  readonly compressionLevel?: number;
}

export interface WriteResult {
  /** sha256 of the TOC JSON: the `containerd.io/snapshot/stargz/toc.digest` annotation. */
  readonly tocDigest: string;
  /** Uncompressed size of the blob: the `io.containers.estargz.uncompressed-size` annotation. */
  readonly uncompressedSize: number;
  /** sha256 of the uncompressed stream: the config's diff_id. */
  readonly diffId: string;
  readonly blobDigest: string;
  readonly blobSize: number;
  readonly tocOffset: number;
  /** Prioritized paths not found in the layer (left where they were). */
  readonly missedPrioritized: readonly string[];
}

export type Sink = (chunk: Buffer) => void;

const LANDMARK_CONTENTS = Buffer.from([0x0f]);

interface TocJsonEntry {
  name: string;
  type: string;
  size?: number;
  modtime?: string;
  linkName?: string;
  mode?: number;
  uid?: number;
  gid?: number;
  userName?: string;
  groupName?: string;
  offset?: number;
  devMajor?: number;
  devMinor?: number;
  xattrs?: Record<string, string>;
  digest?: string;
  chunkOffset?: number;
  chunkSize?: number;
  chunkDigest?: string;
  innerOffset?: number;
}

/** Writes one eStargz layer for `entries` to `sink`; returns the digests for the descriptor. */
export function writeEstargz(input: readonly TarEntry[], sink: Sink, opts: WriterOptions = {}): WriteResult {
  const chunkSize = opts.chunkSize ?? 4 << 20;
  if (!Number.isSafeInteger(chunkSize) || chunkSize <= 0) throw new Error(`chunkSize must be a positive integer, got ${chunkSize}`);
  const { ordered, missed } = order(input, opts.prioritized ?? []);
  const w = new MemberWriter(sink, opts.compressionLevel ?? 6);
  const minChunk = opts.minChunkSize ?? 0;
  const toc: TocJsonEntry[] = [];
  const userNames = new Map<number, string>();
  const groupNames = new Map<number, string>();

  for (const entry of ordered) {
    const body = entry.body;
    const h: TarHeader = { ...entry.header, size: entry.header.type === 'reg' ? body.length : 0 };
    const isLandmark = h.name === PREFETCH_LANDMARK || h.name === NO_PREFETCH_LANDMARK;
    w.append(encodeHeader(h));
    const e: TocJsonEntry = { name: h.name, type: h.type };
    if (h.type === 'reg' && h.size > 0) e.size = h.size;
    const mtime = Math.round(h.mtime);
    if (mtime !== 0) e.modtime = rfc3339(mtime);
    if (h.type === 'symlink' || h.type === 'hardlink') e.linkName = h.linkName;
    if (h.mode !== 0) e.mode = h.mode;
    if (h.uid !== 0) e.uid = h.uid;
    if (h.gid !== 0) e.gid = h.gid;
    // Names are written only when they change for an id, as the reference does.
    if (h.uname !== '' && userNames.get(h.uid) !== h.uname) {
      e.userName = h.uname;
      userNames.set(h.uid, h.uname);
    }
    if (h.gname !== '' && groupNames.get(h.gid) !== h.gname) {
      e.groupName = h.gname;
      groupNames.set(h.gid, h.gname);
    }
    if (h.type === 'char' || h.type === 'block') {
      if (h.devMajor !== 0) e.devMajor = h.devMajor;
      if (h.devMinor !== 0) e.devMinor = h.devMinor;
    }
    if (h.xattrs.size > 0) {
      e.xattrs = {};
      for (const [k, v] of [...h.xattrs].sort(([a], [b]) => (a < b ? -1 : 1))) e.xattrs[k] = v.toString('base64');
    }
    if (h.type !== 'reg') {
      toc.push(e);
      continue;
    }
    e.digest = sha256(body);
    toc.push(e);
    for (let off = 0; off < body.length; off += chunkSize) {
      const piece = body.subarray(off, Math.min(off + chunkSize, body.length));
      // Offset 0 means "no payload" to readers: the first member never carries one.
      if (minChunk === 0 || isLandmark || w.openUncompressed >= minChunk || w.memberOffset === 0) w.startMember();
      const c: TocJsonEntry = off === 0 ? e : { name: h.name, type: 'chunk' };
      c.offset = w.memberOffset;
      if (off !== 0) c.chunkOffset = off;
      if (piece.length === chunkSize) c.chunkSize = chunkSize;
      c.chunkDigest = sha256(piece);
      if (w.openUncompressed > 0) c.innerOffset = w.openUncompressed;
      if (off !== 0) toc.push(c);
      w.append(piece);
    }
    w.append(Buffer.alloc(padding(body.length)));
    // The landmark's offset is the prefetch boundary: what follows must start a member.
    if (isLandmark) w.closeMember();
  }
  w.closeMember();

  const tocOffset = w.offset;
  const json = Buffer.from(JSON.stringify({ version: 1, entries: toc.map(ordered_) }, null, '\t'), 'utf8');
  const tocHeader = { ...emptyHeader(TOC_TAR_NAME, 'reg'), mode: 0o644, size: json.length };
  w.startMember();
  w.append(encodeHeader(tocHeader));
  w.append(json);
  w.append(Buffer.alloc(padding(json.length)));
  w.append(END_OF_ARCHIVE);
  w.closeMember();
  w.emit(footer(tocOffset));
  return {
    tocDigest: sha256(json),
    uncompressedSize: w.uncompressed,
    diffId: `sha256:${w.diffHash.digest('hex')}`,
    blobDigest: `sha256:${w.blobHash.digest('hex')}`,
    blobSize: w.offset,
    tocOffset,
    missedPrioritized: missed,
  };
}

/** Field order as Go's encoding/json writes the reference's TOCEntry struct. */
const FIELD_ORDER: ReadonlyArray<keyof TocJsonEntry> = [
  'name', 'type', 'size', 'modtime', 'linkName', 'mode', 'uid', 'gid', 'userName', 'groupName', 'offset',
  'devMajor', 'devMinor', 'xattrs', 'digest', 'chunkOffset', 'chunkSize', 'chunkDigest', 'innerOffset',
];
function ordered_(e: TocJsonEntry): TocJsonEntry {
  const out: Record<string, unknown> = {};
  for (const k of FIELD_ORDER) if (e[k] !== undefined) out[k] = e[k];
  return out as unknown as TocJsonEntry;
}

function rfc3339(sec: number): string {
  const d = new Date(sec * 1000);
  const y = d.getUTCFullYear();
  const pad = (n: number, w = 2): string => String(n).padStart(w, '0');
  const year = y < 0 ? `-${pad(-y, 4)}` : pad(y, 4);
  return `${year}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}Z`;
}

/** The 51-byte eStargz footer (ESTARGZ.md §3.1). */
export function footer(tocOffset: number): Buffer {
  const b = Buffer.alloc(51);
  Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 26, 0, 0x53, 0x47, 22, 0]).copy(b, 0);
  b.write(tocOffset.toString(16).padStart(16, '0') + 'STARGZ', 16, 'latin1');
  Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]).copy(b, 38);
  return b; // CRC32 and ISIZE of the empty member are zero
}

class MemberWriter {
  offset = 0;
  memberOffset = 0;
  uncompressed = 0;
  openUncompressed = 0;
  readonly diffHash = createHash('sha256');
  readonly blobHash = createHash('sha256');
  private open: Buffer[] = [];
  private isOpen = false;

  constructor(private readonly sink: Sink, private readonly level: number) {}

  startMember(): void {
    this.closeMember();
    this.isOpen = true;
    this.memberOffset = this.offset;
  }

  append(b: Buffer): void {
    if (b.length === 0) return;
    if (!this.isOpen) this.startMember();
    this.open.push(b);
    this.openUncompressed += b.length;
    this.uncompressed += b.length;
    this.diffHash.update(b);
  }

  closeMember(): void {
    if (!this.isOpen) return;
    this.emit(gzipSync(Buffer.concat(this.open), { level: this.level }));
    this.open = [];
    this.openUncompressed = 0;
    this.isOpen = false;
  }

  emit(b: Buffer): void {
    this.blobHash.update(b);
    this.offset += b.length;
    this.sink(b);
  }
}

/**
 * Entry order (the reference's sortEntries): duplicates keep the last one at its
 * position; prioritized paths move to the front with their parent directories and
 * hard-link targets first; then the landmark; then everything else in tar order.
 */
function order(input: readonly TarEntry[], prioritized: readonly string[]): { ordered: TarEntry[]; missed: string[] } {
  const last = new Map<string, number>();
  input.forEach((e, i) => last.set(cleanName(e.header.name), i));
  const entries = input.filter((e, i) => {
    const name = cleanName(e.header.name);
    return last.get(name) === i && !HIDDEN_ROOT_NAMES.has(name);
  });
  const byName = new Map(entries.map((e) => [cleanName(e.header.name), e] as const));
  const moved = new Set<TarEntry>();
  const front: TarEntry[] = [];
  const move = (name: string, seen: Set<string>): boolean => {
    const clean = cleanName(name);
    const e = byName.get(clean);
    if (e === undefined || seen.has(clean)) return e !== undefined;
    if (moved.has(e)) return true;
    seen.add(clean);
    const parent = dirname(clean);
    if (parent !== '' && !move(parent, seen)) return false;
    if (e.header.type === 'hardlink' && !move(e.header.linkName, seen)) return false;
    moved.add(e);
    front.push(e);
    return true;
  };
  const missed = prioritized.filter((p) => !move(p, new Set()));
  const landmark = (name: string): TarEntry => ({
    header: { ...emptyHeader(name, 'reg'), mode: 0, size: 1 } satisfies TarHeader,
    body: LANDMARK_CONTENTS,
  });
  const head = prioritized.length > 0 ? [...front, landmark(PREFETCH_LANDMARK)] : [landmark(NO_PREFETCH_LANDMARK)];
  return { ordered: [...head, ...entries.filter((e) => !moved.has(e))], missed };
}
