// A small image a container runtime can run: a static binary (`/bin/check`, built here
// with the system's C compiler) that prints each file it is given (`<path> <bytes>
// <fnv1a64>`, or `<path> missing`), in three layers: eStargz, plain gzip, eStargz (with a
// whiteout). Most of its bytes are random data nobody reads, so a lazy pull that runs
// `check` on a few files fetches a small fraction of the image.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync, gzipSync } from 'node:zlib';
import { encodeTar, type TarEntry } from '../../src/toc/tar.js';
import { writeOciImage } from '../../src/http/oci-layout-writer.js';
import { OCI_LAYER_GZIP } from '../../src/http/media-types.js';
import { entry } from './entries.js';
import { sha256, tocAnnotation, writerBlob } from './blobs.js';

const CHECK_C = `
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
static void check(const char* path) {
  static unsigned char buf[1 << 16];
  int fd = open(path, O_RDONLY);
  if (fd < 0) { printf("%s missing\\n", path); return; }
  uint64_t h = 14695981039346656037ULL, n = 0;
  ssize_t r;
  while ((r = read(fd, buf, sizeof buf)) > 0) {
    for (ssize_t j = 0; j < r; j++) { h ^= buf[j]; h *= 1099511628211ULL; }
    n += (uint64_t)r;
  }
  if (r < 0) printf("%s error\\n", path);
  else printf("%s %llu %016llx\\n", path, (unsigned long long)n, (unsigned long long)h);
  close(fd);
}
/* check FILE...  or  check --rounds N --sleep-ms MS FILE...: the same files read N times. */
int main(int argc, char** argv) {
  int first = 1, rounds = 1, ms = 0;
  if (argc > 5 && strcmp(argv[1], "--rounds") == 0 && strcmp(argv[3], "--sleep-ms") == 0) {
    rounds = atoi(argv[2]);
    ms = atoi(argv[4]);
    first = 5;
  }
  for (int k = 0; k < rounds; k++) {
    if (k > 0) {
      struct timespec t = { ms / 1000, (long)(ms % 1000) * 1000000L };
      nanosleep(&t, NULL);
    }
    for (int i = first; i < argc; i++) check(argv[i]);
    fflush(stdout);
  }
  return 0;
}
`;

/** What `check` prints for these bytes. */
export function fnv1a64(b: Buffer): string {
  let h = 0xcbf29ce484222325n;
  for (const byte of b) {
    h ^= BigInt(byte);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h.toString(16).padStart(16, '0');
}

export interface RunnableImage {
  /** The OCI layout's directory. */
  readonly layout: string;
  readonly manifestDigest: string;
  /** The files `check` is run on, and the line it must print for each. */
  readonly expected: ReadonlyArray<{ path: string; line: string }>;
  /** All layer blobs' bytes. */
  readonly totalBytes: number;
  readonly layerDigests: readonly string[];
}

function plainTarGz(entries: readonly TarEntry[]): Buffer {
  return gzipSync(encodeTar(entries));
}

export async function buildRunnableImage(dir: string, opts: { randomMiB?: number } = {}): Promise<RunnableImage> {
  writeFileSync(join(dir, 'check.c'), CHECK_C);
  execFileSync('cc', ['-static', '-O2', '-o', join(dir, 'check'), join(dir, 'check.c')]);
  const check = readFileSync(join(dir, 'check'));
  const base = Buffer.from('base layer\n');
  const plain = Buffer.from('from the plain gzip layer\n');
  const top = Buffer.from('top layer\n');
  const small = randomBytes(100 << 10);
  const random = Array.from({ length: opts.randomMiB ?? 16 }, () => randomBytes(1 << 20));
  const l0 = writerBlob([
    entry({ name: 'bin/' }), entry({ name: 'etc/' }), entry({ name: 'data/' }), entry({ name: 'tmp/', mode: 0o1777 }),
    entry({ name: 'proc/' }), entry({ name: 'sys/' }), entry({ name: 'dev/' }),
    entry({ name: 'bin/check', body: check, mode: 0o755 }),
    entry({ name: 'etc/base.txt', body: base }),
    entry({ name: 'data/gone.txt', body: 'deleted by the top layer\n' }),
    ...random.map((b, i) => entry({ name: `data/random-${i}.bin`, body: b })),
  ]);
  const l1 = plainTarGz([entry({ name: 'etc/' }), entry({ name: 'etc/plain.txt', body: plain })]);
  const l2 = writerBlob([
    entry({ name: 'etc/' }), entry({ name: 'data/' }),
    entry({ name: 'etc/top.txt', body: top }),
    entry({ name: 'data/.wh.gone.txt' }),
    entry({ name: 'data/small.bin', body: small }),
  ]);
  const layers = [
    { blob: l0.blob, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(l0.blob)), annotations: tocAnnotation(l0.tocDigest) },
    { blob: l1, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(l1)) },
    { blob: l2.blob, mediaType: OCI_LAYER_GZIP, diffId: sha256(gunzipSync(l2.blob)), annotations: tocAnnotation(l2.tocDigest) },
  ];
  const layout = join(dir, 'oci');
  const manifest = await writeOciImage(layout, { layers, refName: 'latest' });
  return {
    layout,
    manifestDigest: manifest.digest,
    totalBytes: layers.reduce((n, l) => n + l.blob.length, 0),
    layerDigests: layers.map((l) => sha256(l.blob)),
    expected: [
      { path: '/etc/base.txt', line: `/etc/base.txt ${base.length} ${fnv1a64(base)}` },
      { path: '/etc/plain.txt', line: `/etc/plain.txt ${plain.length} ${fnv1a64(plain)}` },
      { path: '/etc/top.txt', line: `/etc/top.txt ${top.length} ${fnv1a64(top)}` },
      { path: '/data/small.bin', line: `/data/small.bin ${small.length} ${fnv1a64(small)}` },
      { path: '/data/gone.txt', line: '/data/gone.txt missing' },
    ],
  };
}
