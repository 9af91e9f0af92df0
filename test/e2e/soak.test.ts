// Faults under load (issue 22): 32 readers (4 processes of 8) read whole files of a real
// three-layer image through a mount and check every byte, for SOAK_SECONDS, while the fault
// proxy in front of the real registry injects, one kind at a time and at random, 5xx,
// 429 with Retry-After, connection resets mid-body, truncated and stalled bodies, a
// flipped byte inside a 206 body, Range ignored, and the registry gone for a moment (a
// restart as a client sees it). The page cache is dropped every second so reads keep
// reaching the server, and the chunk cache is smaller than the image so chunks keep being
// fetched again. Counted: reads right / EIO / wrong (must be 0); afterwards every file
// reads right; the server's RSS, descriptors and threads are sampled and must stay
// bounded. `make soak` runs it for minutes on a larger image and writes the curve to
// SOAK_JSON.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { serveImage, type ServedImage } from '../helpers/served-image.js';
import { entries, type Spec } from '../helpers/entries.js';
import { bytes, int, rng, pick } from '../helpers/random.js';
import { mountDaemon, type TestMount } from '../helpers/mount.js';
import type { Fault } from '../helpers/fault-proxy.js';
import { repoRoot } from '../helpers/paths.js';

const SECONDS = Number(process.env.SOAK_SECONDS ?? 20);
/** Image size in MiB, roughly. */
const MB = Number(process.env.SOAK_MB ?? 96);
const SEED = Number(process.env.SEED ?? Date.now() % 100000);
const PROCESSES = 4;
const PER_PROCESS = 8;

interface Counts {
  ok: number;
  eio: number;
  wrong: number;
  short: number;
  errors: Record<string, number>;
  maxMs: number;
  reads: number;
}

interface Sample {
  t: number;
  rssMiB: number;
  fds: number;
  threads: number;
  fault: string;
}

function sample(pid: number, t0: number, fault: string): Sample | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rss = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024;
    const threads = Number(/Threads:\s+(\d+)/.exec(status)?.[1] ?? 0);
    return { t: Math.round((Date.now() - t0) / 1000), rssMiB: Math.round(rss), fds: readdirSync(`/proc/${pid}/fd`).length, threads, fault };
  } catch {
    return undefined;
  }
}

function runReaders(dir: string, mountpoint: string, files: Array<{ path: string; size: number; sha256: string }>, deadline: number): Promise<Counts[]> {
  const reader = join(repoRoot, 'dist/test/helpers/soak-reader.js');
  // In a file: a large image's list is more than the environment may hold.
  const job = join(dir, 'soak-job.json');
  writeFileSync(job, JSON.stringify({ mountpoint, files, deadline, concurrency: PER_PROCESS }));
  return Promise.all(Array.from({ length: PROCESSES }, () => new Promise<Counts>((resolve, reject) => {
    const child = spawn(process.execPath, [reader, job], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, UV_THREADPOOL_SIZE: String(PER_PROCESS + 2) },
    });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out) as Counts) : reject(new Error(`soak reader exited ${code}`))));
  })));
}

function dropPageCache(): void {
  try {
    writeFileSync('/proc/sys/vm/drop_caches', '1');
  } catch {
    // not allowed here: reads are then served from the page cache more often
  }
}

const FAULTS: ReadonlyArray<[string, Fault]> = [
  ['503', { kind: 'status', status: 503 }],
  ['429 Retry-After', { kind: 'status', status: 429, retryAfter: '1' }],
  ['reset mid-body', { kind: 'reset-mid-body' }],
  ['truncated body', { kind: 'truncate' }],
  ['stalled body', { kind: 'stall', afterBytes: 1000 }],
  ['flipped byte in 206', { kind: 'corrupt' }],
  ['Range ignored', { kind: 'ignore-range' }],
];

