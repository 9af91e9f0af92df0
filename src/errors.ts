// Error classes with stable codes. Callers branch on `code`, never on message text;
// fs/errno.ts maps them to errno and cli/ maps them to exit codes.

export type ErrorCode =
  | 'SGZ_TOC_FORMAT'
  | 'SGZ_TOC_ENTRY'
  | 'SGZ_TOC_TOO_LARGE'
  | 'SGZ_TOC_UNVERIFIED'
  | 'SGZ_EXTERNAL_TOC'
  | 'SGZ_NOT_ESTARGZ'
  | 'SGZ_DIGEST_MISMATCH'
  | 'SGZ_DECODE'
  | 'SGZ_RANGE'
  | 'SGZ_REGISTRY'
  | 'SGZ_RANGE_UNSUPPORTED'
  | 'SGZ_READ_TIMEOUT'
  | 'SGZ_CACHE_CORRUPT'
  | 'SGZ_CLOSED'
  | 'SGZ_IMAGE'
  | 'SGZ_REFERENCE'
  | 'SGZ_NOT_FOUND'
  | 'SGZ_NOT_A_DIRECTORY'
  | 'SGZ_MOUNTPOINT_BUSY'
  | 'SGZ_SYMLINK_LOOP'
  | 'SGZ_IS_A_DIRECTORY'
  | 'SGZ_CONFIG'
  | 'SGZ_TAR'
  | 'SGZ_SNAPSHOT_NOT_FOUND'
  | 'SGZ_SNAPSHOT_EXISTS'
  | 'SGZ_SNAPSHOT_PRECONDITION'
  | 'SGZ_SNAPSHOT_ARGUMENT'
  | 'SGZ_STALE'
  | 'SGZ_SUPERVISOR';

export interface ErrorContext {
  /** Layer blob digest the problem belongs to. */
  layer?: string;
  /** Path inside the layer or image. */
  path?: string;
  /** Byte offset in the blob, when it matters. */
  offset?: number;
  /** Inode (SQLite node id). */
  inode?: number;
}

export class StargzfsError extends Error {
  readonly code: ErrorCode;
  readonly layer: string | undefined;
  readonly path: string | undefined;
  readonly offset: number | undefined;
  readonly inode: number | undefined;

  constructor(code: ErrorCode, message: string, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super(withContext(message, ctx), options);
    this.code = code;
    this.layer = ctx.layer;
    this.path = ctx.path;
    this.offset = ctx.offset;
    this.inode = ctx.inode;
  }

  override get name(): string {
    return this.constructor.name;
  }
}

// The message itself names the layer and the file so that a single log line or a
// CLI error is enough to find the problem.
function withContext(message: string, ctx: ErrorContext): string {
  const parts: string[] = [];
  if (ctx.layer !== undefined) parts.push(`layer ${shortDigest(ctx.layer)}`);
  if (ctx.path !== undefined) parts.push(`file ${JSON.stringify(ctx.path)}`);
  return parts.length > 0 ? `${parts.join(', ')}: ${message}` : message;
}

export function shortDigest(digest: string): string {
  const i = digest.indexOf(':');
  return i >= 0 && digest.length > i + 13 ? digest.slice(0, i + 13) : digest;
}

/** The blob's footer or TOC is not what the format says. */
export class TocFormatError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super('SGZ_TOC_FORMAT', message, ctx, options);
  }
}

/** One TOC entry is unusable; the rest of the layer still is. */
export class TocEntryError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('SGZ_TOC_ENTRY', message, ctx);
  }
}

export class TocTooLargeError extends StargzfsError {
  readonly limit: number;
  constructor(size: number, limit: number, ctx: ErrorContext = {}) {
    super('SGZ_TOC_TOO_LARGE', `TOC of ${size} bytes exceeds the limit of ${limit} bytes`, ctx);
    this.limit = limit;
  }
}

/** No digest to check the TOC against, and unverified layers were not allowed. */
export class UnverifiedTocError extends StargzfsError {
  constructor(ctx: ErrorContext = {}) {
    super(
      'SGZ_TOC_UNVERIFIED',
      'no TOC digest annotation (containerd.io/snapshot/stargz/toc.digest) to verify the TOC against; pass --allow-unverified to use it anyway',
      ctx,
    );
  }
}

