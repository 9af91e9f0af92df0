// The typed face of native/fuse_session.cc (built by node-gyp into build/Release). Only
// fs/ loads it; nothing here knows about images.
import { createRequire } from 'node:module';

/**
 * Operation codes: the kernel's (linux/fuse.h opcodes, a fixed ABI) and Exit, ours. The
 * addon exports the numbers it uses (`ops`); loading it checks they are these.
 */
export const FuseOp = {
  Lookup: 1, Forget: 2, Getattr: 3, Readlink: 5, Open: 14, Read: 15, Statfs: 17, Release: 18,
  Getxattr: 22, Listxattr: 23, Init: 26, Opendir: 27, Readdir: 28, Releasedir: 29, Access: 34,
  ForgetMulti: 42, Readdirplus: 44,
  /** (parent, name): a read-only mount never sees these; the layer store gives them meaning. */
  Create: 35, Rmdir: 11,
  /** The loop ended (unmounted, or the connection went). */
  Exit: 0x10000,
} as const;
export type FuseOp = (typeof FuseOp)[keyof typeof FuseOp];

/**
 * A request handle: a number the addon maps to the libfuse request. The first reply
 * answers it; a reply to a request answered already (by stop(), say) does nothing.
 */
export type Req = bigint;

/** [mode, nlink, uid, gid, rdev, size, blocks, mtimeSec, mtimeNsec]: ATTR_SLOTS numbers, the addon's fillAttr order. */
export type Attr = Float64Array;
export const ATTR_SLOTS = 9;

export interface FuseSession {
  /** stop(EIO) and end(), and the session detaches the mount itself. */
  unmount(): void;
  /**
   * Every request not answered yet, and every one that arrives from now on, fails with
   * `errno` at once (a release succeeds). The loop goes on (readers get `errno`, not a
   * connection abort) until the last open file is closed or end() is called; detaching
   * the mount is then the caller's job. Returns how many requests it failed.
   */
  stop(errno: number): number;
  /**
   * Ends the loop without waiting; once it has, /dev/fuse is let go (the connection
   * aborts: what the kernel still queues fails) and FuseOp.Exit arrives.
   */
  end(): void;
  /** After FuseOp.Exit: joins the loop and frees the session; fails whatever is still unanswered with EIO. */
  destroy(): void;
  setHasXattrs(ino: number, has: boolean): void;
  /**
   * No inode has xattrs: getxattr and listxattr are answered ENOSYS, which tells the
   * kernel the filesystem has no xattr support, and it asks no more (callers get EOPNOTSUPP).
   */
  setNoXattrs(none: boolean): void;
  /**
   * Parts of a file whose bytes are in chunk files this process has verified: part i is
   * [offs[i], offs[i] + lens[i]) of the file, the chunk file paths[i] from its start ('':
   * zeros). A read wholly inside mapped parts is answered by the addon from those files
   * and never reaches JavaScript (native/read_map.h).
   */
  mapFile(ino: number, size: number, offs: Float64Array, lens: Float64Array, paths: string[]): void;
  /** Forgets a file's parts (the kernel forgot the inode). */
  unmapFile(ino: number): void;
  /** The whole file is the plain file `path` (a verified chunk, or one assembled from them): read here, and a passthrough open's backing. */
  mapWhole(ino: number, size: number, path: string): void;
  /** [reads the addon answered from mapped parts, their bytes, parts mapped now] */
  nativeReads(): Float64Array;
  /** Requests handed to JavaScript and not answered yet. */
  pending(): number;
  /** Passthrough as negotiated, and the opens answered each way since the mount began (over every server of it). */
  passthroughStats(): PassthroughStats;
  /** What another process needs to go on serving this connection (the descriptors stay this session's). */
  handover(): Handover;
  replyErr(req: Req, errno: number): void;
  replyNone(req: Req): void;
  /** ino 0: a negative entry, cached for `timeout` seconds. */
  replyEntry(req: Req, ino: number, attr: Attr, timeout: number, hasXattrs: boolean): void;
  replyAttr(req: Req, ino: number, attr: Attr, timeout: number): void;
  /** directIo: reads bypass the page cache and may return less than asked (a file whose size changes). */
  replyOpen(req: Req, fh: number, keepCache: boolean, directIo: boolean): void;
  replyBuf(req: Req, data: Buffer | null): void;
  replyReadlink(req: Req, target: string): void;
  replyXattrSize(req: Req, size: number): void;
  /**
   * Returns how many entries fitted in `size` bytes. Flat, one value per argument: `names`
   * each followed by a NUL, `attrs` 9 numbers per entry (Attr's order), `hasXattrs` 0/1 per entry.
   */
  replyDir(req: Req, size: number, plus: boolean, names: string, inos: Float64Array, attrs: Float64Array, nextOffs: Float64Array, hasXattrs: Uint8Array, timeout: number): number;
  replyStatfs(req: Req, values: Float64Array): void;
}

