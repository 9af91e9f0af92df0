// Remote snapshots as mounts of the service: the labels a pull puts on a layer's Prepare
// (ctr-remote's `stargz.*`, or the CRI plugin's `cri.*`) name the image and the layer;
// the layer is mounted lazily at the snapshot's directory as the overlayfs-ready view of
// that one layer (whiteouts as 0/0 devices, opaque dirs as trusted.overlay.opaque).
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import type { Service } from '../service/service.js';
import { detach, isDeadMount, mountInfo } from '../service/mountpoint.js';
import type { RemoteLayerProvider } from './snapshotter.js';

/** Where an image reference and a layer digest can come from, in the order they are tried. */
const REF_LABELS = ['containerd.io/snapshot/cri.image-ref', 'containerd.io/snapshot/remote/stargz.reference'];
const DIGEST_LABELS = ['containerd.io/snapshot/cri.layer-digest', 'containerd.io/snapshot/remote/stargz.digest'];
/** This layer's digest and those of the layers after it, comma-separated (cut short to fit a label). */
const LAYERS_LABELS = ['containerd.io/snapshot/cri.image-layers', 'containerd.io/snapshot/remote/stargz.layers'];
/** Layers indexed ahead at once: each is a TOC fetch, and imports run one at a time anyway. */
const AHEAD = 3;

const first = (labels: Readonly<Record<string, string>>, keys: readonly string[]): string | undefined =>
  keys.map((k) => labels[k]).find((v) => v !== undefined && v !== '');

export class ServiceLayers implements RemoteLayerProvider {
  private readonly log: Logger;

  constructor(private readonly service: Service, private readonly config: Config, log: Logger) {
    this.log = log.child({ mod: 'remote-layers' });
  }

  async mount(dir: string, labels: Readonly<Record<string, string>>): Promise<{ ok: true } | { ok: false; reason: string }> {
    const src = first(labels, REF_LABELS);
    const digest = first(labels, DIGEST_LABELS);
    if (src === undefined || digest === undefined) {
      return { ok: false, reason: `no image reference or layer digest among the labels (${[...REF_LABELS, ...DIGEST_LABELS].join(', ')})` };
    }
    // The runtime asks for the layers one by one, each after the last is done: their TOCs
    // are fetched and indexed meanwhile, so that each next mount finds its index ready.
    const ahead = (first(labels, LAYERS_LABELS) ?? '').split(',').filter((d) => /^sha256:[0-9a-f]{64}$/.test(d) && d !== digest).slice(0, AHEAD);
    for (const d of ahead) void this.service.preindex(this.config, src, d);
    try {
      // This layer's own TOC may be on its way already (a Prepare before this one started it).
      await this.service.indexing(src, digest);
      // A mount left by a service that was killed (ENOTCONN) is replaced by MountedImage itself.
      await this.service.mount({
        src,
        spec: { mountpoint: dir, layer: digest, overlay: 'trusted', allowOther: true },
        config: this.config,
        onlyLayer: digest,
      });
      return { ok: true };
    } catch (err) {
      this.log.debug({ err, src, digest }, 'layer not mounted lazily');
      return { ok: false, reason: (err as Error).message };
    }
  }

  async unmount(dir: string): Promise<void> {
    if (this.service.has(dir)) {
      // Detached now; the session ends when the last file open on it closes.
      await this.service.unmount(dir, { wait: false });
      return;
    }
    // Not ours any more (a dead mount left by a killed service): take it off the directory.
    if (isDeadMount(dir) || mountInfo(dir)?.fstype === 'fuse.stargzfs') detach(dir);
  }
}