export class ExternalTocError extends StargzfsError {
  constructor(ctx: ErrorContext = {}) {
    super('SGZ_EXTERNAL_TOC', 'eStargz with an external TOC is not supported yet', ctx);
  }
}

/** The layer has no eStargz/stargz/zstd:chunked footer: it can only be read whole. */
export class NotEstargzError extends StargzfsError {
  readonly reason: string;
  constructor(reason: string, ctx: ErrorContext = {}) {
    super('SGZ_NOT_ESTARGZ', `NOT LAZY: ${reason}`, ctx);
    this.reason = reason;
  }
}

export class DigestMismatchError extends StargzfsError {
  readonly expected: string;
  readonly actual: string;
  constructor(what: string, expected: string, actual: string, ctx: ErrorContext = {}) {
    super('SGZ_DIGEST_MISMATCH', `${what} digest mismatch: expected ${expected}, got ${actual}`, ctx);
    this.expected = expected;
    this.actual = actual;
  }
}

/** Compressed bytes that do not decompress to what the TOC promises. */
export class DecodeError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super('SGZ_DECODE', message, ctx, options);
  }
}

/** A read outside the blob, or a source that returned fewer/more bytes than asked. */
export class BlobRangeError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('SGZ_RANGE', message, ctx);
  }
}

export class RegistryError extends StargzfsError {
  readonly status: number | undefined;
  constructor(message: string, status?: number, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super('SGZ_REGISTRY', message, ctx, options);
    this.status = status;
  }
}

export class RangeUnsupportedError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('SGZ_RANGE_UNSUPPORTED', message, ctx);
  }
}

/** An on-demand read did not get its bytes within the read deadline (--read-timeout). */
export class ReadTimeoutError extends StargzfsError {
  readonly timeoutMs: number;
  constructor(message: string, timeoutMs: number, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super('SGZ_READ_TIMEOUT', message, ctx, options);
    this.timeoutMs = timeoutMs;
  }
}

export class CacheCorruptError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('SGZ_CACHE_CORRUPT', message, ctx);
  }
}

export class ClosedError extends StargzfsError {
  constructor(what: string) {
    super('SGZ_CLOSED', `${what} is closed`);
  }
}

/** The image (index, manifest, config) is malformed or has no matching platform. */
export class ImageError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}, options?: { cause?: unknown }) {
    super('SGZ_IMAGE', message, ctx, options);
  }
}

export class ImageReferenceError extends StargzfsError {
  constructor(message: string) {
    super('SGZ_REFERENCE', message);
  }
}

/** The kernel asked about an inode this image does not have (ESTALE). */
export class StaleInodeError extends StargzfsError {
  constructor(ino: number) {
    super('SGZ_STALE', `inode ${ino} is not known`, { inode: ino });
  }
}

/** The supervisor (native/supervisor.c) did not do what was asked of it. */
export class SupervisorError extends StargzfsError {
  constructor(message: string) {
    super('SGZ_SUPERVISOR', message);
  }
}

export class NotFoundError extends StargzfsError {
  constructor(ctx: ErrorContext) {
    super('SGZ_NOT_FOUND', 'no such file or directory', ctx);
  }
}

export class NotADirectoryError extends StargzfsError {
  constructor(ctx: ErrorContext) {
    super('SGZ_NOT_A_DIRECTORY', 'not a directory', ctx);
  }
}

/** A live stargzfs mount is there already: another on top would hide it, its server serving on unseen. */
export class MountpointBusyError extends StargzfsError {
  constructor(mountpoint: string) {
    super('SGZ_MOUNTPOINT_BUSY', `${mountpoint}: a stargzfs mount is served there already; \`stargzfs unmount\` it first, or \`stargzfs mount --upgrade\` it to replace its server`);
  }
}

/** More symbolic links on a path inside an image than a path may follow (ELOOP). */
export class SymlinkLoopError extends StargzfsError {
  constructor(ctx: ErrorContext) {
    super('SGZ_SYMLINK_LOOP', 'too many levels of symbolic links', ctx);
  }
}

export class IsADirectoryError extends StargzfsError {
  constructor(ctx: ErrorContext) {
    super('SGZ_IS_A_DIRECTORY', 'is a directory', ctx);
  }
}

export class ConfigError extends StargzfsError {
  readonly option: string;
  constructor(option: string, message: string) {
    super('SGZ_CONFIG', `--${option}: ${message}`);
    this.option = option;
  }
}