export interface PassthroughStats {
  readonly enabled: boolean;
  /** Why it is off (empty when on). */
  readonly reason: string;
  /** Opens answered with a backing file: the kernel reads it, no read comes here. */
  readonly opens: number;
  readonly cachedOpens: number;
  /** The last errno of a backing file the kernel refused (0: none). */
  readonly backingErrno: number;
  /** Opens this server answered through the page cache, by why (the totals above are the mount's). */
  readonly cachedWhy: CachedWhy;
}

/**
 * Why an open was not passthrough: the file is not one plain file in the cache yet (not
 * fully cached, still being written, or too large to be made one); another file of the
 * inode is open through the page cache (the kernel allows one mode at a time); the kernel
 * refused the backing file (`backingErrno`); the open-file table is full; status.json.
 */
export interface CachedWhy {
  readonly notWhole: number;
  readonly openThroughPageCache: number;
  readonly backingRefused: number;
  readonly openTableFull: number;
  readonly statusFile: number;
}

/** A live connection, as the supervisor holds it and a new server adopts it. */
export interface Handover {
  /** /dev/fuse */
  readonly fd: number;
  /** The open-file table's memfd (native/open_table.h), -1 without passthrough. */
  readonly tableFd: number;
  /** Negotiated protocol minor. */
  readonly minor: number;
  readonly passthrough: boolean;
}

/**
 * Each operation's arguments after (op, req, ino), in the order the addon passes them
 * (native/fuse_session.cc, the call into JavaScript). Numbers of 64 bits (offsets, handles)
 * arrive as doubles: exact below 2^53, which file sizes and our handles stay under.
 */
interface FuseArgs {
  [FuseOp.Lookup]: [name: string];
  [FuseOp.Forget]: [nlookup: number];
  [FuseOp.Getattr]: [];
  [FuseOp.Readlink]: [];
  [FuseOp.Open]: [flags: number];
  [FuseOp.Read]: [size: number, off: number, fh: number];
  [FuseOp.Statfs]: [];
  [FuseOp.Release]: [fh: number];
  [FuseOp.Getxattr]: [name: string, size: number];
  [FuseOp.Listxattr]: [size: number];
  /** What was negotiated, for the log. */
  [FuseOp.Init]: [negotiated: string];
  [FuseOp.Opendir]: [flags: number];
  [FuseOp.Readdir]: [size: number, off: number, fh: number];
  [FuseOp.Releasedir]: [fh: number];
  [FuseOp.Access]: [mask: number];
  /** (ino, nlookup) pairs, flat. */
  [FuseOp.ForgetMulti]: [pairs: number[]];
  [FuseOp.Readdirplus]: [size: number, off: number, fh: number];
  [FuseOp.Create]: [name: string];
  [FuseOp.Rmdir]: [name: string];
  /** Why the loop ended. */
  [FuseOp.Exit]: [why: string];
}

/**
 * Operations nothing answers here: the addon answered INIT and RELEASE itself (a release
 * before its open counts change, native/fuse_session.cc says why), FORGETs take no reply,
 * Exit is ours.
 */
type Notice = typeof FuseOp.Init | typeof FuseOp.Exit | typeof FuseOp.Forget | typeof FuseOp.ForgetMulti | typeof FuseOp.Release;
/** A request to answer, as the handler receives it: (op, req, ino, ...that op's arguments). */
export type FuseRequestCall = { [K in Exclude<FuseOp, Notice>]: [op: K, req: Req, ino: number, ...args: FuseArgs[K]] }[Exclude<FuseOp, Notice>];
/** A notice (no reply): req is null. */
export type FuseNoticeCall = { [K in Notice]: [op: K, req: null, ino: number, ...args: FuseArgs[K]] }[Notice];
export type FuseCall = FuseRequestCall | FuseNoticeCall;
/** Switching on `op` (or on req being null) narrows the arguments: no casts at the boundary. */
export type FuseHandler = (...call: FuseCall) => void;

export interface SessionTuning {
  /** Largest read, bytes. */
  readonly maxRead: number;
  readonly maxBackground: number;
  /** libfuse worker threads (each only hands requests on). */
  readonly threads: number;
  /** The kernel keeps a symlink's target once read (default true); false sends every readlink here. */
  readonly cacheSymlinks?: boolean;
  /** Ask the kernel for passthrough (default true): opens of files one verified chunk file holds are read by the kernel from it. */
  readonly passthrough?: boolean;
  /** Serve this connection (mounted and initialised by another process) instead of mounting. */
  readonly adopt?: Handover;
}

