// How long readers wait while a mount's server is replaced: runs the e2e test
// test/e2e/crash-survival.test.ts (32 readers of the reference converter's esgz-chunk64k
// image through a real registry; kill -9 of the server three times, the first across a
// cold fetch; `mount --upgrade`; the service killed and upgraded) BENCH_RUNS times and
// reports, per event, the longest read in flight while the server was replaced and how
// long the replacement took: median and worst over the runs. The target is 1 s. Beside
// them, the baseline of the same run: the longest read while no server was being replaced
// (the readers' first second, all cold, left out), and a run where no server is replaced
// at all. JSON on
// stdout (`make bench` saves it as bench/results/crash-survival.json).
//
//   BENCH_RUNS=5
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const RUNS = Number(process.env['BENCH_RUNS'] ?? 5);
const testFile = join(fileURLToPath(new URL('.', import.meta.url)), '../test/e2e/crash-survival.test.js');
const samples: Record<string, number[]> = {};
const add = (name: string, v: number): void => void (samples[name] ??= []).push(v);
const nums = (s: string | undefined): number[] => (s ?? '').split(' / ').map(Number).filter((n) => Number.isFinite(n));
let failed = 0;

for (let run = 0; run < RUNS; run++) {
  const r = spawnSync(process.execPath, ['--test', '--test-timeout=300000', testFile], { encoding: 'utf8', maxBuffer: 1 << 26 });
  const out = `${r.stdout}${r.stderr}`;
  if (r.status !== 0) {
    failed++;
    // What failed, for the record: the failing subtests' lines and their errors.
    process.stderr.write(`${out.split('\n').filter((l) => /not ok|error:|Error|expected|actual|first:/.test(l)).slice(0, 40).join('\n')}\n`);
  }
  const base = /baseline: \d+ reads; longest read after the first second (\d+) ms; longest overall (\d+) ms/.exec(out);
  if (base !== null) {
    add('no server replaced: longest read after the first second (ms)', Number(base[1]));
    add('no server replaced: longest read overall (ms)', Number(base[2]));
  }
  const kill = /kill -9 ×3: \d+ reads; the cold read across the first kill (\d+) ms; longest read in flight while a server was replaced ([\d /]+) ms \(replaced in ([\d /]+) ms\); longest with no server being replaced (\d+) ms/.exec(out);
  if (kill !== null) {
    add('mount kill -9: the cold read across the kill (ms)', Number(kill[1]));
    nums(kill[2]).forEach((v, i) => add(`mount kill -9 #${i + 1}: longest read in flight (ms)`, v));
    nums(kill[3]).forEach((v, i) => add(`mount kill -9 #${i + 1}: replaced in (ms)`, v));
    add('mount kill -9 run, baseline: longest read with no server being replaced (ms)', Number(kill[4]));
  }
  const up = /upgrade: \d+ reads; longest read in flight during the upgrade ([\d /]+) ms \(the upgrade took ([\d /]+) ms\); longest with no server being replaced (\d+) ms/.exec(out);
  if (up !== null) {
    add('mount --upgrade: longest read in flight (ms)', nums(up[1])[0] ?? NaN);
    add('mount --upgrade: took (ms)', nums(up[2])[0] ?? NaN);
    add('mount --upgrade run, baseline: longest read with no server being replaced (ms)', Number(up[3]));
  }
  const svc = /service: \d+ reads; longest read in flight during the kill -9 \/ the upgrade ([\d /]+) ms \(replaced in ([\d /]+) ms\); longest with no server being replaced (\d+) ms/.exec(out);
  if (svc !== null) {
    add('service run, baseline: longest read with no server being replaced (ms)', Number(svc[3]));
    const [k, u] = nums(svc[1]);
    const [kr, ur] = nums(svc[2]);
    add('service kill -9: longest read in flight (ms)', k ?? NaN);
    add('service kill -9: replaced in (ms)', kr ?? NaN);
    add('service SIGHUP upgrade: longest read in flight (ms)', u ?? NaN);
    add('service SIGHUP upgrade: took (ms)', ur ?? NaN);
  }
  process.stderr.write(`run ${run + 1}/${RUNS}: ${r.status === 0 ? 'pass' : 'FAIL'}\n`);
}

const median = (a: number[]): number => {
  const s = [...a].sort((x, y) => x - y);
  return s[Math.floor((s.length - 1) / 2)] as number;
};
const rows = Object.entries(samples).map(([name, v]) => ({ name, median: median(v), worst: Math.max(...v), runs: v }));
for (const r of rows) process.stderr.write(`${r.name}: median ${r.median}, worst ${r.worst}\n`);
process.stdout.write(`${JSON.stringify({ bench: 'crash-survival', date: new Date().toISOString(), runs: RUNS, failedRuns: failed, targetMs: 1000, rows }, null, 2)}\n`);
