// Ranged GET throughput and request rate against Debian's docker-registry on loopback:
// many 64 KiB ranges and a few 16 MiB ranges of one 64 MiB blob, through our client
// (undici, keep-alive pool, 8 in flight) and through curl on the same ranges in the same
// run (one curl process, --parallel 8), as the baseline. JSON on stdout.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpus } from 'node:os';
import { RegistryClient } from '../src/http/registry-client.js';
import { DockerConfigCredentials } from '../src/http/credentials.js';
import { pushBlob } from '../src/http/push.js';
import { httpOptions } from '../test/helpers/config.js';
import { createLogger } from '../src/log.js';
import { startRegistry } from '../test/helpers/registry.js';

const BLOB = 64 << 20;
const log = createLogger('silent');
const reg = await startRegistry();
try {
  const client = new RegistryClient(httpOptions({ timeoutMs: 30_000, retries: 2 }), new DockerConfigCredentials(undefined, log), log);
  const target = { endpoint: reg.host, registry: reg.host, repository: 'bench/blob' };
  const blob = randomBytes(BLOB);
  const digest = await pushBlob(client, target, blob);
  const url = `${reg.url}/v2/bench/blob/blobs/${digest}`;

  const scenario = async (rangeSize: number, count: number) => {
    const offsets = Array.from({ length: count }, (_, i) => (i * rangeSize) % (BLOB - rangeSize + 1));
    // ours: 8 requests in flight
    const t0 = performance.now();
    let next = 0;
    const h = createHash('sha256');
    await Promise.all(Array.from({ length: 8 }, async () => {
      for (let i = next++; i < count; i = next++) {
        const off = offsets[i] as number;
        const b = await client.readRange(target, digest, off, rangeSize);
        if (!b.equals(blob.subarray(off, off + rangeSize))) throw new Error('wrong bytes');
      }
    }));
    h.update('');
    const ours = (performance.now() - t0) / 1000;
    // curl: the same ranges, one process, 8 in parallel
    const args = ['-s', '--parallel', '--parallel-max', '8'];
    offsets.forEach((off, i) => {
      if (i > 0) args.push('--next');
      args.push('-r', `${off}-${off + rangeSize - 1}`, '-o', '/dev/null', url);
    });
    const t1 = performance.now();
    execFileSync('curl', args, { maxBuffer: 1 << 20 });
    const curl = (performance.now() - t1) / 1000;
    const mib = (count * rangeSize) / 2 ** 20;
    return {
      rangeBytes: rangeSize, requests: count,
      ours: { seconds: +ours.toFixed(3), mibPerSecond: Math.round(mib / ours), requestsPerSecond: Math.round(count / ours) },
      curl: { seconds: +curl.toFixed(3), mibPerSecond: Math.round(mib / curl), requestsPerSecond: Math.round(count / curl) },
      oursOverCurlThroughput: +(curl / ours).toFixed(2),
    };
  };
  const small = await scenario(64 << 10, 1024);
  const large = await scenario(16 << 20, 8);
  await client.close();
  process.stdout.write(`${JSON.stringify({ bench: 'ranged-get', date: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, blobBytes: BLOB, small, large }, null, 2)}\n`);
} finally {
  await reg.stop();
}
