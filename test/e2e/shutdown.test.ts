// How a mount ends while readers are busy (issue 22, item 7): SIGTERM, which systemd
// sends to stop the service, must answer or fail every read a reader waits for, never
// leave one blocked in the kernel and never cut a file short with a clean end, and the
// server must exit; `stargzfs unmount` of the same situation lets the reads finish and
// leaves no error in the server's log (item 9: meta.db closed under a late read).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { entries } from '../helpers/entries.js';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { forceUnmount, mountDaemon, type TestMount } from '../helpers/mount.js';
import { runCli } from '../helpers/cli.js';
import { mountInfo } from '../../src/service/mountpoint.js';
import { alive } from '../../src/cli/pids.js';

const READERS = 16;
const SIZE = 2 << 20;
const FILES = Array.from({ length: READERS }, (_, i) => ({ name: `big/f${String(i).padStart(2, '0')}.bin`, body: randomBytes(SIZE) }));
const sha = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/**
 * One reader: read(2) in 256 KiB steps to the end, as cat does. Prints what it got, and
 * every short read before the end (a program takes one for the end of the file).
 */
const READER = `
const fs = require('node:fs');
const h = require('node:crypto').createHash('sha256');
const buf = Buffer.alloc(262144);
let bytes = 0, short = [];
let fd;
try {
  fd = fs.openSync(process.argv[1], 'r');
  for (;;) {
    const n = fs.readSync(fd, buf, 0, buf.length, null);
    if (n === 0) break;
    if (n < buf.length) short.push([bytes, n]);
    h.update(buf.subarray(0, n));
    bytes += n;
  }
} catch (err) {
  process.stdout.write(JSON.stringify({ bytes, short, error: err.code }));
  process.exit(1);
}
process.stdout.write(JSON.stringify({ bytes, short, sha: h.digest('hex') }));
`;

interface Reader {
  readonly child: ChildProcess;
  readonly file: { name: string; body: Buffer };
  /** Exit code, what it printed and when it ended (performance.now()). */
  readonly done: Promise<{ code: number | null; out: { bytes: number; short: Array<[number, number]>; sha?: string; error?: string }; at: number }>;
}

