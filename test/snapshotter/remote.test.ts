// Remote snapshots through the gRPC API (RUNTIMES.md A2): a Prepare naming its target
// (`containerd.io/snapshot.ref`) whose layer the provider mounts is committed under the
// target and answered ALREADY_EXISTS, and containerd finds it by Stat and by List with its
// own filter; a layer the provider cannot mount is an ordinary Prepare. Then the state
// that outlives the process: metadata, and remote snapshots mounted again by restore().
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Snapshotter } from '../../src/snapshotter/snapshotter.js';
import { RecordingProvider, grpcCode, inTemp, logSink, withServer } from './harness.js';

const EXISTS = grpcCode(grpc.status.ALREADY_EXISTS);
const NOT_FOUND = grpcCode(grpc.status.NOT_FOUND);

const REF = 'containerd.io/snapshot.ref';
const layerLabels = (chain: string, digest: string): Record<string, string> => ({
  [REF]: chain,
  'containerd.io/snapshot/remote/stargz.reference': 'registry.test/img:1',
  'containerd.io/snapshot/remote/stargz.digest': digest,
  'containerd.io/snapshot/remote/stargz.layers': `${digest},sha256:next`,
});

describe('remote snapshots', () => {
  it('the provider mounts the layer: committed under the target with its parent and labels, answered ALREADY_EXISTS', () =>
    inTemp(async (dir) => {
      const provider = new RecordingProvider();
      await withServer(dir, provider, async ({ api, snaps }) => {
        // A plain layer below (no target label: the provider is not asked).
        await api.Prepare({ key: 'default/1/extract-0', labels: { other: 'x' } });
        await api.Commit({ name: 'sha256:c0', key: 'default/1/extract-0' });
        assert.deepEqual(provider.mounts, []);

        const labels = layerLabels('sha256:c1', 'sha256:l1');
        await assert.rejects(api.Prepare({ key: 'default/2/extract-1 sha256:c1', parent: 'sha256:c0', labels }), EXISTS);
        assert.deepEqual(provider.mounts, [{ dir: join(snaps, '2', 'fs'), labels }]);

        const { info } = await api.Stat({ key: 'sha256:c1' });
        assert.equal(info.kind, 3);
        assert.equal(info.parent, 'sha256:c0');
        assert.deepEqual(info.labels, { ...labels, 'containerd.io/snapshot/remote': 'remote snapshot' });
        await assert.rejects(api.Stat({ key: 'default/2/extract-1 sha256:c1' }), NOT_FOUND);
        // What containerd's metadata store looks for after the AlreadyExists.
        const found = await api.List({ filters: [`labels."${REF}"==sha256:c1,parent=="sha256:c0"`] });
        assert.deepEqual(found.infos.map((i) => [i.name, i.kind, i.parent]), [['sha256:c1', 3, 'sha256:c0']]);
        assert.deepEqual(await api.Usage({ key: 'sha256:c1' }), { size: 0, inodes: 0 });

        // Pulled again: ALREADY_EXISTS at once, nothing mounted twice.
        await assert.rejects(api.Prepare({ key: 'default/3/extract-1 sha256:c1', parent: 'sha256:c0', labels }), EXISTS);
        assert.equal(provider.mounts.length, 1);
        assert.deepEqual(readdirSync(snaps).sort(), ['1', '2']);

        // A container on top: the lazy mount is its lowerdir.
        const ctr = await api.Prepare({ key: 'default/4/ctr', parent: 'sha256:c1' });
        assert.match(ctr.mounts[0]?.options.at(-1) ?? '', new RegExp(`^lowerdir=${join(snaps, '2', 'fs')}:${join(snaps, '1', 'fs')}$`));
      });
    }));

  it('the provider cannot mount it lazily (or throws): an ordinary Prepare, logged as NOT LAZY with the key', () =>
    inTemp(async (dir) => {
      const provider = new RecordingProvider((labels) => {
        if (labels['containerd.io/snapshot/remote/stargz.digest'] === 'sha256:boom') throw new Error('registry unreachable');
        return { ok: false, reason: 'plain gzip layer' };
      });
      const { log, lines } = logSink();
      await withServer(dir, provider, async ({ api, snaps }) => {
        const res = await api.Prepare({ key: 'default/1/extract-1 sha256:c1', labels: layerLabels('sha256:c1', 'sha256:l1') });
        assert.deepEqual(res.mounts, [{ type: 'bind', source: join(snaps, '1', 'fs'), target: '', options: ['rw', 'rbind'] }]);
        assert.equal((await api.Stat({ key: 'default/1/extract-1 sha256:c1' })).info.kind, 2);
        await assert.rejects(api.Stat({ key: 'sha256:c1' }), NOT_FOUND);
        // containerd unpacks into it and commits, as for any layer.
        await api.Commit({ name: 'sha256:c1', key: 'default/1/extract-1 sha256:c1', labels: { [REF]: 'sha256:c1' } });
        assert.deepEqual((await api.Stat({ key: 'sha256:c1' })).info.labels, { [REF]: 'sha256:c1' });

        const res2 = await api.Prepare({ key: 'default/2/extract-2 sha256:c2', parent: 'sha256:c1', labels: layerLabels('sha256:c2', 'sha256:boom') });
        assert.equal(res2.mounts[0]?.type, 'overlay');
      }, log);
      const notLazy = lines.filter((l) => typeof l['msg'] === 'string' && (l['msg'] as string).startsWith('NOT LAZY: '));
      assert.deepEqual(notLazy.map((l) => [l['level'], l['mod'], l['key'], l['msg']]), [
        [30, 'snapshotter', 'default/1/extract-1 sha256:c1', 'NOT LAZY: plain gzip layer'],
        [30, 'snapshotter', 'default/2/extract-2 sha256:c2', 'NOT LAZY: registry unreachable'],
      ]);
    }));

  it('two pulls of the same layer at once: one commit wins, the other mount is taken off and its snapshot removed, both ALREADY_EXISTS', () =>
    inTemp(async (dir) => {
      const provider = new RecordingProvider();
      let release = (): void => {};
      provider.gate = new Promise((r) => (release = r));
      await withServer(dir, provider, async ({ api, snaps }) => {
        const labels = layerLabels('sha256:c1', 'sha256:l1');
        const a = api.Prepare({ key: 'default/1/extract-1 sha256:c1', labels });
        const b = api.Prepare({ key: 'default/2/extract-1 sha256:c1', labels });
        while (provider.mounts.length < 2) await new Promise((r) => setTimeout(r, 10));
        release();
        // Both awaited at once: either may fail first.
        const [ra, rb] = await Promise.allSettled([a, b]);
        for (const r of [ra, rb]) assert.ok(r.status === 'rejected' && EXISTS(r.reason), JSON.stringify(r));
        const { infos } = await api.List({});
        assert.deepEqual(infos.map((i) => [i.name, i.kind]), [['sha256:c1', 3]]);
        assert.equal(provider.unmounts.length, 1);
        const loser = provider.unmounts[0] as string;
        assert.ok(provider.mounted.includes(loser));
        assert.equal(existsSync(loser), false, 'its directory removed');
        assert.equal(readdirSync(snaps).length, 1);
      });
    }));

  it('after a restart: metadata is all there, restore() mounts the remote snapshots again (failures logged, the rest go on), Remove unmounts first', () =>
    inTemp(async (dir) => {
      const first = new RecordingProvider();
      const before = await (async () => {
        let infos: unknown;
        await withServer(dir, first, async ({ api }) => {
          await api.Prepare({ key: 'x', labels: { local: 'yes' } });
          await api.Commit({ name: 'local', key: 'x', labels: { local: 'yes' } });
          for (const n of [1, 2, 3]) {
            await assert.rejects(api.Prepare({ key: `extract-${n}`, parent: n === 1 ? 'local' : `sha256:c${n - 1}`, labels: layerLabels(`sha256:c${n}`, `sha256:l${n}`) }), EXISTS);
          }
          await api.Prepare({ key: 'ctr', parent: 'sha256:c3' });
          await api.View({ key: 'view', parent: 'local' });
          infos = (await api.List({})).infos;
        });
        return infos;
      })();

      // Layer 2's registry is down this time: logged, and the others are mounted anyway.
      const again = new RecordingProvider((labels) =>
        labels['containerd.io/snapshot/remote/stargz.digest'] === 'sha256:l2' ? { ok: false, reason: 'registry down' } : { ok: true });
      const { log, lines } = logSink();
      const s = await Snapshotter.open(join(dir, 'snapshotter'), again, log);
      try {
        assert.deepEqual(await s.restore(), { mounted: 2, failed: 1 });
        assert.deepEqual(again.mounted.sort(), first.mounted.sort(), 'the same directories');
        assert.deepEqual(again.mounts.map((m) => m.labels[REF]).sort(), ['sha256:c1', 'sha256:c2', 'sha256:c3']);
        const failed = lines.filter((l) => l['level'] === 50);
        assert.deepEqual(failed.map((l) => [l['key'], l['reason']]), [['sha256:c2', 'registry down']]);
      } finally {
        s.close();
      }

      await withServer(dir, again, async ({ api, snaps }) => {
        assert.deepEqual((await api.List({})).infos, before, 'names, kinds, parents, labels and times as they were');
        assert.equal((await api.Mounts({ key: 'ctr' })).mounts[0]?.type, 'overlay');
        await api.Remove({ key: 'ctr' });
        const fs3 = join(snaps, '4', 'fs');
        assert.ok(existsSync(fs3));
        await api.Remove({ key: 'sha256:c3' });
        assert.deepEqual(again.unmounts, [fs3], 'the remote snapshot unmounted');
        assert.deepEqual(again.unmountedExisting, [true], 'before its directory went');
        assert.equal(existsSync(join(snaps, '4')), false, 'then its directory removed');
      });
    }));
});
