// The eStargz writer (ESTARGZ.md §2, §6): a tar's entries become a blob of gzip members
// that still decompresses to a valid tar, plus the TOC and the 51-byte footer. As the
// reference writes it: every file payload and every chunk starts a member (unless
// minChunkSize lets small payloads share one, recorded as innerOffset); tar headers go
// into whichever member is open; prioritized files come first, followed by
// `.prefetch.landmark`, or `.no.prefetch.landmark` leads when nothing is prioritized.
//
// Two drivers share one encoder: writeEstargz (entries in memory, synchronous; tests and
// the demo) and writeEstargzStream (bodies read chunk by chunk, members compressed on
// the thread pool several at a time, emitted in order; `convert`). Member offsets are
// known only once the members before them are compressed, so the encoder records each
// TOC entry's member number and resolves offsets when the TOC is written.
import { createHash, type Hash } from 'node:crypto';
import { promisify } from 'node:util';
import { gzip, gzipSync } from 'node:zlib';
import { compress as zstdCompress } from 'zstd-napi';
import { cleanName, dirname, HIDDEN_ROOT_NAMES, NO_PREFETCH_LANDMARK, PREFETCH_LANDMARK, TOC_TAR_NAME } from './names.js';
import { emptyHeader, encodeHeader, END_OF_ARCHIVE, padding, type TarEntry, type TarHeader } from './tar.js';

const gzipAsync = promisify(gzip);

/** Compression of members (gzip) or frames (zstd), and how the TOC and trailer end the blob. */
interface Codec {
  readonly level: number;
  compress(data: Buffer): Buffer;
  /** On the thread pool where the codec can (gzip); zstd-napi compresses on the calling thread. */
  compressAsync(data: Buffer): Promise<Buffer>;
}

function codecFor(opts: WriterOptions): Codec {
  if (opts.format === 'zstdchunked') {
    const level = opts.compressionLevel ?? 3;
    return { level, compress: (d) => zstdCompress(d, { compressionLevel: level }), compressAsync: async (d) => zstdCompress(d, { compressionLevel: level }) };
  }
  const level = opts.compressionLevel ?? 6;
  return { level, compress: (d) => gzipSync(d, { level, windowBits: windowBits(d.length) }), compressAsync: (d) => gzipAsync(d, { level }) };
}

/**
 * The smallest deflate window that holds the whole member: the same compressed bytes,
 * and much less for zlib to set up per member (15% faster on a layer of small files).
 */
const windowBits = (n: number): number => Math.min(15, Math.max(9, Math.ceil(Math.log2(n + 262))));

/**
 * The blob's end after the data members: eStargz's TOC member and footer, or
 * zstd:chunked's skippable TOC frame and trailer. Returns the TOC JSON.
 */
function tail(enc: Encoder, out: Emitter, codec: Codec, format: LayerFormat | undefined): { json: Buffer; parts: Buffer[]; checksum?: string; position?: string } {
  if (format !== 'zstdchunked') {
    const toc = enc.tocMember(out.offsets);
    const member = codec.compress(toc.member);
    // The TOC member starts where the data ends: the footer points there.
    return { json: toc.json, parts: [member, footer(out.offset)] };
  }
  const json = enc.tocJson(out.offsets);
  const compressed = codec.compress(json);
  const at = out.offset + 8;
  return {
    json,
    parts: [Buffer.concat([skippableHeader(compressed.length), compressed]), zstdChunkedFooter(at, compressed.length, json.length)],
    checksum: `sha256:${createHash('sha256').update(compressed).digest('hex')}`,
    position: `${at}:${compressed.length}:${json.length}:1`,
  };
}

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
  /** gzip level 0–9 (default 6), or zstd level 1–19 (default 3). */
  readonly compressionLevel?: number;
  /**
   * 'estargz' (default): gzip members, the TOC in a tar entry of the last member, the
   * 51-byte footer. 'zstdchunked': zstd frames, the TOC JSON in a zstd frame inside a
   * skippable frame, and the 48-byte skippable-frame trailer (ESTARGZ.md §8.1, the
   * stargz-snapshotter flavor); the tar then has no end-of-archive blocks.
   */
  readonly format?: LayerFormat;
}

