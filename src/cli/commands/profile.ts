// `stargzfs profile export|clear <src>`: the learned access profile of an image (the
// order in which earlier runs first read its files; kept per chunk, exported per file),
// for `convert --prioritize` or to start over.
import { writeFileSync } from 'node:fs';
import type { OpenImage } from '../../layer/image.js';
import type { ProfileStore } from '../../layer/profile.js';
import { write, writeJson } from '../output.js';

export async function profileExport(image: OpenImage, profiles: ProfileStore, out: string | undefined, json: boolean): Promise<void> {
  const entries = profiles.files(image.resolved.manifestDigest);
  const layerIndex = new Map(image.layers.map((l) => [l.desc.digest, l.index]));
  const text = json
    ? `${JSON.stringify({ image: image.resolved.manifestDigest, entries: entries.map((e) => ({ ...e, layerIndex: layerIndex.get(e.layer) ?? null })) }, null, 2)}\n`
    : [...new Set(entries.map((e) => `/${e.path}`))].map((p) => `${p}\n`).join('');
  if (out !== undefined) {
    writeFileSync(out, text);
    process.stderr.write(`stargzfs: wrote ${entries.length} entries to ${out}\n`);
  } else if (json) {
    await writeJson(JSON.parse(text));
  } else {
    await write(text);
  }
}

export async function profileClear(image: OpenImage, profiles: ProfileStore): Promise<void> {
  const n = profiles.clear(image.resolved.manifestDigest);
  await write(`removed ${n} entries from the profile of ${image.resolved.manifestDigest}\n`);
}
