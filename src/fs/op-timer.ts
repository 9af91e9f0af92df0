// Latency of each FUSE request, from its arrival in JavaScript to its reply, for
// metrics: the session's reply calls are wrapped so every operation is timed in one
// place, whichever path answers it.
import { constants } from 'node:os';
import { FuseOp, type FuseSession, type Req } from './fuse-binding.js';

/** seconds: arrival to reply; errno: 0 for a success. */
export type OpObserver = (op: string, seconds: number, errno: number) => void;

const ENOENT = constants.errno.ENOENT;
const NAMES = new Map<number, string>(Object.entries(FuseOp).map(([name, code]) => [code, name.toLowerCase()]));

export class OpTimer {
  private readonly started = new Map<Req, { op: string; t0: number }>();

  constructor(private readonly observe: OpObserver) {}

  start(req: Req, op: FuseOp): void {
    this.started.set(req, { op: NAMES.get(op) ?? String(op), t0: performance.now() });
  }

  /** The session with every reply observed. */
  wrap(s: FuseSession): FuseSession {
    const done = (req: Req, errno: number): void => {
      const t = this.started.get(req);
      if (t === undefined) return;
      this.started.delete(req);
      this.observe(t.op, (performance.now() - t.t0) / 1000, errno);
    };
    return {
      unmount: () => s.unmount(),
      stop: (errno) => s.stop(errno),
      end: () => s.end(),
      destroy: () => s.destroy(),
      setHasXattrs: (ino, has) => s.setHasXattrs(ino, has),
      setNoXattrs: (none) => s.setNoXattrs(none),
      mapFile: (ino, size, offs, lens, paths) => s.mapFile(ino, size, offs, lens, paths),
      unmapFile: (ino) => s.unmapFile(ino),
      mapWhole: (ino, size, path) => s.mapWhole(ino, size, path),
      nativeReads: () => s.nativeReads(),
      pending: () => s.pending(),
      passthroughStats: () => s.passthroughStats(),
      handover: () => s.handover(),
      replyErr: (req, errno) => { s.replyErr(req, errno); done(req, errno); },
      replyNone: (req) => { s.replyNone(req); done(req, 0); },
      // A negative entry (ino 0) is a lookup miss: counted as ENOENT.
      replyEntry: (req, ino, attr, timeout, hasXattrs) => { s.replyEntry(req, ino, attr, timeout, hasXattrs); done(req, ino === 0 ? ENOENT : 0); },
      replyAttr: (req, ino, attr, timeout) => { s.replyAttr(req, ino, attr, timeout); done(req, 0); },
      replyOpen: (req, fh, keepCache, directIo) => { s.replyOpen(req, fh, keepCache, directIo); done(req, 0); },
      replyBuf: (req, data) => { s.replyBuf(req, data); done(req, 0); },
      replyReadlink: (req, target) => { s.replyReadlink(req, target); done(req, 0); },
      replyXattrSize: (req, size) => { s.replyXattrSize(req, size); done(req, 0); },
      replyDir: (req, size, plus, names, inos, attrs, nextOffs, hasXattrs, timeout) => {
        const n = s.replyDir(req, size, plus, names, inos, attrs, nextOffs, hasXattrs, timeout);
        done(req, 0);
        return n;
      },
      replyStatfs: (req, values) => { s.replyStatfs(req, values); done(req, 0); },
    };
  }
}