export type LayerFormat = 'estargz' | 'zstdchunked';

export interface StreamWriterOptions extends WriterOptions {
  /** Members compressed at once on the thread pool. Default 4. */
  readonly parallel?: number;
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
  /** Where `.prefetch.landmark`'s member starts: the prioritized region is [0, this). Absent without one. */
  readonly prefetchSize?: number;
  /** Prioritized paths not found in the layer (left where they were). */
  readonly missedPrioritized: readonly string[];
  /** zstd:chunked only: sha256 of the compressed TOC, and `offset:compressed:uncompressed:1`. */
  readonly manifestChecksum?: string;
  readonly manifestPosition?: string;
}

export type Sink = (chunk: Buffer) => void;
export type AsyncSink = (chunk: Buffer) => void | Promise<void>;

/** One writer input entry whose body is read on demand (a spooled layer's file). */
export interface StreamEntry {
  /** `size` is the body's length for regular files. */
  readonly header: TarHeader;
  /** Exactly `length` bytes of the body at `offset`. */
  read(offset: number, length: number): Promise<Buffer>;
}

const LANDMARK_CONTENTS = Buffer.from([0x0f]);
/** Members smaller than this are compressed at once on the main thread: a pool round trip costs more. */
const POOL_MIN = 64 << 10;

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

/** Writes one eStargz layer for `entries` (bodies in memory) to `sink`; returns the digests for the descriptor. */
export function writeEstargz(input: readonly TarEntry[], sink: Sink, opts: WriterOptions = {}): WriteResult {
  const codec = codecFor(opts);
  const out = new Emitter(sink);
  const enc = new Encoder(opts, (parts) => out.emit(codec.compress(Buffer.concat(parts))));
  const { ordered, missed } = order(input, opts.prioritized ?? [], (name) => ({ header: landmarkHeader(name), body: LANDMARK_CONTENTS }));
  for (const entry of ordered) {
    const file = enc.begin(entry.header, entry.body.length);
    if (file === undefined) continue;
    for (let off = 0; off < entry.body.length; off += enc.chunkSize) enc.chunk(file, entry.body.subarray(off, Math.min(off + enc.chunkSize, entry.body.length)));
    enc.end(file);
  }
  enc.closeMember();
  const end = tail(enc, out, codec, opts.format);
  for (const b of end.parts) out.emit(b);
  return out.result(enc, end, missed);
}

/**
 * Writes one eStargz layer whose bodies are read chunk by chunk, so no file is held
 * whole; up to `parallel` members are compressed at once and emitted in order.
 */
export async function writeEstargzStream(input: readonly StreamEntry[], sink: AsyncSink, opts: StreamWriterOptions = {}): Promise<WriteResult> {
  const codec = codecFor(opts);
  const parallel = Math.max(1, opts.parallel ?? 4);
  const out = new Emitter(sink);
  const queue: Array<Buffer | Promise<Buffer>> = [];
  const flush = async (keep: number): Promise<void> => {
    while (queue.length > keep) await out.emitAsync(await (queue.shift() as Buffer | Promise<Buffer>));
  };
  const enc = new Encoder(opts, (parts) => {
    const data = Buffer.concat(parts);
    queue.push(data.length < POOL_MIN ? codec.compress(data) : codec.compressAsync(data));
  });
  const { ordered, missed } = order(input, opts.prioritized ?? [], (name) => ({
    header: landmarkHeader(name),
    read: (off: number, len: number) => Promise.resolve(LANDMARK_CONTENTS.subarray(off, off + len)),
  }));
  for (const entry of ordered) {
    const size = entry.header.type === 'reg' ? entry.header.size : 0;
    const file = enc.begin(entry.header, size);
    if (file === undefined) continue;
    for (let off = 0; off < size; off += enc.chunkSize) {
      const len = Math.min(enc.chunkSize, size - off);
      const piece = await entry.read(off, len);
      if (piece.length !== len) throw new Error(`${entry.header.name}: body read returned ${piece.length} of ${len} bytes at ${off}`);
      enc.chunk(file, piece);
      await flush(parallel - 1);
    }
    enc.end(file);
    await flush(parallel - 1);
  }
  enc.closeMember();
  await flush(0);
  const end = tail(enc, out, codec, opts.format);
  for (const b of end.parts) await out.emitAsync(b);
  return out.result(enc, end, missed);
}

