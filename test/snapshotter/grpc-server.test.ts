// containerd's snapshots API as containerd's proxy client speaks it: a grpc-js client made
// from the same .proto files, against the server on a Unix socket with real SQLite
// metadata and real directories. All ten RPCs, their error codes, the mounts of each kind,
// the remote-snapshot handshake, and metadata that outlives the process. The remote
// layer provider here records calls and mounts nothing (the real one, the service, is
// exercised with containerd in test/e2e/containerd.test.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Snapshotter, type RemoteLayerProvider } from '../../src/snapshotter/snapshotter.js';
import { loadSnapshotsService, serveSnapshotter } from '../../src/snapshotter/grpc-server.js';
import { createLogger } from '../../src/log.js';
import { tempDir } from '../helpers/tmp.js';

const log = createLogger('silent');

class RecordingProvider implements RemoteLayerProvider {
  readonly mounted: string[] = [];
  readonly unmounted: string[] = [];
  constructor(private readonly answer: { ok: true } | { ok: false; reason: string }) {}
  async mount(dir: string): Promise<{ ok: true } | { ok: false; reason: string }> {
    if (this.answer.ok) this.mounted.push(dir);
    return this.answer;
  }
  async unmount(dir: string): Promise<void> {
    this.unmounted.push(dir);
  }
}

type Call = (req: object) => Promise<Record<string, unknown>>;
interface Api {
  Prepare: Call; View: Call; Mounts: Call; Commit: Call; Remove: Call; Stat: Call; Update: Call; Usage: Call; Cleanup: Call;
  List(req: object): Promise<Array<Record<string, unknown>>>;
  close(): void;
}

function client(address: string): Api {
  const pkg = loadSnapshotsService() as unknown as { containerd: { services: { snapshots: { v1: { Snapshots: grpc.ServiceClientConstructor } } } } };
  const c = new pkg.containerd.services.snapshots.v1.Snapshots(`unix://${address}`, grpc.credentials.createInsecure()) as unknown as Record<string, (...a: unknown[]) => unknown>;
  const unary = (name: string): Call => (req) =>
    new Promise((resolve, reject) => {
      (c[name] as (r: object, cb: (e: grpc.ServiceError | null, res: Record<string, unknown>) => void) => void).call(c, { snapshotter: 'stargzfs', ...req }, (e, res) => (e !== null ? reject(e) : resolve(res)));
    });
  const api: Record<string, unknown> = {};
  for (const n of ['Prepare', 'View', 'Mounts', 'Commit', 'Remove', 'Stat', 'Update', 'Usage', 'Cleanup']) api[n] = unary(n);
  api['List'] = (req: object) =>
    new Promise((resolve, reject) => {
      const infos: Array<Record<string, unknown>> = [];
      const stream = (c['List'] as (r: object) => grpc.ClientReadableStream<{ info: Array<Record<string, unknown>> }>).call(c, { snapshotter: 'stargzfs', ...req });
      stream.on('data', (d: { info: Array<Record<string, unknown>> }) => infos.push(...d.info));
      stream.on('end', () => resolve(infos));
      stream.on('error', reject);
    });
  api['close'] = () => (c as unknown as grpc.Client).close();
  return api as unknown as Api;
}

async function withServer(root: string, provider: RemoteLayerProvider, fn: (api: Api, s: Snapshotter) => Promise<void>): Promise<void> {
  const s = await Snapshotter.open(join(root, 'snapshotter'), provider, log);
  const address = join(root, 'snap.sock');
  const server = await serveSnapshotter(address, s, log);
  const api = client(address);
  try {
    await fn(api, s);
  } finally {
    api.close();
    await server.close();
    s.close();
  }
}

const code = (c: grpc.status) => (err: unknown): boolean => (err as grpc.ServiceError).code === c;