/** A message on the supervisor's socket, with the descriptors it carried. */
export interface SupervisorMessage {
  readonly data: Buffer;
  readonly fds: number[];
}

interface Addon {
  ops: Record<string, number>;
  /** Numbers per node in an Attr (and in replyDir's attrs). */
  attrSlots: number;
  socketPair(): [number, number];
  sendMessage(fd: number, data: Buffer, fds: number[]): void;
  /** null: the other end closed. Throws (code ETIMEDOUT) after `timeoutMs`. */
  receiveMessage(fd: number, timeoutMs: number): SupervisorMessage | null;
  closeFd(fd: number): void;
  Session: new (mountpoint: string, options: string[], handler: FuseHandler, tuning: SessionTuning) => FuseSession;
  redirectStdio(path: string): void;
  reserveHeap(bytes: number): Promise<boolean>;
  releaseHeap(): void;
  trimHeap(): void;
  quickAck(fd: number): boolean;
}

let addon: Addon | undefined;
let heapReserved = false;

/** build/Release/stargzfs_fuse.node, from wherever this module was built to. */
function loadAddon(): Addon {
  const require = createRequire(import.meta.url);
  const tried: string[] = [];
  // dist/src/fs/ (tsc), dist/bundle/chunks/ or dist/bundle/ (the bundle).
  for (const rel of ['../../../build/Release/stargzfs_fuse.node', '../../build/Release/stargzfs_fuse.node']) {
    try {
      return checked(require(rel) as Addon);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'MODULE_NOT_FOUND') throw err;
      tried.push(rel);
    }
  }
  throw new Error(`the FUSE addon is missing (tried ${tried.join(', ')} from ${import.meta.url}): run make build`);
}

/** The addon's operation codes are FuseOp's, or nothing works: a stale build says so at once. */
function checked(a: Addon): Addon {
  for (const [name, code] of Object.entries(FuseOp)) {
    if (a.ops[name] !== code) throw new Error(`the FUSE addon numbers ${name} ${String(a.ops[name])}, not ${code}: rebuild it (make build)`);
  }
  if (a.attrSlots !== ATTR_SLOTS) throw new Error(`the FUSE addon reads ${a.attrSlots} numbers per attribute set, not ${ATTR_SLOTS}: rebuild it (make build)`);
  return a;
}

/** The addon's descriptor-passing calls, for the supervisor link (fs/supervisor-link.ts). */
export function supervisorCalls(): Pick<Addon, 'socketPair' | 'sendMessage' | 'receiveMessage' | 'closeFd'> {
  addon ??= loadAddon();
  return addon;
}

/** Points this process's stdout and stderr at `path` (appending); see native/stdio.cc. */
export function redirectStdio(path: string): void {
  addon ??= loadAddon();
  addon.redirectStdio(path);
}

/**
 * Keeps the malloc heap from shrinking, and warms `bytes` of it on a pool thread, for a
 * mount's start-up burst (native/memory.cc says why). The settings hold at once; the
 * promise says when the warming is done, false if glibc refused the settings.
 */
export function reserveHeap(bytes: number): Promise<boolean> {
  addon ??= loadAddon();
  heapReserved = true;
  return addon.reserveHeap(bytes);
}

/** Gives the heap reserveHeap kept back to the kernel and lets it shrink again; nothing if none was. */
export function releaseHeap(): void {
  if (!heapReserved || addon === undefined) return;
  heapReserved = false;
  addon.releaseHeap();
}

/** Gives free malloc memory of every arena back to the kernel now (native/memory.cc). */
export function trimHeap(): void {
  addon ??= loadAddon();
  addon.trimHeap();
}

/**
 * Makes a TCP socket ACK what it receives at once (native/socket.cc says why): called as
 * data arrives, so a server holding its last segment for our ACK (Nagle) sends it now.
 * Nothing for a socket without a descriptor of its own (TLS is handled on its TCP socket).
 */
export function ackPromptly(socket: { on(event: 'readable', fn: () => void): unknown; _handle?: { fd?: number } | null; _parent?: unknown }): boolean {
  addon ??= loadAddon();
  const a = addon;
  const tcp = (socket._parent ?? socket) as { _handle?: { fd?: number } | null };
  const fd = tcp._handle?.fd;
  if (typeof fd !== 'number' || fd < 0 || !a.quickAck(fd)) return false;
  socket.on('readable', () => {
    a.quickAck(fd);
  });
  return true;
}

/** Mounts and starts serving; requests arrive at `handler` on the main thread. */
export function openSession(mountpoint: string, options: string[], handler: FuseHandler, tuning: SessionTuning): FuseSession {
  addon ??= loadAddon();
  return new addon.Session(mountpoint, options, handler, tuning);
}