function startReader(mountpoint: string, file: { name: string; body: Buffer }): Reader {
  const child = spawn(process.execPath, ['-e', READER, join(mountpoint, file.name)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  child.stdout?.on('data', (b: Buffer) => out.push(b));
  const done = new Promise<Awaited<Reader['done']>>((resolve) => {
    child.on('close', (code) => {
      const text = Buffer.concat(out).toString();
      resolve({ code, out: text === '' ? { bytes: -1, short: [], error: 'no output' } : JSON.parse(text), at: performance.now() });
    });
  });
  return { child, file, done };
}

function stopReaders(readers: readonly Reader[]): void {
  for (const r of readers) {
    if (r.child.exitCode === null && r.child.pid !== undefined) {
      try {
        process.kill(r.child.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
}

async function waitGone(pid: number, ms: number): Promise<number | undefined> {
  const t0 = performance.now();
  while (alive(pid)) {
    if (performance.now() - t0 > ms) return undefined;
    await new Promise((r) => setTimeout(r, 20));
  }
  return performance.now() - t0;
}

function serverLog(root: string): string {
  const dir = join(root, 'logs');
  return readdirSync(dir).map((f) => readFileSync(join(dir, f), 'utf8')).join('');
}

/** The server's last log lines, short, for a failure's message. */
function logTail(root: string): string {
  return serverLog(root).trim().split('\n').slice(-30).map((l) => {
    try {
      const j = JSON.parse(l) as { time: number; level: number; msg: string; err?: { message?: string } };
      return `${new Date(j.time).toISOString()} ${j.level} ${j.msg}${j.err?.message !== undefined ? `: ${j.err.message}` : ''}`;
    } catch {
      return l;
    }
  }).join('\n');
}

/** Each reader got the whole file, or failed with an error: never a short file and exit 0. */
function checkReaders(results: Array<Awaited<Reader['done']>>, readers: readonly Reader[]): { whole: number; failed: Record<string, number> } {
  let whole = 0;
  const failed: Record<string, number> = {};
  results.forEach((r, i) => {
    const f = (readers[i] as Reader).file;
    if (r.code === 0) {
      assert.equal(r.out.bytes, f.body.length, `${f.name}: exit 0 after ${r.out.bytes} of ${f.body.length} bytes (short reads ${JSON.stringify(r.out.short)})`);
      assert.equal(r.out.sha, sha(f.body), `${f.name}: wrong bytes`);
      whole++;
    } else {
      assert.ok(r.out.error !== undefined && r.out.error !== 'no output', `${f.name}: exit ${String(r.code)} without an error`);
      failed[r.out.error] = (failed[r.out.error] ?? 0) + 1;
    }
  });
  return { whole, failed };
}

describe('a mount ending with reads in flight', () => {
  let served: ServedImage | undefined;
  let n = 0;
  const fresh = (name: string): string => join(served?.dir ?? '', `${name}-${++n}`);

  before(async () => {
    served = await serveImage('shutdown/img', [entries([{ name: 'big/', type: 'dir' }, ...FILES])], { chunkSize: 256 << 10, compressionLevel: 1 });
  });
  after(async () => {
    await served?.stop();
  });

  it('SIGTERM with 16 busy readers: every read answered or failed with EIO, readers and server gone within seconds', async () => {
    const s = served as ServedImage;
    const root = fresh('root');
    let m: TestMount | undefined;
    const readers: Reader[] = [];
    try {
      m = await mountDaemon(['--root', root, '--no-prefetch', '--no-background-fetch', s.ref], fresh('mnt'));
      // Every blob range crawls: the readers are all mid-file when the signal comes.
      s.proxy.reset();
      s.proxy.inject({ kind: 'trickle', bytesPerTick: 8 << 10, tickMs: 20 }, 100_000, /\/blobs\//, { rangedOnly: true });
      for (const f of FILES) readers.push(startReader(m.mountpoint, f));
      const t0 = performance.now();
      while (s.proxy.stats.blobBytes < 1 << 20 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 500));

      const signalled = performance.now();
      process.kill(m.pid, 'SIGTERM');
      const results = await Promise.race([
        Promise.all(readers.map((r) => r.done)),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('readers still blocked 10 s after SIGTERM')), 10_000)),
      ]);
      const readersMs = Math.max(...results.map((r) => r.at - signalled));
      const serverMs = await waitGone(m.pid, 20_000);
      const { whole, failed } = checkReaders(results, readers);
      process.stdout.write(`# SIGTERM: readers ended within ${readersMs.toFixed(0)} ms (${whole} whole, failed ${JSON.stringify(failed)}), server exited after ${serverMs?.toFixed(0) ?? 'never'} ms\n`);
      assert.ok(readersMs < 5_000, `readers ended ${readersMs.toFixed(0)} ms after SIGTERM`);
      assert.ok(whole < READERS, 'the readers were still busy when the signal came');
      for (const code of Object.keys(failed)) assert.equal(code, 'EIO', `a reader failed with ${code}`);
      assert.ok(serverMs !== undefined && serverMs < 20_000, `the server exited ${serverMs?.toFixed(0) ?? 'never'} ms after SIGTERM; its log:\n${logTail(root)}`);
      assert.equal(mountInfo(m.mountpoint), undefined, 'the mount is gone');
      assert.doesNotMatch(serverLog(root), /database connection is not open|never answered/);
    } finally {
      stopReaders(readers);
      s.proxy.reset();
      if (m !== undefined && mountInfo(m.mountpoint) !== undefined) await m.stop();
      if (m !== undefined && alive(m.pid)) forceUnmount(m.mountpoint, m.pid);
    }
  });

  it('stargzfs unmount with 16 busy readers: the reads finish whole, the server exits, nothing in its log', async () => {
    const s = served as ServedImage;
    const root = fresh('root');
    let m: TestMount | undefined;
    const readers: Reader[] = [];
    try {
      m = await mountDaemon(['--root', root, '--no-prefetch', '--no-background-fetch', s.ref], fresh('mnt'));
      s.proxy.reset();
      for (const f of FILES) readers.push(startReader(m.mountpoint, f));
      const t0 = performance.now();
      while (s.proxy.stats.blobBytes < 1 << 20 && performance.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 50));

      const started = performance.now();
      const u = await runCli(['unmount', m.mountpoint]);
      const unmountMs = performance.now() - started;
      assert.equal(u.code, 0, u.stderr);
      const results = await Promise.all(readers.map((r) => r.done));
      const serverMs = await waitGone(m.pid, 20_000);
      const { whole, failed } = checkReaders(results, readers);
      process.stdout.write(`# unmount: ${unmountMs.toFixed(0)} ms, ${whole} whole, failed ${JSON.stringify(failed)}, server gone ${serverMs?.toFixed(0) ?? 'never'} ms after\n`);
      assert.equal(whole, READERS, `every reader got its whole file (failed ${JSON.stringify(failed)}); the server's log:\n${logTail(root)}`);
      assert.ok(serverMs !== undefined, 'the server exited');
      assert.doesNotMatch(serverLog(root), /database connection is not open|never answered/);
    } finally {
      stopReaders(readers);
      s.proxy.reset();
      if (m !== undefined && mountInfo(m.mountpoint) !== undefined) await m.stop();
      if (m !== undefined && alive(m.pid)) forceUnmount(m.mountpoint, m.pid);
    }
  });
});