/** SOAK_FAULTS narrows the kinds (names, comma-separated), for chasing one. */
const only = process.env.SOAK_FAULTS?.split(',');
const KINDS = only === undefined ? FAULTS : FAULTS.filter(([name]) => only.includes(name));
const GONE = only === undefined || only.includes('registry gone');

describe('soak', () => {
  it(`32 readers verify every byte for ${SECONDS} s under random registry faults: no wrong bytes, every file right afterwards, resources bounded`, async () => {
    const r = rng(SEED);
    const scale = MB / 24;
    const specs: Spec[][] = [
      [{ name: 'etc/', type: 'dir' }, ...Array.from({ length: 200 }, (_, i) => ({ name: `etc/small${i}`, body: bytes(r, int(r, 100, 20_000)) }))],
      [{ name: 'lib/', type: 'dir' }, ...Array.from({ length: Math.round(30 * scale) }, (_, i) => ({ name: `lib/mid${i}`, body: bytes(r, int(r, 64 << 10, 640 << 10)) }))],
      [{ name: 'data/', type: 'dir' }, ...Array.from({ length: Math.round(8 * scale) }, (_, i) => ({ name: `data/big${i}`, body: bytes(r, int(r, 1 << 20, 3 << 20)) }))],
    ];
    const files = specs.flat().filter((s) => s.body !== undefined).map((s) => ({
      path: s.name, size: (s.body as Buffer).length, sha256: createHash('sha256').update(s.body as Buffer).digest('hex'),
    }));
    const total = files.reduce((n, f) => n + f.size, 0);
    let served: ServedImage | undefined;
    let mount: TestMount | undefined;
    try {
      served = await serveImage('soak/img', specs.map((s) => entries(s)), { chunkSize: 512 << 10, compressionLevel: 1 });
      const { proxy } = served;
      const root = join(served.dir, 'root');
      mkdirSync(root);
      // Chunk caches (disk and memory) smaller than the image keep chunks being fetched again.
      mount = await mountDaemon(['--root', root, '--cache-size', `${Math.max(8, Math.round(MB / 4))}M`, '--cache-memory', `${Math.max(4, Math.round(MB / 8))}M`, '--log-level', 'warn', served.ref], join(served.dir, 'mnt'));
      const pid = mount.pid;
      const t0 = Date.now();
      const deadline = t0 + SECONDS * 1000;
      const samples: Sample[] = [];
      let current = 'none';
      let downOnce = false;
      const tick = setInterval(() => {
        dropPageCache();
        const s = sample(pid, t0, current);
        if (s !== undefined) samples.push(s);
      }, 1000);
      // A new fault every 3 s, each request faulted with probability 1/4; once, the registry goes away for 2 s.
      const totals = { requests: 0, faults: 0, byKind: {} as Record<string, number> };
      // reset() clears the proxy's counters with its faults: they are added up first.
      const resetFaults = (): void => {
        totals.requests += proxy.stats.requests;
        totals.faults += proxy.stats.faults;
        totals.byKind[current] = (totals.byKind[current] ?? 0) + proxy.stats.faults;
        proxy.reset();
      };
      const faulting = (async () => {
        while (Date.now() < deadline - 1000) {
          resetFaults();
          if (!downOnce && GONE && Date.now() > t0 + (SECONDS * 1000) / 2) {
            downOnce = true;
            current = 'registry gone';
            proxy.setDown(true);
            await new Promise((res) => setTimeout(res, 2000));
            proxy.setDown(false);
            continue;
          }
          const [name, fault] = pick(r, KINDS);
          current = name;
          proxy.inject(fault, 1e9, /\/v2\//, { probability: 0.25 });
          await new Promise((res) => setTimeout(res, 3000));
        }
        resetFaults();
        current = 'none';
      })();
      // Large files come up as often as small ones, so reads keep missing the caches.
      const weighted = files.flatMap((f) => Array<typeof f>(Math.max(1, Math.round(f.size / (128 << 10)))).fill(f));
      let counts: Counts[];
      try {
        counts = await runReaders(served.dir, mount.mountpoint, weighted, deadline);
      } finally {
        await faulting;
        clearInterval(tick);
      }
      const sum = counts.reduce((a, c) => ({
        ok: a.ok + c.ok, eio: a.eio + c.eio, wrong: a.wrong + c.wrong, short: a.short + c.short, reads: a.reads + c.reads, maxMs: Math.max(a.maxMs, c.maxMs),
        errors: Object.fromEntries([...new Set([...Object.keys(a.errors), ...Object.keys(c.errors)])].map((k) => [k, (a.errors[k] ?? 0) + (c.errors[k] ?? 0)])),
      }));
      // The faults are over: every file reads right, from the cache or fetched again.
      dropPageCache();
      let afterBad = 0;
      for (const f of files) {
        try {
          // Not readFileSync: the fault proxy runs on this process's event loop.
          const got = await readFile(join(mount.mountpoint, f.path));
          if (createHash('sha256').update(got).digest('hex') !== f.sha256) afterBad++;
        } catch (err) {
          afterBad++;
          console.log(`# after the faults: ${f.path}: ${(err as Error).message}`);
          if (afterBad >= 3) break;
        }
      }
      const logText = readdirSync(join(root, 'logs')).map((l) => readFileSync(join(root, 'logs', l), 'utf8')).join('');
      const bugs = logText.split('\n').filter((l) => /unhandled rejection/.test(l));
      if (afterBad > 0 || sum.wrong > 0 || bugs.length > 0) {
        // What the server said about it, for the failure's report.
        for (const log of readdirSync(join(root, 'logs'))) {
          const lines = readFileSync(join(root, 'logs', log), 'utf8').split('\n').filter((l) => /"level":(40|50|60)|rror/.test(l));
          for (const l of lines.slice(-15)) console.log(`# ${l.slice(0, 600)}`);
          if (process.env.SOAK_LOG !== undefined) writeFileSync(process.env.SOAK_LOG, readFileSync(join(root, 'logs', log)));
        }
      }
      const last = sample(pid, t0, 'after');
      if (last !== undefined) samples.push(last);
      const peak = { rssMiB: Math.max(...samples.map((s) => s.rssMiB)), fds: Math.max(...samples.map((s) => s.fds)), threads: Math.max(...samples.map((s) => s.threads)) };
      const result = {
        seed: SEED, seconds: SECONDS, imageBytes: total, files: files.length, readers: PROCESSES * PER_PROCESS,
        reads: sum, faults: totals.byKind, injected: totals.faults, requests: totals.requests, afterFaults: { wrongFiles: afterBad },
        peak, curve: samples,
      };
      if (process.env.SOAK_JSON !== undefined) writeFileSync(process.env.SOAK_JSON, `${JSON.stringify(result, null, 2)}\n`);
      console.log(`# soak seed ${SEED}: ${sum.reads} reads: ${sum.ok} right, ${sum.eio} EIO, ${sum.wrong} wrong, ${sum.short} short, other ${JSON.stringify(sum.errors)}; slowest ${(sum.maxMs / 1000).toFixed(1)} s; ${totals.faults} faults in ${totals.requests} requests (${JSON.stringify(totals.byKind)}); peak RSS ${peak.rssMiB} MiB, ${peak.fds} fds, ${peak.threads} threads`);
      assert.deepEqual(bugs, [], 'no rejection went unheard');
      assert.equal(sum.wrong, 0, 'no wrong bytes, ever');
      assert.equal(sum.short, 0, 'no short reads');
      assert.ok(sum.ok > 0, 'reads got through');
      assert.equal(afterBad, 0, 'every file reads right once the faults stop');
      assert.ok(peak.rssMiB < 1024, `RSS stayed bounded (${peak.rssMiB} MiB)`);
      assert.ok(peak.fds < 512, `descriptors stayed bounded (${peak.fds})`);
      assert.ok(peak.threads < 64, `threads stayed bounded (${peak.threads})`);
    } finally {
      await mount?.stop();
      await served?.stop();
    }
  });
});
