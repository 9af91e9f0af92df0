// containerd's snapshots service definition, loaded at run time from the .proto files kept
// in src/snapshotter/proto/ (google/protobuf's empty, field_mask and timestamp come with
// protobufjs). The same definition serves the server and the tests' clients.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

/**
 * Where the .proto files may be, relative to this module, in the order tried:
 * - `./proto/`: the compiled tree (dist/src/snapshotter/proto, copied by `make build`), or
 *   beside the bundle's entry (dist/bundle/proto);
 * - `../proto/`: beside the bundle when this module is one of its chunks (dist/bundle/chunks/);
 * - `../../../src/snapshotter/proto/`: the sources, when only `tsc` has run (tsc copies no .proto).
 */
const CANDIDATES = ['./proto/', '../proto/', '../../../src/snapshotter/proto/'];

/** The directory holding snapshots.proto; an error naming every place looked at when there is none. */
export function protoDir(): string {
  const tried = CANDIDATES.map((p) => fileURLToPath(new URL(p, import.meta.url)));
  const found = tried.find((d) => existsSync(`${d}snapshots.proto`));
  if (found === undefined) {
    throw new Error(`containerd's snapshots.proto not found (looked in ${tried.join(', ')}); the build copies src/snapshotter/proto to dist/src/snapshotter/proto and dist/bundle/proto`);
  }
  return found;
}

/**
 * Field names as in the .proto (`created_at`, `update_mask`); int64 as JS numbers (sizes
 * stay far below 2^53); enums as their numbers; absent fields as their defaults, so that
 * an unset map is `{}` and an unset string ''.
 */
const LOADER_OPTIONS: protoLoader.Options = { keepCase: true, longs: Number, enums: Number, defaults: true, oneofs: true };

interface SnapshotsPackage {
  containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } };
}

/** The `Snapshots` service constructor: `.service` is its definition for a server; `new` makes a client. */
export function snapshotsService(): grpc.ServiceClientConstructor {
  const def = protoLoader.loadSync('snapshots.proto', { ...LOADER_OPTIONS, includeDirs: [protoDir()] });
  return (grpc.loadPackageDefinition(def) as unknown as SnapshotsPackage).containerd.services.snapshots.v1.Snapshots;
}
