// containerd.services.snapshots.v1.Snapshots over gRPC on a Unix socket (@grpc/grpc-js,
// the .proto files kept in ./proto/): requests decoded into the Snapshotter's calls, its
// errors into the status codes containerd maps to its errdefs.
import { existsSync, mkdirSync, rmSync, chmodSync } from 'node:fs';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Logger } from '../log.js';
import { StargzfsError } from '../errors.js';
import type { Info, Mount, Snapshotter } from './snapshotter.js';

/** List answers in batches of this many, as containerd's own service does. */
const LIST_BATCH = 100;

const CODES: Partial<Record<string, grpc.status>> = {
  SGZ_SNAPSHOT_NOT_FOUND: grpc.status.NOT_FOUND,
  SGZ_SNAPSHOT_EXISTS: grpc.status.ALREADY_EXISTS,
  SGZ_SNAPSHOT_PRECONDITION: grpc.status.FAILED_PRECONDITION,
  SGZ_SNAPSHOT_ARGUMENT: grpc.status.INVALID_ARGUMENT,
};

/**
 * The directory holding snapshots.proto: beside this module in the compiled tree
 * (dist/src/snapshotter/proto), or beside the bundle (dist/bundle/proto, this module
 * being one of its chunks or the entry).
 */
export function protoDir(): string {
  const tried = ['./proto/', '../proto/'].map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const found = tried.find((d) => existsSync(`${d}snapshots.proto`));
  if (found === undefined) throw new Error(`snapshots.proto not found (looked in ${tried.join(', ')}); the build copies src/snapshotter/proto there`);
  return found;
}

/** The service definition, loaded from the kept .proto files (also what tests' clients use). */
export function loadSnapshotsService(): grpc.GrpcObject {
  const dir = protoDir();
  const def = protoLoader.loadSync('snapshots.proto', { includeDirs: [dir], keepCase: true, longs: Number, enums: Number, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(def);
}

export function snapshotsServiceDefinition(): grpc.ServiceDefinition {
  const pkg = loadSnapshotsService() as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  return pkg.containerd.services.snapshots.v1.Snapshots.service;
}

interface Timestamp {
  seconds: number;
  nanos: number;
}
const timestamp = (ms: number): Timestamp => ({ seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1_000_000 });
const wireInfo = (i: Info): Record<string, unknown> => ({
  name: i.name, parent: i.parent, kind: i.kind, created_at: timestamp(i.created), updated_at: timestamp(i.updated), labels: i.labels,
});
const wireMounts = (ms: readonly Mount[]): Array<Record<string, unknown>> => ms.map((m) => ({ type: m.type, source: m.source, target: m.target ?? '', options: m.options }));

type Unary = (call: grpc.ServerUnaryCall<Record<string, unknown>, unknown>, callback: grpc.sendUnaryData<unknown>) => void;

export async function serveSnapshotter(address: string, snapshotter: Snapshotter, log: Logger): Promise<{ close(): Promise<void> }> {
  const slog = log.child({ mod: 'snapshotter-grpc' });
  const fail = (rpc: string, err: unknown): grpc.ServiceError => {
    const code = err instanceof StargzfsError ? CODES[err.code] : undefined;
    if (code === undefined) slog.error({ rpc, err }, 'snapshotter call failed');
    else slog.debug({ rpc, code: grpc.status[code], message: (err as Error).message }, 'snapshotter call refused');
    return Object.assign(new Error((err as Error).message), { code: code ?? grpc.status.INTERNAL, details: (err as Error).message, metadata: new grpc.Metadata() });
  };
  const unary = (rpc: string, fn: (req: Record<string, unknown>) => unknown): Unary => (call, callback) => {
    Promise.resolve()
      .then(() => fn(call.request))
      .then((res) => callback(null, res), (err: unknown) => callback(fail(rpc, err)));
  };
  const str = (v: unknown): string => (typeof v === 'string' ? v : '');
  const labels = (v: unknown): Record<string, string> => (v !== null && typeof v === 'object' ? (v as Record<string, string>) : {});

  const server = new grpc.Server();
  server.addService(snapshotsServiceDefinition(), {
    Prepare: unary('Prepare', async (r) => ({ mounts: wireMounts(await snapshotter.prepare(str(r['key']), str(r['parent']), labels(r['labels']))) })),
    View: unary('View', async (r) => ({ mounts: wireMounts(await snapshotter.view(str(r['key']), str(r['parent']), labels(r['labels']))) })),
    Mounts: unary('Mounts', (r) => ({ mounts: wireMounts(snapshotter.mounts(str(r['key']))) })),
    Commit: unary('Commit', async (r) => {
      await snapshotter.commit(str(r['name']), str(r['key']), labels(r['labels']));
      return {};
    }),
    Remove: unary('Remove', async (r) => {
      await snapshotter.remove(str(r['key']));
      return {};
    }),
    Stat: unary('Stat', (r) => ({ info: wireInfo(snapshotter.stat(str(r['key']))) })),
    Update: unary('Update', (r) => {
      const info = (r['info'] ?? {}) as Record<string, unknown>;
      const paths = ((r['update_mask'] as { paths?: string[] } | null)?.paths ?? []);
      return { info: wireInfo(snapshotter.update({ name: str(info['name']), labels: labels(info['labels']) }, paths)) };
    }),
    List: (call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) => {
      try {
        // Filters are left to containerd, which applies them again to what it is sent.
        const all = snapshotter.list();
        for (let i = 0; i < all.length; i += LIST_BATCH) call.write({ info: all.slice(i, i + LIST_BATCH).map(wireInfo) });
        call.end();
      } catch (err) {
        call.destroy(fail('List', err));
      }
    },
    Usage: unary('Usage', (r) => snapshotter.usage(str(r['key']))),
    Cleanup: unary('Cleanup', async () => {
      await snapshotter.cleanup();
      return {};
    }),
  });
  mkdirSync(dirname(address), { recursive: true });
  rmSync(address, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix://${address}`, grpc.ServerCredentials.createInsecure(), (err) => (err !== null ? reject(err) : resolve()));
  });
  chmodSync(address, 0o600);
  slog.info({ address }, 'containerd snapshotter serving');
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => {
          rmSync(address, { force: true });
          resolve();
        });
        // Calls still running (a Prepare waiting for a TOC) are cut after a moment.
        setTimeout(() => server.forceShutdown(), 2_000).unref();
      }),
  };
}
