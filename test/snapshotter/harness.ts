// What the snapshotter tests share: a remote layer provider that mounts nothing and records
// its calls, a grpc-js client made from the kept .proto files (as containerd's proxy
// client speaks: the same service, fields and codes), a log sink, and a server on a Unix
// socket in a temp root that is always closed.
import { tempDir } from '../helpers/tmp.js';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DestinationStream } from 'pino';
import * as grpc from '@grpc/grpc-js';
import { Snapshotter, type RemoteLayerProvider } from '../../src/snapshotter/snapshotter.js';
import { serveSnapshotter } from '../../src/snapshotter/grpc-server.js';
import { snapshotsService } from '../../src/snapshotter/proto.js';
import { createLogger, type Logger } from '../../src/log.js';

export type Answer = { ok: true } | { ok: false; reason: string };

export class RecordingProvider implements RemoteLayerProvider {
  readonly mounts: Array<{ dir: string; labels: Record<string, string> }> = [];
  readonly unmounts: string[] = [];
  /** For each unmount: whether the directory was still there (a remote snapshot is unmounted before it is deleted). */
  readonly unmountedExisting: boolean[] = [];
  /** While set, mount() waits for it before answering. */
  gate: Promise<void> | undefined;

  constructor(private readonly answer: Answer | ((labels: Readonly<Record<string, string>>) => Answer) = { ok: true }) {}

  get mounted(): string[] {
    return this.mounts.map((m) => m.dir);
  }

  async mount(dir: string, labels: Readonly<Record<string, string>>): Promise<Answer> {
    this.mounts.push({ dir, labels: { ...labels } });
    await this.gate;
    return typeof this.answer === 'function' ? this.answer(labels) : this.answer;
  }

  async unmount(dir: string): Promise<void> {
    this.unmounts.push(dir);
    this.unmountedExisting.push(existsSync(dir));
  }
}

/** Log lines as parsed objects (pino's `level` is a number: 30 info, 40 warn, 50 error). */
export function logSink(): { log: Logger; lines: Array<Record<string, unknown>> } {
  const lines: Array<Record<string, unknown>> = [];
  const dest: DestinationStream = { write: (s: string) => void lines.push(JSON.parse(s) as Record<string, unknown>) };
  return { log: createLogger('debug', dest), lines };
}

export interface WireMount {
  type: string;
  source: string;
  target: string;
  options: string[];
}
export interface WireInfo {
  name: string;
  parent: string;
  kind: number;
  created_at: { seconds: number; nanos: number };
  updated_at: { seconds: number; nanos: number };
  labels: Record<string, string>;
}

export interface Api {
  Prepare(req: { key: string; parent?: string; labels?: Record<string, string> }): Promise<{ mounts: WireMount[] }>;
  View(req: { key: string; parent?: string; labels?: Record<string, string> }): Promise<{ mounts: WireMount[] }>;
  Mounts(req: { key: string }): Promise<{ mounts: WireMount[] }>;
  Commit(req: { name: string; key: string; labels?: Record<string, string> }): Promise<object>;
  Remove(req: { key: string }): Promise<object>;
  Stat(req: { key: string }): Promise<{ info: WireInfo }>;
  Update(req: { info: { name: string; labels?: Record<string, string> }; update_mask?: { paths: string[] } }): Promise<{ info: WireInfo }>;
  Usage(req: { key: string }): Promise<{ size: number; inodes: number }>;
  Cleanup(req: object): Promise<object>;
  /** The infos of every batch, and how many batches came. */
  List(req: { filters?: string[] }): Promise<{ infos: WireInfo[]; batches: number }>;
  close(): void;
}

const UNARY = ['Prepare', 'View', 'Mounts', 'Commit', 'Remove', 'Stat', 'Update', 'Usage', 'Cleanup'] as const;

type UnaryFn = (req: object, cb: (e: grpc.ServiceError | null, res: unknown) => void) => void;

export function client(address: string): Api {
  const Ctor = snapshotsService();
  const c = new Ctor(`unix://${address}`, grpc.credentials.createInsecure()) as unknown as grpc.Client & Record<string, UnaryFn>;
  const api: Record<string, unknown> = {};
  for (const name of UNARY) {
    api[name] = (req: object) =>
      new Promise((resolve, reject) => {
        (c[name] as UnaryFn).call(c, { snapshotter: 'stargzfs', ...req }, (e, res) => (e !== null ? reject(e) : resolve(res)));
      });
  }
  api['List'] = (req: object) =>
    new Promise((resolve, reject) => {
      const infos: WireInfo[] = [];
      let batches = 0;
      const list = c['List'] as unknown as (r: object) => grpc.ClientReadableStream<{ info: WireInfo[] }>;
      const stream = list.call(c, { snapshotter: 'stargzfs', ...req });
      stream.on('data', (d: { info: WireInfo[] }) => {
        batches++;
        infos.push(...d.info);
      });
      stream.on('end', () => resolve({ infos, batches }));
      stream.on('error', reject);
    });
  api['close'] = () => c.close();
  return api as unknown as Api;
}

/** A rejection carrying gRPC status `code` (for assert.rejects). */
export const grpcCode = (code: grpc.status) => (err: unknown): boolean => {
  if ((err as grpc.ServiceError).code !== code) throw new Error(`expected ${grpc.status[code]}, got ${grpc.status[(err as grpc.ServiceError).code]}: ${(err as Error).message}`);
  return true;
};

export interface Served {
  api: Api;
  snapshotter: Snapshotter;
  /** `<root>/snapshotter/snapshots`. */
  snaps: string;
  address: string;
}

/** The snapshotter in `<root>/snapshotter`, served on `<root>/run/snapshotter.sock`; all closed after `fn`, also when it throws. */
export async function withServer(root: string, provider: RemoteLayerProvider, fn: (s: Served) => Promise<void>, log: Logger = createLogger('silent')): Promise<void> {
  const snapshotter = await Snapshotter.open(join(root, 'snapshotter'), provider, log);
  try {
    const address = join(root, 'run', 'snapshotter.sock');
    const server = await serveSnapshotter(address, snapshotter, log);
    const api = client(address);
    try {
      await fn({ api, snapshotter, snaps: join(root, 'snapshotter', 'snapshots'), address });
    } finally {
      api.close();
      await server.close();
    }
  } finally {
    snapshotter.close();
  }
}

/** `fn` with a temp directory, removed after it. */
export async function inTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const { dir, cleanup } = tempDir('stargzfs-snapshotter-');
  try {
    await fn(dir);
  } finally {
    cleanup();
  }
}
