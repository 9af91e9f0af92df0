// A layer whose one large file is all zeros in a single chunk, as a hostile image can
// declare it: gigabytes of content in a member of a few megabytes. The member is put
// together from one deflate segment repeated (each ends in a full flush, so none refers
// to another), so the test never holds the file's bytes.
import { createHash } from 'node:crypto';
import { constants, crc32, deflateRawSync, gzipSync } from 'node:zlib';
import { emptyHeader, encodeHeader, padding } from '../../src/toc/tar.js';
import { footer } from '../../src/toc/writer.js';
import { sha256, tocMember } from './blobs.js';

const MiB = 1 << 20;

export interface ZerosLayer {
  blob: Buffer;
  tocDigest: string;
  /** sha256 of the big file's bytes. */
  bigDigest: string;
  small: Buffer;
}

/**
 * `small` (a few bytes), then `big`: `size` zero bytes (a multiple of 1 MiB) in one chunk.
 * `digestOf` overrides the digest the TOC gives for `big`; `short` makes its member
 * inflate to 1 MiB less than the TOC says.
 */
export function zerosLayer(size: number, opts: { digestOf?: string; short?: boolean } = {}): ZerosLayer {
  if (size % MiB !== 0) throw new Error('size must be a multiple of 1 MiB');
  const small = Buffer.from('still readable\n');
  const smallHeader = encodeHeader({ ...emptyHeader('small', 'reg'), size: small.length, mode: 0o644 });
  const bigHeader = encodeHeader({ ...emptyHeader('big', 'reg'), size, mode: 0o644 });
  const m0 = gzipSync(smallHeader);
  const m1 = gzipSync(Buffer.concat([small, Buffer.alloc(padding(small.length)), bigHeader]));
  const segment = deflateRawSync(Buffer.alloc(MiB), { level: 9, finishFlush: constants.Z_FULL_FLUSH });
  const zeros = Buffer.alloc(MiB);
  const h = createHash('sha256');
  let crc = 0;
  const inflated = opts.short === true ? size - MiB : size;
  for (let i = 0; i < inflated / MiB; i++) {
    crc = crc32(zeros, crc);
    h.update(zeros);
  }
  const trailer = Buffer.alloc(8);
  trailer.writeUInt32LE(crc >>> 0, 0);
  trailer.writeUInt32LE(inflated % 2 ** 32, 4);
  // The gzip header, the segments, an empty final block, CRC32 and ISIZE.
  const m2 = Buffer.concat([Buffer.from([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]), ...Array<Buffer>(inflated / MiB).fill(segment), Buffer.from([3, 0]), trailer]);
  // Short, this is the digest of what the member holds, not of `size` zeros: the size check is what must fail.
  const bigDigest = `sha256:${h.digest('hex')}`;
  const data = Buffer.concat([m0, m1, m2]);
  const toc = {
    version: 1,
    entries: [
      { name: 'small', type: 'reg', size: small.length, mode: 0o644, offset: m0.length, digest: sha256(small) },
      { name: 'big', type: 'reg', size, mode: 0o644, offset: m0.length + m1.length, digest: opts.digestOf ?? bigDigest },
    ],
  };
  const json = Buffer.from(JSON.stringify(toc));
  return { blob: Buffer.concat([data, tocMember(json), footer(data.length)]), tocDigest: sha256(json), bigDigest, small };
}
