// One source layer, streamed once: its blob hashed (digest), decompressed (gzip, zstd or
// none, told by its first bytes), hashed again (diff_id) and parsed as tar. File bodies
// go to a spool file and headers stay in memory, so the writer can put the entries in
// any order and read each body chunk by chunk; nothing is held whole.
import { createHash } from 'node:crypto';
import { open, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { DecodeError, DigestMismatchError, StargzfsError, TarError, type ErrorContext } from '../errors.js';
import { zstdStream } from '../toc/codec.js';
import { plainCompression, type PlainCompression } from '../toc/plain-layer.js';
import { TarReader, type TarHeader } from '../toc/tar.js';
import type { StreamEntry } from '../toc/writer.js';
import { readUpTo } from './files.js';

export interface SpooledLayer {
  readonly entries: readonly StreamEntry[];
  readonly compression: PlainCompression;
  /** sha256 and size of the bytes as they came (the source blob). */
  readonly blobDigest: string;
  readonly blobBytes: number;
  /** sha256 and size of the tar. */
  readonly diffId: string;
  readonly tarBytes: number;
  close(): Promise<void>;
}

/** Spool writes are batched to this size. */
const WRITE = 4 << 20;

export interface SpoolOptions {
  /** How messages name the layer (`layer 2`). */
  readonly label: string;
  /** The blob's digest, when it has one: a blob that fails to decode is checked against it, so damage is named as such. */
  readonly digest: string | undefined;
  readonly onBytes?: (blobBytes: number) => void;
}

export async function spoolLayer(source: AsyncIterable<Buffer>, spoolPath: string, ctx: ErrorContext, opts: SpoolOptions): Promise<SpooledLayer> {
  const fh = await open(spoolPath, 'w+');
  try {
    return await spool(source, fh, ctx, opts);
  } catch (err) {
    await fh.close();
    throw err;
  }
}

async function spool(source: AsyncIterable<Buffer>, fh: FileHandle, ctx: ErrorContext, opts: SpoolOptions): Promise<SpooledLayer> {
  const onBytes = opts.onBytes ?? ((): void => {});
  const blobHash = createHash('sha256');
  const diffHash = createHash('sha256');
  let blobBytes = 0;
  let tarBytes = 0;
  const it = source[Symbol.asyncIterator]();
  const first = await it.next();
  const head: Buffer = first.done === true ? Buffer.alloc(0) : first.value;
  const compression = plainCompression(head);
  let started = false;
  async function* counted(): AsyncGenerator<Buffer> {
    started = true;
    for (let n: IteratorResult<Buffer> = first; n.done !== true; n = await it.next()) {
      blobHash.update(n.value);
      blobBytes += n.value.length;
      onBytes(blobBytes);
      yield n.value;
    }
  }

  const entries: StreamEntry[] = [];
  const reader = new SpoolReader(fh);
  const pending: Buffer[] = [];
  let pendingBytes = 0;
  let spooled = 0;
  const sink = {
    header(h: TarHeader): void {
      entries.push(bodyEntry(reader, h, spooled + pendingBytes));
    },
    body(piece: Buffer): void {
      pending.push(piece);
      pendingBytes += piece.length;
    },
  };
  const flush = async (): Promise<void> => {
    if (pendingBytes === 0) return;
    const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending, pendingBytes);
    pending.length = 0;
    pendingBytes = 0;
    await fh.write(data, 0, data.length, spooled);
    spooled += data.length;
  };
  const tar = new TarReader();
  let failure: StargzfsError | undefined;
  const consume = async (plain: AsyncIterable<Buffer>): Promise<void> => {
    for await (const piece of plain) {
      diffHash.update(piece);
      tarBytes += piece.length;
      try {
        tar.feed(piece, sink);
      } catch (err) {
        throw (failure = new TarError(`${opts.label}'s tar is malformed at byte ${tarBytes}: ${(err as Error).message}`, ctx));
      }
      // Body pieces are views of `piece`, which every decoder here allocates fresh.
      if (pendingBytes >= WRITE) await flush();
    }
  };
  try {
    if (compression === 'gzip') await pipeline(Readable.from(counted()), createGunzip({ chunkSize: 1 << 20 }), consume);
    else if (compression === 'zstd') await consume(zstdStream(counted()));
    else await consume(counted());
    try {
      tar.endFeed();
    } catch (err) {
      throw (failure = new TarError(`${opts.label}'s tar is malformed: ${(err as Error).message}`, ctx));
    }
  } catch (caught) {
    const err = failure ?? caught;
    if (err instanceof StargzfsError && !(err instanceof TarError)) throw err;
    // Was it the blob? Hash what is left of it, so damage is named as a digest mismatch.
    if (opts.digest !== undefined && started) {
      for (let n = await it.next(); n.done !== true; n = await it.next()) blobHash.update(n.value);
      const actual = `sha256:${blobHash.digest('hex')}`;
      if (actual !== opts.digest) throw new DigestMismatchError(`${opts.label} blob`, opts.digest, actual, ctx);
    }
    if (err instanceof StargzfsError) throw err;
    throw new DecodeError(`${opts.label} (${compression}) does not decompress as a tar: ${(err as Error).message}`, ctx, { cause: err });
  }
  await flush();
  return {
    entries,
    compression,
    blobDigest: `sha256:${blobHash.digest('hex')}`,
    blobBytes,
    diffId: `sha256:${diffHash.digest('hex')}`,
    tarBytes,
    close: () => fh.close(),
  };
}

function bodyEntry(reader: SpoolReader, header: TarHeader, at: number): StreamEntry {
  return { header, read: (offset, length) => reader.read(at + offset, length, header.name) };
}

/** Spool reads are served from windows of this size: small files come many to one read(2). */
const WINDOW = 4 << 20;

/**
 * Reads of the spool file. The writer asks for bodies mostly in spool order, and most
 * are small: one window read serves many of them (each window is a new buffer, so the
 * views handed out stay valid).
 */
class SpoolReader {
  private window: Buffer = Buffer.alloc(0);
  private start = 0;

  constructor(private readonly fh: FileHandle) {}

  async read(pos: number, length: number, name: string): Promise<Buffer> {
    if (pos >= this.start && pos + length <= this.start + this.window.length) return this.window.subarray(pos - this.start, pos - this.start + length);
    if (length >= WINDOW / 2) return this.readExactly(pos, length, length, name);
    this.window = await this.readExactly(pos, WINDOW, length, name);
    this.start = pos;
    return this.window.subarray(0, length);
  }

  /** Up to `want` bytes at `pos`, at least `need` (the spool may end sooner than a window). */
  private async readExactly(pos: number, want: number, need: number, name: string): Promise<Buffer> {
    const buf = await readUpTo(this.fh, pos, want);
    if (buf.length < need) throw new Error(`spool file ends before ${name}'s body does`);
    return buf;
  }
}