const landmarkHeader = (name: string): TarHeader => ({ ...emptyHeader(name, 'reg'), mode: 0, size: 1 });

interface OpenFile {
  readonly entry: TocJsonEntry;
  readonly header: TarHeader;
  readonly size: number;
  readonly hash: Hash;
  readonly landmark: boolean;
  offset: number;
  /** The digest of a file that is one chunk. */
  single?: string;
}

/** Tar stream, member boundaries and TOC entries; compression is the driver's. */
class Encoder {
  readonly chunkSize: number;
  private readonly minChunk: number;
  readonly toc: TocJsonEntry[] = [];
  /** TOC entry → number of the member its payload starts in. */
  private readonly memberOf = new Map<TocJsonEntry, number>();
  private readonly userNames = new Map<number, string>();
  private readonly groupNames = new Map<number, string>();
  readonly diffHash = createHash('sha256');
  uncompressed = 0;
  private open: Buffer[] = [];
  private openBytes = 0;
  private isOpen = false;
  /** Members started so far; the open one is members - 1. */
  private members = 0;

  constructor(opts: WriterOptions, private readonly onMember: (parts: Buffer[]) => void) {
    this.chunkSize = opts.chunkSize ?? 4 << 20;
    if (!Number.isSafeInteger(this.chunkSize) || this.chunkSize <= 0) throw new Error(`chunkSize must be a positive integer, got ${this.chunkSize}`);
    this.minChunk = opts.minChunkSize ?? 0;
  }

  /** Writes the entry's header and TOC entry; a regular file with a body is returned for chunk() and end(). */
  begin(header: TarHeader, bodySize: number): OpenFile | undefined {
    const h: TarHeader = { ...header, size: header.type === 'reg' ? bodySize : 0 };
    this.append(encodeHeader(h));
    const e: TocJsonEntry = { name: h.name, type: h.type };
    if (h.type === 'reg' && h.size > 0) e.size = h.size;
    const mtime = Math.round(h.mtime);
    if (mtime !== 0) e.modtime = rfc3339(mtime);
    if (h.type === 'symlink' || h.type === 'hardlink') e.linkName = h.linkName;
    if (h.mode !== 0) e.mode = h.mode;
    if (h.uid !== 0) e.uid = h.uid;
    if (h.gid !== 0) e.gid = h.gid;
    // Names are written only when they change for an id, as the reference does.
    if (h.uname !== '' && this.userNames.get(h.uid) !== h.uname) {
      e.userName = h.uname;
      this.userNames.set(h.uid, h.uname);
    }
    if (h.gname !== '' && this.groupNames.get(h.gid) !== h.gname) {
      e.groupName = h.gname;
      this.groupNames.set(h.gid, h.gname);
    }
    if (h.type === 'char' || h.type === 'block') {
      if (h.devMajor !== 0) e.devMajor = h.devMajor;
      if (h.devMinor !== 0) e.devMinor = h.devMinor;
    }
    if (h.xattrs.size > 0) {
      e.xattrs = {};
      for (const [k, v] of [...h.xattrs].sort(([a], [b]) => (a < b ? -1 : 1))) e.xattrs[k] = v.toString('base64');
    }
    this.toc.push(e);
    if (h.type !== 'reg') return undefined;
    const landmark = h.name === PREFETCH_LANDMARK || h.name === NO_PREFETCH_LANDMARK;
    return { entry: e, header: h, size: h.size, hash: createHash('sha256'), landmark, offset: 0 };
  }

