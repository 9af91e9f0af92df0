// A blob in a local file (OCI layout) as a BlobReader.
import { open, type FileHandle } from 'node:fs/promises';
import { BlobRangeError } from '../errors.js';

export class FileBlob {
  private handle: Promise<FileHandle> | undefined;

  constructor(
    private readonly path: string,
    readonly size: number,
    private readonly digest: string,
  ) {}

  async readAt(offset: number, length: number): Promise<Buffer> {
    if (offset < 0 || length < 0 || offset + length > this.size) {
      throw new BlobRangeError(`read [${offset}, +${length}) outside the blob of ${this.size} bytes`, { layer: this.digest, offset });
    }
    this.handle ??= open(this.path, 'r');
    const fh = await this.handle;
    const buf = Buffer.allocUnsafe(length);
    let done = 0;
    while (done < length) {
      const { bytesRead } = await fh.read(buf, done, length - done, offset + done);
      if (bytesRead === 0) {
        throw new BlobRangeError(`blob file ends at ${offset + done}, before the ${this.size} bytes its descriptor says`, {
          layer: this.digest, offset: offset + done,
        });
      }
      done += bytesRead;
    }
    return buf;
  }

  async close(): Promise<void> {
    const h = this.handle;
    this.handle = undefined;
    if (h !== undefined) await (await h).close();
  }
}