/** A tar stream (the writer's input, or the tar inside a TOC member) is malformed. */
export class TarError extends StargzfsError {
  constructor(message: string, ctx: ErrorContext = {}) {
    super('SGZ_TAR', message, ctx);
  }
}

/** A StargzfsError as plain data, to cross a thread boundary (a worker's postMessage). */
export interface WireError {
  readonly name: string;
  readonly message: string;
  readonly stack: string | undefined;
  /** The error's own fields: code, layer, path, offset, inode, and its class's (expected, limit …). */
  readonly fields: Record<string, unknown>;
}

const CLASSES: Record<string, typeof StargzfsError> = Object.fromEntries([
  TocFormatError, TocEntryError, TocTooLargeError, UnverifiedTocError, ExternalTocError, NotEstargzError, DigestMismatchError,
  DecodeError, BlobRangeError, RegistryError, RangeUnsupportedError, ReadTimeoutError, CacheCorruptError, ClosedError,
  ImageError, ImageReferenceError, NotFoundError, NotADirectoryError, SymlinkLoopError, IsADirectoryError, ConfigError, TarError,
].map((c) => [c.name, c as unknown as typeof StargzfsError]));

export function toWire(err: unknown): WireError {
  const e = err instanceof Error ? err : new Error(String(err));
  const fields: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(e)) if (v === undefined || ['string', 'number', 'boolean'].includes(typeof v)) fields[k] = v;
  return { name: e instanceof StargzfsError ? e.name : 'Error', message: e.message, stack: e.stack, fields };
}

/** The error again, of its own class (a class this file does not know comes back a plain Error). */
export function fromWire(w: WireError): Error {
  const cls = CLASSES[w.name] ?? (w.name === 'StargzfsError' ? StargzfsError : undefined);
  const e: Error = cls !== undefined ? (Object.create(cls.prototype) as Error) : new Error(w.message);
  Object.assign(e, w.fields);
  Object.defineProperty(e, 'message', { value: w.message, writable: true, configurable: true });
  Object.defineProperty(e, 'stack', { value: w.stack, writable: true, configurable: true });
  return e;
}

// ---- snapshotter (src/snapshotter/): containerd's snapshot errors -------------------
// The snapshotter answers them as gRPC NotFound, AlreadyExists, FailedPrecondition and
// InvalidArgument (src/snapshotter/grpc-server.ts); containerd maps those to its errdefs,
// and an AlreadyExists from Prepare means "this layer is there remotely".

export type SnapshotErrorCode = 'SGZ_SNAPSHOT_NOT_FOUND' | 'SGZ_SNAPSHOT_EXISTS' | 'SGZ_SNAPSHOT_PRECONDITION' | 'SGZ_SNAPSHOT_ARGUMENT';

export class SnapshotError extends StargzfsError {
  /** The snapshot key (or name) the call was about. */
  readonly key: string;
  constructor(code: SnapshotErrorCode, key: string, message: string) {
    super(code, message);
    this.key = key;
  }
}

/** No snapshot by that key, or a parent that is gone. */
export class SnapshotNotFoundError extends SnapshotError {
  constructor(key: string, what = 'snapshot') {
    super('SGZ_SNAPSHOT_NOT_FOUND', key, `${what} ${JSON.stringify(key)}: not found`);
  }
}

/** The key (Prepare, View) or the name (Commit) is taken; from Prepare, also "committed remotely". */
export class SnapshotExistsError extends SnapshotError {
  constructor(key: string) {
    super('SGZ_SNAPSHOT_EXISTS', key, `snapshot ${JSON.stringify(key)}: already exists`);
  }
}

/** The snapshot is of the wrong kind for the call, or has children. */
export class SnapshotPreconditionError extends SnapshotError {
  constructor(key: string, why: string) {
    super('SGZ_SNAPSHOT_PRECONDITION', key, `snapshot ${JSON.stringify(key)}: ${why}`);
  }
}

/** A request containerd's own storage would refuse: no key, a parent that is not committed, a field that cannot be updated. */
export class SnapshotArgumentError extends SnapshotError {
  constructor(key: string, why: string) {
    super('SGZ_SNAPSHOT_ARGUMENT', key, `snapshot ${JSON.stringify(key)}: ${why}`);
  }
}
// ---- end snapshotter ---------------------------------------------------------------