  /** The file's next chunk (chunkSize bytes, or the rest). */
  chunk(f: OpenFile, piece: Buffer): void {
    const off = f.offset;
    // Offset 0 means "no payload" to readers: the first member never carries one.
    if (!this.isOpen || this.minChunk === 0 || f.landmark || this.openBytes >= this.minChunk || this.members <= 1) this.startMember();
    const c: TocJsonEntry = off === 0 ? f.entry : { name: f.header.name, type: 'chunk' };
    this.memberOf.set(c, this.members - 1);
    if (off !== 0) c.chunkOffset = off;
    if (piece.length === this.chunkSize) c.chunkSize = this.chunkSize;
    c.chunkDigest = `sha256:${createHash('sha256').update(piece).digest('hex')}`;
    // A file of one chunk has that chunk's digest: not hashed twice.
    if (off === 0 && piece.length === f.size) f.single = c.chunkDigest;
    if (this.openBytes > 0) c.innerOffset = this.openBytes;
    if (off !== 0) this.toc.push(c);
    if (f.single === undefined) f.hash.update(piece);
    f.offset += piece.length;
    this.append(piece);
  }

  end(f: OpenFile): void {
    f.entry.digest = f.single ?? `sha256:${f.hash.digest('hex')}`;
    this.append(Buffer.alloc(padding(f.size)));
    // The landmark's offset is the prefetch boundary: what follows must start a member.
    if (f.landmark) this.closeMember();
  }

  /** The `.prefetch.landmark` entry's member offset (after tocJson filled them in), if the layer has one. */
  landmarkOffset(): number | undefined {
    return this.toc.find((e) => e.name === PREFETCH_LANDMARK)?.offset;
  }

  /** The TOC JSON, with every entry's member offset filled in. */
  tocJson(memberOffsets: readonly number[]): Buffer {
    for (const [e, m] of this.memberOf) e.offset = memberOffsets[m] as number;
    return Buffer.from(JSON.stringify({ version: 1, entries: this.toc.map(ordered_) }, null, '\t'), 'utf8');
  }

  /** eStargz's TOC member, uncompressed: the TOC as a tar entry, then the end of the archive. */
  tocMember(memberOffsets: readonly number[]): { member: Buffer; json: Buffer } {
    const json = this.tocJson(memberOffsets);
    const tocHeader = { ...emptyHeader(TOC_TAR_NAME, 'reg'), mode: 0o644, size: json.length };
    this.startMember();
    this.append(encodeHeader(tocHeader));
    this.append(json);
    this.append(Buffer.alloc(padding(json.length)));
    this.append(END_OF_ARCHIVE);
    const member = Buffer.concat(this.open);
    this.open = [];
    this.isOpen = false;
    return { member, json };
  }

  private startMember(): void {
    this.closeMember();
    this.isOpen = true;
    this.members++;
  }

  private append(b: Buffer): void {
    if (b.length === 0) return;
    if (!this.isOpen) this.startMember();
    this.open.push(b);
    this.openBytes += b.length;
    this.uncompressed += b.length;
    this.diffHash.update(b);
  }

  closeMember(): void {
    if (!this.isOpen) return;
    const parts = this.open;
    this.open = [];
    this.openBytes = 0;
    this.isOpen = false;
    this.onMember(parts);
  }
}

/** Compressed members in order: their offsets, the blob's digest and size. */
class Emitter {
  offset = 0;
  /** Start offset of each member emitted, in order (the footer's entry last). */
  readonly offsets: number[] = [];
  private readonly blobHash = createHash('sha256');

  constructor(private readonly sink: AsyncSink) {}

  emit(b: Buffer): void {
    this.record(b);
    void this.sink(b);
  }

  async emitAsync(b: Buffer): Promise<void> {
    this.record(b);
    await this.sink(b);
  }

  private record(b: Buffer): void {
    this.offsets.push(this.offset);
    this.blobHash.update(b);
    this.offset += b.length;
  }

