// Decompression of one gzip member or one zstd frame. The member at a chunk's offset
// continues with tar padding and the next entries' headers, so chunk reads ask for a
// prefix (`need` bytes) and stop there instead of inflating the whole member.
import { createGunzip, gunzipSync, type Gunzip } from 'node:zlib';
import { Readable } from 'node:stream';
import { createRequire } from 'node:module';

// zstd-napi's low-level binding lets us stop after `need` bytes; its high-level API
// allocates whatever the frame header claims.
const zstdBinding = createRequire(import.meta.url)('zstd-napi/binding') as typeof import('zstd-napi/binding.js');

export type Compression = 'gzip' | 'zstd';

/** Compressed members up to this size inflate synchronously (gunzipPrefix). */
const SMALL_MEMBER = 64 << 10;
/** Larger members are worth inflating while they arrive (GunzipAsItComes). */
export const STREAM_MIN_BYTES = SMALL_MEMBER;
/** Output past `need` a small member may have (tar padding, the next entries' headers). */
const SMALL_MEMBER_SLACK = 16 << 10;

/**
 * The first `need` bytes that `comp` decompresses to (fewer only if the stream ends
 * first; callers check). Runs on libuv's thread pool, except for small members.
 */
export function gunzipPrefix(comp: Buffer, need: number): Promise<Buffer> {
  if (comp.length <= SMALL_MEMBER && need > 0) {
    // A small member (a small file's chunk) inflates in tens of microseconds: on this
    // thread, not through a stream and the thread pool, which cost more than the inflating
    // and queued a read's member behind a neighbour window of a hundred others. A chunk's
    // member goes on with tar padding and the next headers, hence the slack; one that
    // inflates to much more (several files packed in it) takes the stream path.
    try {
      // One output buffer that holds it all: at zlib's default 16 KiB a 64 KiB chunk came
      // out in five pieces and was copied once more into one (Buffer.concat was a third of
      // the cold phase's decoding in a CPU profile).
      const max = need + SMALL_MEMBER_SLACK;
      const out = gunzipSync(comp, { maxOutputLength: max, chunkSize: max });
      return Promise.resolve(out.length > need ? out.subarray(0, need) : out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ERR_BUFFER_TOO_LARGE') return Promise.reject(err as Error);
    }
  }
  if (need === 0) return Promise.resolve(Buffer.alloc(0));
  const g = new GunzipAsItComes(need);
  g.write(comp);
  return g.end();
}

/**
 * The first `need` bytes a gzip member inflates to, inflated on libuv's thread pool while
 * the member still arrives: write() each piece as it comes, end() once all are in. A 4 MiB
 * chunk took some 15 ms to inflate after its last byte; this way the inflating keeps up
 * with the link, and what a read waits for after the last byte is its last piece's.
 */
export class GunzipAsItComes {
  private readonly z: Gunzip;
  private readonly parts: Buffer[] = [];
  private have = 0;
  private settled = false;
  private readonly result: Promise<Buffer>;

  constructor(private readonly need: number) {
    let resolve!: (b: Buffer) => void;
    let reject!: (err: Error) => void;
    this.result = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // Bad bytes may fail the stream before anyone awaits end(); they hear of it then.
    this.result.catch(() => undefined);
    // Output buffers sized to the need (within bounds): one allocation and no concat for most chunks.
    this.z = createGunzip({ chunkSize: Math.min(4 << 20, Math.max(16 << 10, need)) });
    const finish = (err?: Error): void => {
      if (this.settled) return;
      this.settled = true;
      const parts = this.parts;
      if (err) reject(err);
      else if (parts.length === 1 && (parts[0] as Buffer).length <= need) resolve(parts[0] as Buffer);
      else resolve(Buffer.concat(parts, Math.min(this.have, need)));
      this.z.destroy();
    };
    this.z.on('data', (b: Buffer) => {
      this.parts.push(b);
      this.have += b.length;
      if (this.have >= need) finish();
    });
    this.z.on('end', () => finish());
    this.z.on('error', (err) => finish(err));
  }

  /** More of the member's bytes, in order; the buffer must not change afterwards. */
  write(piece: Buffer): void {
    if (!this.settled && piece.length > 0) this.z.write(piece);
  }

  /** All bytes are in: the inflated prefix (shorter only if the stream ended first). */
  end(): Promise<Buffer> {
    if (!this.settled) this.z.end();
    return this.result;
  }

  /** Given up (the member's request failed): the stream is freed. */
  abandon(): void {
    if (this.settled) return;
    this.settled = true;
    this.z.destroy();
  }
}

let dctxCache: InstanceType<typeof zstdBinding.DCtx> | undefined;

/**
 * The first `need` bytes that zstd frame(s) in `comp` decompress to (fewer only if the
 * input ends first; callers check). Skippable frames are passed over by zstd itself.
 */
export function zstdPrefix(comp: Buffer, need: number): Buffer {
  // One context, reused: creating one allocates its window buffers. Calls are
  // synchronous, so they never share it. Throughput equals zstd-napi's one-shot API
  // (bench/micro/decode.bench.ts), and unlike it we stop at `need`.
  dctxCache ??= new zstdBinding.DCtx();
  const dctx = dctxCache;
  dctx.reset(zstdBinding.ResetDirective.sessionOnly);
  const out = Buffer.allocUnsafe(need);
  let produced = 0;
  let input = comp;
  while (produced < need && input.length > 0) {
    const [, wrote, consumed] = dctx.decompressStream(out.subarray(produced), input);
    produced += wrote;
    input = input.subarray(consumed);
    if (wrote === 0 && consumed === 0) break;
  }
  return out.subarray(0, produced);
}

export async function decompressPrefix(compression: Compression, comp: Buffer, need: number): Promise<Buffer> {
  return compression === 'gzip' ? gunzipPrefix(comp, need) : zstdPrefix(comp, need);
}

/** Decompresses a stream of zstd frames piece by piece (a plain tar+zstd layer), on its own context. */
export async function* zstdStream(src: AsyncIterable<Buffer>, outSize = 1 << 20): AsyncGenerator<Buffer> {
  const dctx = new zstdBinding.DCtx();
  for await (const piece of src) {
    let input = piece;
    for (;;) {
      const out = Buffer.allocUnsafe(outSize);
      const [, wrote, consumed] = dctx.decompressStream(out, input);
      input = input.subarray(consumed);
      if (wrote > 0) yield out.subarray(0, wrote);
      // More output may be waiting inside zstd when the buffer came back full.
      if (input.length === 0 && wrote < outSize) break;
      if (wrote === 0 && consumed === 0) throw new Error('zstd stream makes no progress');
    }
  }
}

/**
 * What a member inflates to, piece by piece, at most `need` bytes in all (fewer only if
 * the input ends first; callers check): for chunks too large to hold in memory. The
 * consumer's pace bounds memory (zlib waits for it), and the inflating stops as soon as
 * `need` bytes are out, however far the member would go on.
 */
export async function* inflateMember(compression: Compression, comp: AsyncIterable<Buffer>, need: number, pieceBytes = 1 << 20): AsyncGenerator<Buffer> {
  let have = 0;
  if (need <= 0) return;
  if (compression === 'zstd') {
    for await (const b of zstdStream(comp, pieceBytes)) {
      const take = Math.min(b.length, need - have);
      have += take;
      yield take === b.length ? b : b.subarray(0, take);
      if (have >= need) return;
    }
    return;
  }
  const src = Readable.from(comp, { objectMode: false });
  const z = createGunzip({ chunkSize: pieceBytes });
  src.on('error', (err) => z.destroy(err));
  src.pipe(z);
  try {
    for await (const b of z as AsyncIterable<Buffer>) {
      const take = Math.min(b.length, need - have);
      have += take;
      yield take === b.length ? b : b.subarray(0, take);
      if (have >= need) return;
    }
  } finally {
    src.unpipe(z);
    src.destroy();
    z.destroy();
  }
}
