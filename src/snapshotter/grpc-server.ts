// containerd.services.snapshots.v1.Snapshots over gRPC on a Unix socket (@grpc/grpc-js, the
// .proto files kept in ./proto/): requests decoded into the Snapshotter's calls, its errors
// into the status codes containerd maps back to its errdefs (CD/errdefs/grpc.go).
import { chmodSync, lstatSync, mkdirSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from '../log.js';
import { StargzfsError, type ErrorCode } from '../errors.js';
import { snapshotsService } from './proto.js';
import type { Info, Mount, Snapshotter } from './snapshotter.js';

/** List answers in batches of this many infos, as containerd's own service does. */
const LIST_BATCH = 100;
/** Calls still running at close (a Prepare waiting for a TOC) are cut after this long (ms). */
const CLOSE_GRACE_MS = 2_000;

const CODES: Partial<Record<ErrorCode, grpc.status>> = {
  SGZ_SNAPSHOT_NOT_FOUND: grpc.status.NOT_FOUND,
  SGZ_SNAPSHOT_EXISTS: grpc.status.ALREADY_EXISTS,
  SGZ_SNAPSHOT_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  SGZ_SNAPSHOT_ARGUMENT: grpc.status.INVALID_ARGUMENT,
};

/** The gRPC status for an error the Snapshotter threw: its own four, INTERNAL for anything else. */
export function statusOf(err: unknown): grpc.status {
  return (err instanceof StargzfsError ? CODES[err.code] : undefined) ?? grpc.status.INTERNAL;
}

interface Timestamp {
  seconds: number;
  nanos: number;
}
const timestamp = (ms: number): Timestamp => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });
const wireInfo = (i: Info): Record<string, unknown> => ({
  name: i.name, parent: i.parent, kind: i.kind, created_at: timestamp(i.created), updated_at: timestamp(i.updated), labels: i.labels,
});
const wireMounts = (ms: readonly Mount[]): { mounts: Array<Record<string, unknown>> } => ({
  mounts: ms.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options })),
});

type Request = Record<string, unknown>;
type Unary = (call: grpc.ServerUnaryCall<Request, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const strMap = (v: unknown): Record<string, string> => (v !== null && typeof v === 'object' ? (v as Record<string, string>) : {});
const strList = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : []);

/** Takes away a socket a previous process left at `address`; anything else there is not ours to delete. */
function removeStaleSocket(address: string): void {
  let st;
  try {
    st = lstatSync(address);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new Error(`${address} exists and is not a socket; not serving the snapshotter there`);
  rmSync(address);
}

/**
 * Serves `snapshotter` on the Unix socket `address` (its directory created, a stale
 * socket replaced, mode 0600: containerd runs as root, and nobody else may create
 * mounts through it). Resolves once the socket accepts calls.
 */
export async function serveSnapshotter(address: string, snapshotter: Snapshotter, log: Logger): Promise<{ close(): Promise<void> }> {
  const slog = log.child({ mod: 'snapshotter' });
  const fail = (rpc: string, err: unknown): Partial<grpc.StatusObject> => {
    const code = statusOf(err);
    const details = err instanceof Error ? err.message : String(err);
    if (code === grpc.status.INTERNAL) slog.error({ rpc, err }, 'snapshotter call failed');
    else slog.debug({ rpc, code: grpc.status[code], details }, 'snapshotter call refused');
    return { code, details };
  };
  const unary = (rpc: string, fn: (req: Request) => unknown): Unary => (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then((res) => callback(null, res), (err: unknown) => callback(fail(rpc, err)));
  };
  const empty = (fn: (req: Request) => Promise<unknown>) => async (req: Request) => {
    await fn(req);
    return {};
  };

  const server = new grpc.Server();
  server.addService(snapshotsService().service, {
    Prepare: unary('Prepare', async (r) => wireMounts(await snapshotter.prepare(str(r['key']), str(r['parent']), strMap(r['labels'])))),
    View: unary('View', async (r) => wireMounts(await snapshotter.view(str(r['key']), str(r['parent']), strMap(r['labels'])))),
    Mounts: unary('Mounts', (r) => wireMounts(snapshotter.mounts(str(r['key'])))),
    Commit: unary('Commit', empty((r) => snapshotter.commit(str(r['name']), str(r['key']), strMap(r['labels'])))),
    Remove: unary('Remove', empty((r) => snapshotter.remove(str(r['key'])))),
    Stat: unary('Stat', (r) => ({ info: wireInfo(snapshotter.stat(str(r['key']))) })),
    Update: unary('Update', (r) => {
      const info = strMap(r['info']) as Request;
      const paths = strList((r['update_mask'] as Request | null)?.['paths']);
      return { info: wireInfo(snapshotter.update({ name: str(info['name']), labels: strMap(info['labels']) }, paths)) };
    }),
    List: (call: grpc.ServerWritableStream<Request, unknown>) => {
      try {
        const infos = snapshotter.list(strList(call.request['filters']));
        for (let i = 0; i < infos.length; i += LIST_BATCH) call.write({ info: infos.slice(i, i + LIST_BATCH).map(wireInfo) });
        call.end();
      } catch (err) {
        // grpc-js sends an 'error' emitted on a server stream as the call's status.
        call.emit('error', fail('List', err));
      }
    },
    Usage: unary('Usage', (r) => snapshotter.usage(str(r['key']))),
    Cleanup: unary('Cleanup', empty(() => snapshotter.cleanup())),
  });

  mkdirSync(dirname(address), { recursive: true });
  removeStaleSocket(address);
  try {
    await new Promise<void>((resolve, reject) => {
      server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err !== null ? reject(err) : resolve()));
    });
    chmodSync(address, 0o600);
  } catch (err) {
    server.forceShutdown();
    throw err;
  }
  slog.info({ address }, 'containerd snapshotter serving');

  let closing: Promise<void> | undefined;
  return {
    close: () =>
      (closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.forceShutdown(), CLOSE_GRACE_MS);
        server.tryShutdown(() => {
          clearTimeout(timer);
          rmSync(address, { force: true });
          resolve();
        });
      })),
  };
}
