// containerd's snapshots API as containerd's proxy client speaks it: a grpc-js client made
// from the same .proto files, against the server on a Unix socket with real SQLite
// metadata and real directories. All ten RPCs with containerd's semantics and error codes
// (CD/snapshots/storage/bolt.go), the mounts of each kind, labels, List batches and
// filters, the socket itself. The remote handshake and restarts: remote.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { serveSnapshotter } from '../../src/snapshotter/grpc-server.js';
import { Snapshotter } from '../../src/snapshotter/snapshotter.js';
import { createLogger } from '../../src/log.js';
import { RecordingProvider, client, grpcCode, inTemp, logSink, withServer } from './harness.js';

const NOT_FOUND = grpcCode(grpc.status.NOT_FOUND);
const EXISTS = grpcCode(grpc.status.ALREADY_EXISTS);
const PRECONDITION = grpcCode(grpc.status.FAILED_PRECONDITION);
const INVALID = grpcCode(grpc.status.INVALID_ARGUMENT);

describe('snapshotter gRPC API (containerd.services.snapshots.v1.Snapshots)', () => {
  it('Prepare, Commit, Stat, Usage, Mounts: a layer unpacked and committed as containerd does it', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider({ ok: false, reason: 'unused' }), async ({ api, snaps }) => {
        const { mounts } = await api.Prepare({ key: 'default/1/extract-a sha256:c1', parent: '', labels: { 'containerd.io/gc.root': 'x' } });
        assert.deepEqual(mounts, [{ type: 'bind', source: join(snaps, '1', 'fs'), target: '', options: ['rw', 'rbind'] }]);
        assert.ok(statSync(join(snaps, '1', 'work')).isDirectory(), 'an active snapshot has a work dir');
        writeFileSync(join(mounts[0]?.source as string, 'file'), 'x'.repeat(10_000));
        mkdirSync(join(mounts[0]?.source as string, 'sub'));

        const active = await api.Usage({ key: 'default/1/extract-a sha256:c1' });
        assert.equal(active.inodes, 3, 'fs, file, sub');
        assert.ok(active.size >= 10_000, `usage walks an active snapshot now: ${active.size}`);
        assert.equal(typeof active.size, 'number');
        assert.deepEqual((await api.Mounts({ key: 'default/1/extract-a sha256:c1' })).mounts, mounts);

        const before = Date.now();
        await api.Commit({ name: 'sha256:c1', key: 'default/1/extract-a sha256:c1', labels: { 'containerd.io/snapshot.ref': 'sha256:c1' } });
        await assert.rejects(api.Stat({ key: 'default/1/extract-a sha256:c1' }), NOT_FOUND);
        const { info } = await api.Stat({ key: 'sha256:c1' });
        assert.equal(info.name, 'sha256:c1');
        assert.equal(info.parent, '');
        assert.equal(info.kind, 3);
        // Committed labels replace the active snapshot's (bolt's CommitActive), they are not inherited.
        assert.deepEqual(info.labels, { 'containerd.io/snapshot.ref': 'sha256:c1' });
        const created = info.created_at.seconds * 1000 + info.created_at.nanos / 1e6;
        assert.ok(created >= before - 1000 && created <= Date.now() + 1000, `created ${created}`);
        assert.deepEqual(readdirSync(snaps), ['1'], 'the commit keeps the directory');
        assert.deepEqual(await api.Usage({ key: 'sha256:c1' }), active, 'the usage the commit recorded');
        await assert.rejects(api.Mounts({ key: 'sha256:c1' }), PRECONDITION);
      }),
    ));

  it('error codes: NotFound, AlreadyExists, FailedPrecondition, InvalidArgument where bolt storage gives them', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider(), async ({ api }) => {
        await api.Prepare({ key: 'a' });
        await api.Commit({ name: 'base', key: 'a' });
        await api.Prepare({ key: 'active' });
        await api.View({ key: 'view', parent: 'base' });

        await assert.rejects(api.Prepare({ key: 'active' }), EXISTS);
        await assert.rejects(api.View({ key: 'view', parent: '' }), EXISTS);
        await assert.rejects(api.Prepare({ key: 'k', parent: 'nope' }), NOT_FOUND);
        await assert.rejects(api.Prepare({ key: 'k', parent: 'active' }), INVALID, 'a parent that is not committed');
        await assert.rejects(api.View({ key: 'k', parent: 'view' }), INVALID);
        await assert.rejects(api.Prepare({ key: '' }), INVALID);

        await assert.rejects(api.Commit({ name: 'base', key: 'active' }), EXISTS, 'a name that is taken');
        await assert.rejects(api.Commit({ name: 'new', key: 'view' }), PRECONDITION, 'a view cannot be committed');
        await assert.rejects(api.Commit({ name: 'new', key: 'base' }), PRECONDITION, 'nor a committed one');
        await assert.rejects(api.Commit({ name: 'new', key: 'nope' }), NOT_FOUND);

        await assert.rejects(api.Mounts({ key: 'nope' }), NOT_FOUND);
        await assert.rejects(api.Stat({ key: 'nope' }), NOT_FOUND);
        await assert.rejects(api.Usage({ key: 'nope' }), NOT_FOUND);
        await assert.rejects(api.Remove({ key: 'nope' }), NOT_FOUND);
        await assert.rejects(api.Remove({ key: 'base' }), PRECONDITION, 'base has a child (the view)');
        await assert.rejects(api.Update({ info: { name: 'nope', labels: {} }, update_mask: { paths: ['labels'] } }), NOT_FOUND);
        await assert.rejects(api.Update({ info: { name: 'base', labels: {} }, update_mask: { paths: ['parent'] } }), INVALID);
        // Nothing the refused calls touched changed.
        assert.deepEqual((await api.List({})).infos.map((i) => i.name).sort(), ['active', 'base', 'view']);
      }),
    ));

  it('mounts of each kind: binds without parents or for a view of one, overlays with lowerdirs nearest parent first', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider(), async ({ api, snaps }) => {
        const fs = (id: number): string => join(snaps, String(id), 'fs');
        // Layers 1 ← 2 ← 3 (ids 1, 2, 3).
        let parent = '';
        for (const n of [1, 2, 3]) {
          await api.Prepare({ key: `extract-${n}`, parent });
          await api.Commit({ name: `layer-${n}`, key: `extract-${n}` });
          parent = `layer-${n}`;
        }
        assert.deepEqual((await api.View({ key: 'v0' })).mounts, [{ type: 'bind', source: fs(4), target: '', options: ['ro', 'rbind'] }]);
        assert.deepEqual((await api.View({ key: 'v1', parent: 'layer-1' })).mounts, [{ type: 'bind', source: fs(1), target: '', options: ['ro', 'rbind'] }]);
        assert.deepEqual((await api.View({ key: 'v3', parent: 'layer-3' })).mounts, [
          { type: 'overlay', source: 'overlay', target: '', options: [`lowerdir=${fs(3)}:${fs(2)}:${fs(1)}`] },
        ]);
        assert.deepEqual((await api.Prepare({ key: 'ctr1', parent: 'layer-1' })).mounts, [
          { type: 'overlay', source: 'overlay', target: '', options: [`workdir=${join(snaps, '7', 'work')}`, `upperdir=${fs(7)}`, `lowerdir=${fs(1)}`] },
        ]);
        const ctr3 = await api.Prepare({ key: 'ctr3', parent: 'layer-3' });
        assert.deepEqual(ctr3.mounts, [
          { type: 'overlay', source: 'overlay', target: '', options: [`workdir=${join(snaps, '8', 'work')}`, `upperdir=${fs(8)}`, `lowerdir=${fs(3)}:${fs(2)}:${fs(1)}`] },
        ]);
        assert.deepEqual(await api.Mounts({ key: 'ctr3' }), ctr3);
        assert.deepEqual((await api.Mounts({ key: 'v3' })).mounts[0]?.options, [`lowerdir=${fs(3)}:${fs(2)}:${fs(1)}`]);
        assert.equal(existsSync(join(snaps, '4', 'work')), false, 'a view has no work dir');
        assert.equal((await api.Stat({ key: 'v1' })).info.kind, 1);
        assert.equal((await api.Stat({ key: 'ctr1' })).info.kind, 2);
      }),
    ));

  it('Update changes labels only: labels.<k> sets or deletes one, labels (or no path) replaces them all', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider(), async ({ api }) => {
        await api.Prepare({ key: 'a', labels: { keep: '1', drop: '2', change: '3' } });
        const stat0 = (await api.Stat({ key: 'a' })).info;
        const one = await api.Update({ info: { name: 'a', labels: { change: 'new', add: '4' } }, update_mask: { paths: ['labels.change', 'labels.drop', 'labels.add'] } });
        assert.deepEqual(one.info.labels, { keep: '1', change: 'new', add: '4' });
        assert.equal(one.info.kind, 2, 'nothing but labels changes');
        assert.ok(one.info.updated_at.seconds * 1e9 + one.info.updated_at.nanos >= stat0.updated_at.seconds * 1e9 + stat0.updated_at.nanos);
        assert.deepEqual((await api.Stat({ key: 'a' })).info.labels, one.info.labels, 'stored');

        assert.deepEqual((await api.Update({ info: { name: 'a', labels: { only: 'x' } }, update_mask: { paths: ['labels'] } })).info.labels, { only: 'x' });
        assert.deepEqual((await api.Update({ info: { name: 'a', labels: { no: 'mask' } } })).info.labels, { no: 'mask' }, 'an empty mask replaces the labels');
        assert.deepEqual((await api.Update({ info: { name: 'a', labels: {} }, update_mask: { paths: [] } })).info.labels, {});
        // One bad path refuses the whole update.
        await api.Update({ info: { name: 'a', labels: { k: 'v' } } });
        await assert.rejects(api.Update({ info: { name: 'a', labels: { k: 'changed' } }, update_mask: { paths: ['labels.k', 'kind'] } }), INVALID);
        assert.deepEqual((await api.Stat({ key: 'a' })).info.labels, { k: 'v' });
      }),
    ));

  it('List: every snapshot in batches of 100; containerd filters narrow it, and what is not understood lists all', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider(), async ({ api }) => {
        assert.deepEqual(await api.List({}), { infos: [], batches: 0 });
        await api.Prepare({ key: 'x' });
        await api.Commit({ name: 'base', key: 'x', labels: { 'containerd.io/snapshot.ref': 'sha256:b' } });
        for (let i = 0; i < 249; i++) await api.View({ key: `v${i}`, parent: i % 2 === 0 ? 'base' : '', labels: { n: String(i) } });
        const all = await api.List({});
        assert.equal(all.infos.length, 250);
        assert.equal(all.batches, 3);
        assert.deepEqual(all.infos.find((i) => i.name === 'v0'), { ...all.infos.find((i) => i.name === 'v0'), parent: 'base', kind: 1, labels: { n: '0' } });

        const names = async (filters: string[]): Promise<string[]> => (await api.List({ filters })).infos.map((i) => i.name).sort();
        // The filter containerd's metadata store sends after a Prepare answered AlreadyExists.
        assert.deepEqual(await names(['labels."containerd.io/snapshot.ref"==sha256:b,parent==""']), ['base']);
        assert.deepEqual(await names(['kind==committed']), ['base']);
        assert.deepEqual(await names(['labels.n==7', 'name==v8']), ['v7', 'v8']);
        assert.equal((await names(['parent==base,kind==view'])).length, 125);
        assert.equal((await names(['labels.n~=^1'])).length, 250, 'regexps are left to containerd');
      }),
    ));

  it('Remove: children first; the directory goes with the snapshot. Cleanup: directories without a snapshot, unmounted first through the provider', () =>
    inTemp(async (dir) => {
      const provider = new RecordingProvider();
      await withServer(dir, provider, async ({ api, snaps }) => {
        await api.Prepare({ key: 'a' });
        await api.Commit({ name: 'base', key: 'a' });
        await api.Prepare({ key: 'ctr', parent: 'base' });
        await assert.rejects(api.Remove({ key: 'base' }), PRECONDITION);
        await api.Remove({ key: 'ctr' });
        assert.deepEqual(readdirSync(snaps), ['1']);
        await api.Remove({ key: 'base' });
        assert.deepEqual(readdirSync(snaps), []);
        assert.deepEqual(provider.unmounts, [], 'local snapshots have nothing of the provider mounted');

        await api.Prepare({ key: 'kept' });
        mkdirSync(join(snaps, '999', 'fs'), { recursive: true });
        mkdirSync(join(snaps, 'new-123', 'fs'), { recursive: true });
        await api.Cleanup({});
        assert.deepEqual(readdirSync(snaps), ['3']);
        assert.deepEqual(provider.unmounts.sort(), [join(snaps, '999', 'fs'), join(snaps, 'new-123', 'fs')]);
        await api.Cleanup({});
        assert.deepEqual(readdirSync(snaps), ['3']);
      });
    }));

  it('a directory left without its row (metadata.db lost) is never reused: that Prepare fails, Cleanup clears the way', () =>
    inTemp((dir) =>
      withServer(dir, new RecordingProvider(), async ({ api, snaps }) => {
        mkdirSync(join(snaps, '1', 'fs'), { recursive: true });
        writeFileSync(join(snaps, '1', 'fs', 'old'), 'stale');
        await assert.rejects(api.Prepare({ key: 'a' }), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /EEXIST/.test(err.details));
        assert.deepEqual((await api.List({})).infos, []);
        await api.Cleanup({});
        const { mounts } = await api.Prepare({ key: 'a' });
        assert.equal(mounts[0]?.source, join(snaps, '2', 'fs'));
        assert.deepEqual(readdirSync(snaps), ['2']);
        assert.deepEqual(readdirSync(join(snaps, '2', 'fs')), []);
      }),
    ));

  it('an unexpected failure is INTERNAL with its message, and logged', () =>
    inTemp(async (dir) => {
      const { log, lines } = logSink();
      const s = await Snapshotter.open(join(dir, 'snapshotter'), new RecordingProvider(), log);
      const address = join(dir, 'snapshotter.sock');
      const server = await serveSnapshotter(address, s, log);
      const api = client(address);
      try {
        s.close();
        await assert.rejects(api.Stat({ key: 'a' }), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /snapshotter is closed/.test(err.details));
        await assert.rejects(api.List({}), (err: grpc.ServiceError) => err.code === grpc.status.INTERNAL && /snapshotter is closed/.test(err.details));
        assert.deepEqual(lines.filter((l) => l['level'] === 50).map((l) => l['rpc']), ['Stat', 'List']);
      } finally {
        api.close();
        await server.close();
        s.close();
      }
    }));

  it('the socket: its directory made, a stale socket replaced, mode 0600, removed at close; a file that is no socket left alone', () =>
    inTemp(async (dir) => {
      const log = createLogger('silent');
      const s = await Snapshotter.open(join(dir, 'snapshotter'), new RecordingProvider(), log);
      try {
        const address = join(dir, 'deep', 'run', 'snapshotter.sock');
        mkdirSync(join(dir, 'deep', 'run'), { recursive: true });
        // A process that exits without closing its listener leaves its socket behind.
        const left = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(address)}, () => process.exit(0))`]);
        assert.equal(left.status, 0, String(left.stderr));
        assert.ok(statSync(address).isSocket());
        const server = await serveSnapshotter(address, s, log);
        const api = client(address);
        try {
          assert.equal(statSync(address).mode & 0o777, 0o600);
          await api.Prepare({ key: 'a' });
          assert.equal((await api.Stat({ key: 'a' })).info.kind, 2);
        } finally {
          api.close();
          await server.close();
        }
        assert.equal(existsSync(address), false);

        const notSocket = join(dir, 'plain-file');
        writeFileSync(notSocket, 'mine');
        await assert.rejects(serveSnapshotter(notSocket, s, log), /plain-file exists and is not a socket/);
        assert.equal(existsSync(notSocket), true);
      } finally {
        s.close();
      }
    }));

  it('close ends calls still running after a grace period instead of waiting for them', () =>
    inTemp(async (dir) => {
      const provider = new RecordingProvider();
      let release = (): void => {};
      provider.gate = new Promise((r) => (release = r));
      const log = createLogger('silent');
      const s = await Snapshotter.open(join(dir, 'snapshotter'), provider, log);
      const address = join(dir, 'snapshotter.sock');
      const server = await serveSnapshotter(address, s, log);
      const api = client(address);
      try {
        // Settled into a value at once: it fails while close() is awaited.
        const pending = api.Prepare({ key: 'k', labels: { 'containerd.io/snapshot.ref': 'sha256:t' } }).then(() => undefined, (err: grpc.ServiceError) => err);
        while (provider.mounts.length === 0) await new Promise((r) => setTimeout(r, 10));
        const t0 = Date.now();
        await server.close();
        assert.ok(Date.now() - t0 < 4_000, `closed in ${Date.now() - t0} ms`);
        assert.equal((await pending)?.code, grpc.status.CANCELLED);
      } finally {
        release();
        api.close();
        await server.close();
        s.close();
      }
    }));
});
