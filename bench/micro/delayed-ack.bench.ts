// What a prompt ACK saves: ranged GETs over one keep-alive connection to a server that
// writes a response's headers and its body apart with Nagle on (TCP_NODELAY off), as
// Python's http.server does (the shaping proxy the reference comparisons run through).
// The registry client with and without ackPromptly (native/socket.cc), in the same run,
// bodies of 1 KB, 60 KB and 150 KB. Loopback, no added delay: the difference is the stall.
// JSON on stdout: median and p90 milliseconds per GET, and the ratio.
import { createServer, type Server } from 'node:net';
import { cpus } from 'node:os';
import { RegistryClient } from '../../src/http/registry-client.js';
import { DockerConfigCredentials } from '../../src/http/credentials.js';
import { createLogger } from '../../src/log.js';
import { ackPromptly } from '../../src/fs/fuse-binding.js';
import { httpOptions } from '../../test/helpers/config.js';

const GETS = 40;
const SIZES = [1024, 60 << 10, 150 << 10];
const blob = Buffer.alloc(1 << 20, 7);

/** An HTTP/1.1 server answering every GET with the Range it asks for: headers, then the body, in two writes. */
function nagleServer(): Promise<{ server: Server; port: number }> {
  const server = createServer((sock) => {
    sock.setNoDelay(false);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      for (let end = buf.indexOf('\r\n\r\n'); end >= 0; end = buf.indexOf('\r\n\r\n')) {
        const head = buf.slice(0, end);
        buf = buf.slice(end + 4);
        const m = /range: bytes=(\d+)-(\d+)/i.exec(head);
        const [from, to] = m !== null ? [Number(m[1]), Number(m[2])] : [0, blob.length - 1];
        const body = blob.subarray(from, to + 1);
        sock.write(`HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nContent-Range: bytes ${from}-${to}/${blob.length}\r\nContent-Type: application/octet-stream\r\n\r\n`);
        sock.write(body);
      }
    });
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, port: (server.address() as { port: number }).port })));
}

async function run(port: number, prompt: boolean): Promise<Record<string, { medianMs: number; p90Ms: number }>> {
  const log = createLogger('silent');
  const client = new RegistryClient(httpOptions({ plainHttp: true, connectionsPerHost: 1 }), new DockerConfigCredentials(undefined, log), log, prompt ? { onSocket: ackPromptly } : {});
  const target = { endpoint: `127.0.0.1:${port}`, registry: `127.0.0.1:${port}`, repository: 'bench/blob' };
  const digest = `sha256:${'0'.repeat(64)}`;
  const out: Record<string, { medianMs: number; p90Ms: number }> = {};
  try {
    for (const size of SIZES) {
      const ms: number[] = [];
      for (let i = 0; i < GETS; i++) {
        const t0 = performance.now();
        const b = await client.readRange(target, digest, 1000, size);
        ms.push(performance.now() - t0);
        if (b.length !== size) throw new Error(`got ${b.length} bytes, wanted ${size}`);
      }
      ms.sort((a, b) => a - b);
      out[`${size}B`] = { medianMs: +(ms[GETS >> 1] as number).toFixed(2), p90Ms: +(ms[Math.floor(GETS * 0.9)] as number).toFixed(2) };
    }
  } finally {
    await client.close();
  }
  return out;
}

const { server, port } = await nagleServer();
try {
  const plain = await run(port, false);
  const prompt = await run(port, true);
  process.stdout.write(`${JSON.stringify({
    bench: 'delayed-ack', date: new Date().toISOString(), machine: { cpus: cpus().length, node: process.version }, getsPerSize: GETS,
    withoutPromptAck: plain, withPromptAck: prompt,
    medianRatio: Object.fromEntries(Object.keys(plain).map((k) => [k, +((prompt[k]?.medianMs ?? 0) / (plain[k]?.medianMs ?? 1)).toFixed(2)])),
  }, null, 2)}\n`);
} finally {
  server.close();
}