describe('snapshotter gRPC API (containerd.services.snapshots.v1.Snapshots)', () => {
  it('prepare, mounts, commit, view, stat, update, list, usage, remove, cleanup: containerd semantics and error codes', async () => {
    const { dir, cleanup } = tempDir();
    try {
      await withServer(dir, new RecordingProvider({ ok: false, reason: 'unused' }), async (api) => {
        const snaps = join(dir, 'snapshotter', 'snapshots');
        // A base layer: an active snapshot mounts as a bind of its own directory.
        const p1 = await api.Prepare({ key: 'default/1/extract-a', parent: '', labels: { a: '1' } });
        const m1 = (p1['mounts'] as Array<{ type: string; source: string; options: string[] }>)[0];
        assert.equal(m1?.type, 'bind');
        assert.deepEqual(m1?.options, ['rw', 'rbind']);
        writeFileSync(join(m1?.source as string, 'file'), 'x'.repeat(10_000));
        await assert.rejects(api.Prepare({ key: 'default/1/extract-a', parent: '' }), code(grpc.status.ALREADY_EXISTS));
        await assert.rejects(api.Prepare({ key: 'k', parent: 'nope' }), code(grpc.status.NOT_FOUND));
        await assert.rejects(api.Prepare({ key: 'k2', parent: 'default/1/extract-a' }), code(grpc.status.INVALID_ARGUMENT));
        const usage = await api.Usage({ key: 'default/1/extract-a' });
        assert.ok(Number(usage['size']) >= 10_000 && Number(usage['inodes']) === 2, JSON.stringify(usage));

        await api.Commit({ name: 'layer-1', key: 'default/1/extract-a', labels: {} });
        await assert.rejects(api.Stat({ key: 'default/1/extract-a' }), code(grpc.status.NOT_FOUND));
        await assert.rejects(api.Commit({ name: 'layer-1', key: 'layer-1' }), code(grpc.status.FAILED_PRECONDITION));
        await assert.rejects(api.Mounts({ key: 'layer-1' }), code(grpc.status.FAILED_PRECONDITION));
        const st = (await api.Stat({ key: 'layer-1' }))['info'] as { name: string; kind: number; labels: Record<string, string>; created_at: { seconds: number } };
        assert.equal(st.kind, 3);
        assert.deepEqual(st.labels, { a: '1' });
        assert.ok(Math.abs(st.created_at.seconds - Date.now() / 1000) < 60);
        assert.ok(Number((await api.Usage({ key: 'layer-1' }))['size']) >= 10_000);

        // Second layer, then a container on top: overlay with lowerdirs nearest first.
        await api.Prepare({ key: 'default/2/extract-b', parent: 'layer-1' });
        await assert.rejects(api.Prepare({ key: 'x', parent: 'default/2/extract-b' }), code(grpc.status.INVALID_ARGUMENT));
        await api.Commit({ name: 'layer-2', key: 'default/2/extract-b', labels: { b: '2' } });
        await assert.rejects(api.Commit({ name: 'layer-2', key: 'nope' }), code(grpc.status.NOT_FOUND));
        const ctr = (await api.Prepare({ key: 'default/3/ctr', parent: 'layer-2' }))['mounts'] as Array<{ type: string; options: string[] }>;
        assert.equal(ctr[0]?.type, 'overlay');
        const opts = ctr[0]?.options ?? [];
        const lower = opts.find((o) => o.startsWith('lowerdir='))?.slice(9).split(':') ?? [];
        assert.deepEqual(lower.map((d) => d.split('/').at(-2)), ['2', '1']);
        assert.ok(opts.some((o) => o.startsWith('upperdir=')) && opts.some((o) => o.startsWith('workdir=')));
        assert.deepEqual((await api.Mounts({ key: 'default/3/ctr' }))['mounts'], ctr);

        // Views: one parent → read-only bind; two → overlay with lowerdir only; none → ro bind.
        const v1 = (await api.View({ key: 'v1', parent: 'layer-1' }))['mounts'] as Array<{ type: string; options: string[] }>;
        assert.equal(v1[0]?.type, 'bind');
        assert.deepEqual(v1[0]?.options, ['ro', 'rbind']);
        const v2 = (await api.View({ key: 'v2', parent: 'layer-2' }))['mounts'] as Array<{ type: string; options: string[] }>;
        assert.equal(v2[0]?.type, 'overlay');
        assert.equal(v2[0]?.options.length, 1);
        assert.match(v2[0]?.options[0] ?? '', /^lowerdir=/);
        const v0 = (await api.View({ key: 'v0', parent: '' }))['mounts'] as Array<{ options: string[] }>;
        assert.deepEqual(v0[0]?.options, ['ro', 'rbind']);
        assert.equal(((await api.Stat({ key: 'v1' }))['info'] as { kind: number }).kind, 1);

        // Update: labels only, by path.
        const upd = await api.Update({ info: { name: 'layer-2', labels: { c: '3' } }, update_mask: { paths: ['labels.c', 'labels.b'] } });
        assert.deepEqual((upd['info'] as { labels: object }).labels, { c: '3' });
        const all = await api.Update({ info: { name: 'layer-2', labels: { d: '4' } }, update_mask: { paths: ['labels'] } });
        assert.deepEqual((all['info'] as { labels: object }).labels, { d: '4' });
        await assert.rejects(api.Update({ info: { name: 'layer-2', labels: {} }, update_mask: { paths: ['parent'] } }), code(grpc.status.INVALID_ARGUMENT));
        await assert.rejects(api.Update({ info: { name: 'nope', labels: {} }, update_mask: { paths: ['labels'] } }), code(grpc.status.NOT_FOUND));

        const listed = await api.List({});
        assert.deepEqual(listed.map((i) => i['name']).sort(), ['default/3/ctr', 'layer-1', 'layer-2', 'v0', 'v1', 'v2']);
        assert.equal(listed.find((i) => i['name'] === 'layer-2')?.['parent'], 'layer-1');

        // Remove: children first; the directory goes with the snapshot; Cleanup takes orphans.
        await assert.rejects(api.Remove({ key: 'layer-1' }), code(grpc.status.FAILED_PRECONDITION));
        await assert.rejects(api.Remove({ key: 'nope' }), code(grpc.status.NOT_FOUND));
        for (const k of ['default/3/ctr', 'v1', 'v2', 'v0', 'layer-2']) await api.Remove({ key: k });
        await api.Remove({ key: 'layer-1' });
        assert.deepEqual(readdirSync(snaps), []);
        mkdirSync(join(snaps, '999', 'fs'), { recursive: true });
        await api.Cleanup({});
        assert.equal(existsSync(join(snaps, '999')), false);
      });
    } finally {
      cleanup();
    }
  });

  it('remote snapshots: Prepare with the target label commits the mounted layer and answers AlreadyExists; metadata and mounts come back after a restart', async () => {
    const { dir, cleanup } = tempDir();
    try {
      const labels = { 'containerd.io/snapshot.ref': 'sha256:chain1', 'containerd.io/snapshot/remote/stargz.reference': 'r/i:t', 'containerd.io/snapshot/remote/stargz.digest': 'sha256:l1' };
      const remote = new RecordingProvider({ ok: true });
      await withServer(dir, remote, async (api) => {
        await assert.rejects(api.Prepare({ key: 'default/1/extract-1 sha256:chain1', parent: '', labels }), code(grpc.status.ALREADY_EXISTS));
        assert.equal(remote.mounted.length, 1);
        const info = (await api.Stat({ key: 'sha256:chain1' }))['info'] as { kind: number; parent: string; labels: Record<string, string> };
        assert.equal(info.kind, 3);
        assert.equal(info.parent, '');
        assert.equal(info.labels['containerd.io/snapshot.ref'], 'sha256:chain1');
        assert.equal(info.labels['containerd.io/snapshot/remote'], 'remote snapshot');
        await assert.rejects(api.Stat({ key: 'default/1/extract-1 sha256:chain1' }), code(grpc.status.NOT_FOUND));
        // A second pull of the same layer: AlreadyExists at once, nothing mounted again.
        await assert.rejects(api.Prepare({ key: 'default/2/extract-2 sha256:chain1', parent: '', labels }), code(grpc.status.ALREADY_EXISTS));
        assert.equal(remote.mounted.length, 1);
        assert.equal(Number((await api.Usage({ key: 'sha256:chain1' }))['size']), 0);
      });
      // Restart: the remote snapshot is mounted again before the socket answers.
      const again = new RecordingProvider({ ok: true });
      const s = await Snapshotter.open(join(dir, 'snapshotter'), again, log);
      try {
        assert.deepEqual(await s.restore(), { mounted: 1, failed: 0 });
        assert.deepEqual(again.mounted, remote.mounted);
        assert.equal(s.stat('sha256:chain1').kind, 3);
        await s.remove('sha256:chain1');
        assert.deepEqual(again.unmounted, remote.mounted);
      } finally {
        s.close();
      }
      // A layer the provider cannot mount lazily: a normal snapshot containerd fills.
      await withServer(dir, new RecordingProvider({ ok: false, reason: 'plain gzip layer' }), async (api) => {
        const res = await api.Prepare({ key: 'default/3/extract-3 sha256:chain1', parent: '', labels });
        assert.equal((res['mounts'] as Array<{ type: string }>)[0]?.type, 'bind');
        assert.equal(((await api.Stat({ key: 'default/3/extract-3 sha256:chain1' }))['info'] as { kind: number }).kind, 2);
      });
    } finally {
      cleanup();
    }
  });
});