  result(enc: Encoder, toc: { json: Buffer; checksum?: string; position?: string }, missed: readonly string[]): WriteResult {
    // offsets: data members…, the TOC member (or skippable frame), the footer.
    const tocOffset = this.offsets[this.offsets.length - 2] as number;
    const prefetchSize = enc.landmarkOffset();
    return {
      ...(prefetchSize !== undefined ? { prefetchSize } : {}),
      ...(toc.checksum !== undefined ? { manifestChecksum: toc.checksum, manifestPosition: toc.position } : {}),
      tocDigest: `sha256:${createHash('sha256').update(toc.json).digest('hex')}`,
      uncompressedSize: enc.uncompressed,
      diffId: `sha256:${enc.diffHash.digest('hex')}`,
      blobDigest: `sha256:${this.blobHash.digest('hex')}`,
      blobSize: this.offset,
      tocOffset,
      missedPrioritized: missed,
    };
  }
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

/** A zstd skippable frame's 8-byte header (magic 0x184D2A50, then the payload size). */
function skippableHeader(size: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(0x184d2a50, 0);
  b.writeUInt32LE(size, 4);
  return b;
}

/** zstd:chunked's 48-byte trailer, stargz-snapshotter flavor (ESTARGZ.md §8.1). */
function zstdChunkedFooter(tocOffset: number, compressed: number, uncompressed: number): Buffer {
  const b = Buffer.alloc(48);
  skippableHeader(40).copy(b, 0);
  b.writeBigUInt64LE(BigInt(tocOffset), 8);
  b.writeBigUInt64LE(BigInt(compressed), 16);
  b.writeBigUInt64LE(BigInt(uncompressed), 24);
  b.writeBigUInt64LE(1n, 32);
  b.write('GnUlInUx', 40, 'latin1');
  return b;
}

/** The 51-byte eStargz footer (ESTARGZ.md §3.1). */
export function footer(tocOffset: number): Buffer {
  const b = Buffer.alloc(51);
  Buffer.from([0x1f, 0x8b, 0x08, 0x04, 0, 0, 0, 0, 0, 0xff, 26, 0, 0x53, 0x47, 22, 0]).copy(b, 0);
  b.write(tocOffset.toString(16).padStart(16, '0') + 'STARGZ', 16, 'latin1');
  Buffer.from([0x01, 0x00, 0x00, 0xff, 0xff]).copy(b, 38);
  return b; // CRC32 and ISIZE of the empty member are zero
}

/**
 * Entry order (the reference's sortEntries): duplicates keep the last one at its
 * position; prioritized paths move to the front with their parent directories and
 * hard-link targets first; then the landmark; then everything else in tar order.
 */
function order<T extends { readonly header: TarHeader }>(
  input: readonly T[], prioritized: readonly string[], landmark: (name: string) => T,
): { ordered: T[]; missed: string[] } {
  const last = new Map<string, number>();
  input.forEach((e, i) => last.set(cleanName(e.header.name), i));
  const entries = input.filter((e, i) => {
    const name = cleanName(e.header.name);
    return last.get(name) === i && !HIDDEN_ROOT_NAMES.has(name);
  });
  const byName = new Map(entries.map((e) => [cleanName(e.header.name), e] as const));
  const moved = new Set<T>();
  const front: T[] = [];
  // Moves an entry after its parents and hard-link target. An explicit stack, not
  // recursion: parent chains and link chains are as long as the input makes them.
  const move = (start: string, seen: Set<string>): boolean => {
    const stack: Array<{ e: T; linkDone: boolean }> = [];
    let name: string | undefined = start;
    for (;;) {
      if (name !== undefined) {
        const clean = cleanName(name);
        name = undefined;
        const e = byName.get(clean);
        // The root ends the walk up; its entry (`./`), when the tar has one, moves too.
        if (clean === '') {
          if (e !== undefined && !moved.has(e)) {
            moved.add(e);
            front.push(e);
          }
        } else if (e === undefined) {
          return false; // a missing parent or link target fails every entry waiting on it
        } else if (!seen.has(clean) && !moved.has(e)) {
          seen.add(clean);
          stack.push({ e, linkDone: false });
          name = dirname(clean);
          continue;
        }
      }
      const top = stack.pop();
      if (top === undefined) return true;
      if (!top.linkDone && top.e.header.type === 'hardlink') {
        stack.push({ e: top.e, linkDone: true });
        name = top.e.header.linkName;
        continue;
      }
      moved.add(top.e);
      front.push(top.e);
    }
  };
  const missed = prioritized.filter((p) => !move(p, new Set()));
  const head = prioritized.length > 0 ? [...front, landmark(PREFETCH_LANDMARK)] : [landmark(NO_PREFETCH_LANDMARK)];
  return { ordered: [...head, ...entries.filter((e) => !moved.has(e))], missed };
}
