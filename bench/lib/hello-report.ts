// The start-up benchmark's report: a markdown table per network profile (median time,
// spread, requests and bytes, the speed-up over the full pull of the same run) and an
// SVG chart of the median times, one panel per profile, a bar group per scenario.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ReportRow {
  readonly profile: string;
  readonly scenario: string;
  readonly image: string;
  readonly variant: string;
  /** Median wall time from the command's start to the workload's end. */
  readonly seconds: number;
  readonly min: number;
  readonly max: number;
  /** Median time until the tree was there (mount served, or pull extracted). */
  readonly readySeconds: number;
  readonly requests: number;
  readonly bytes: number;
  readonly runs: readonly number[];
}

export interface HelloResults {
  readonly date: string;
  readonly machine: { readonly cpus: number; readonly model?: string | undefined; readonly node: string };
  readonly runs: number;
  readonly profiles: ReadonlyArray<{ readonly name: string; readonly rttMs: number; readonly bitsPerSecond: number }>;
  readonly scenarios: ReadonlyArray<{ readonly name: string; readonly image: string; readonly what: string }>;
  readonly images: Readonly<Record<string, { readonly files: number; readonly tarBytes: number; readonly gzipBytes: number; readonly esgzBytes: number }>>;
  readonly rows: readonly ReportRow[];
  /** Anything a reader of the numbers must know about this run. */
  readonly note?: string | undefined;
}

const VARIANTS = ['lazy', 'landmark', 'learned', 'lazy + service', 'landmark + service', 'learned + service', 'full pull'] as const;
const COLORS: Record<string, string> = {
  lazy: '#4e79a7', landmark: '#59a14f', learned: '#f28e2b', 'lazy + service': '#a0cbe8', 'landmark + service': '#8cd17d', 'learned + service': '#ffbe7d', 'full pull': '#9c9c9c',
};
const mb = (n: number): string => (n / 1e6).toFixed(1);

/** Issue 7's targets, on the 20 ms / 200 Mbit/s profile, cold; each also at least 5× the full pull. */
const TARGET_PROFILE = '20ms-200mbit';
const TARGETS: ReadonlyArray<{ readonly what: string; readonly scenario: string; readonly variants: readonly string[]; readonly seconds: number }> = [
  { what: 'first read of /etc/os-release', scenario: 'os-release', variants: ['lazy', 'landmark', 'learned'], seconds: 0.2 },
  { what: '200 .py files', scenario: 'py200', variants: ['lazy', 'landmark', 'learned'], seconds: 0.7 },
  { what: 'python3 start without a landmark (lazy or learned)', scenario: 'python3', variants: ['lazy', 'learned'], seconds: 0.6 },
  { what: 'python3 start with a landmark', scenario: 'python3', variants: ['landmark'], seconds: 0.4 },
];

/** The targets table: the best variant that qualifies, with and without the service, against the target and the pull. */
function targets(r: HelloResults): string[] {
  const rows = r.rows.filter((x) => x.profile === TARGET_PROFILE);
  if (rows.length === 0) return [];
  const out = [
    '', `## Targets (${TARGET_PROFILE}, cold): met or not`, '',
    '| target | best on its own | best through the service | vs pull (with / without) |', '| --- | --- | --- | --- |',
  ];
  for (const t of TARGETS) {
    const pull = rows.find((x) => x.scenario === t.scenario && x.variant === 'full pull');
    const best = (names: readonly string[]): ReportRow | undefined =>
      rows.filter((x) => x.scenario === t.scenario && names.includes(x.variant)).sort((a, b) => a.seconds - b.seconds)[0];
    const cold = best(t.variants);
    const served = best(t.variants.map((v) => `${v} + service`));
    const ratio = (c: ReportRow | undefined): number => (c !== undefined && pull !== undefined ? pull.seconds / c.seconds : Number.NaN);
    const cell = (c: ReportRow | undefined): string =>
      c === undefined ? '–' : `${c.seconds.toFixed(2)} s (${c.variant}) ${c.seconds <= t.seconds && ratio(c) >= 5 ? 'met' : 'missed'}`;
    const ratios = [served, cold].map((c) => (Number.isFinite(ratio(c)) ? `${ratio(c).toFixed(1)}×` : '–')).join(' / ');
    out.push(`| ${t.what} ≤ ${t.seconds} s | ${cell(cold)} | ${cell(served)} | ${ratios} |`);
  }
  return out;
}

export function markdown(r: HelloResults): string {
  const lines = [
    `# Start-up benchmark (${r.date.slice(0, 10)})`,
    '',
    `${r.machine.cpus} cores (${r.machine.model ?? '?'}), Node ${r.machine.node}; ${r.runs} cold runs per cell (new state root, page cache dropped), median, with min–max.`,
    'Time is from the command\'s start (`stargzfs mount --daemon`, or the pull: manifest, config and blob through the same proxy, `tar -xz`) to the workload\'s end; "ready" is when the tree was there.',
    'Variants: **lazy** (eStargz, no prefetch), **landmark** (eStargz converted by `stargzfs convert --prioritize` with the workload\'s recorded profile), **learned** (eStargz without landmark, a second mount of the same reference on the same machine: meta.db — the layer index, the recorded profile and the image the reference named — kept, the chunk cache cleared), **full pull** (the plain gzip image). Background fetch is off in the lazy variants. **+ service**: the same, with `stargzfs serve` running on the state root before the clock starts (holding no image state yet): the command hands the mount to it instead of starting Node and loading the CLI.',
    ...(r.note !== undefined ? ['', `Note: ${r.note}.`] : []),
    '',
    '| image | entries | tar | gzip | eStargz |',
    '| --- | --- | --- | --- | --- |',
    ...Object.entries(r.images).map(([n, i]) => `| ${n} | ${i.files} | ${mb(i.tarBytes)} MB | ${mb(i.gzipBytes)} MB | ${mb(i.esgzBytes)} MB |`),
    '',
    '| scenario | what |',
    '| --- | --- |',
    ...r.scenarios.map((s) => `| ${s.name} (${s.image}) | ${s.what} |`),
    ...targets(r),
  ];
  for (const p of r.profiles) {
    lines.push('', `## ${p.name}: ${p.rttMs} ms per request, ${p.bitsPerSecond > 0 ? `${p.bitsPerSecond / 1e6} Mbit/s` : 'unlimited'}`, '');
    lines.push(`| scenario | ${VARIANTS.join(' | ')} | best vs pull (on its own) |`, `| --- | ${VARIANTS.map(() => '---').join(' | ')} | --- |`);
    for (const s of r.scenarios) {
      const cells = VARIANTS.map((v) => r.rows.find((x) => x.profile === p.name && x.scenario === s.name && x.variant === v));
      const pull = cells[VARIANTS.length - 1];
      const bestOf = (cs: ReadonlyArray<ReportRow | undefined>): number => Math.min(...cs.map((c) => c?.seconds ?? Infinity));
      const best = bestOf(cells.slice(0, -1));
      const bestCold = bestOf(cells.slice(0, 3));
      const fmt = (c: ReportRow | undefined): string =>
        c === undefined ? '–' : `${c.seconds.toFixed(2)} s (${c.min.toFixed(2)}–${c.max.toFixed(2)}), ready ${c.readySeconds.toFixed(2)} s, ${c.requests} req, ${mb(c.bytes)} MB`;
      const ratio = (b: number): string => (pull !== undefined && Number.isFinite(b) ? `${(pull.seconds / b).toFixed(1)}×` : '–');
      lines.push(`| ${s.name} | ${cells.map(fmt).join(' | ')} | ${ratio(best)} (${ratio(bestCold)}) |`);
    }
  }
  return `${lines.join('\n')}\n`;
}

export function svg(r: HelloResults): string {
  const W = 900;
  const rowH = 14;
  const groupGap = 10;
  const panelPad = 40;
  const left = 110;
  const panels: string[] = [];
  let y = 30;
  for (const p of r.profiles) {
    const rows = r.rows.filter((x) => x.profile === p.name);
    const max = Math.max(0.001, ...rows.map((x) => x.max));
    const scale = (W - left - 90) / max;
    panels.push(`<text x="10" y="${y}" font-size="14" font-weight="bold">${p.name}</text>`);
    y += 12;
    for (const s of r.scenarios) {
      const top = y;
      for (const v of VARIANTS) {
        const c = rows.find((x) => x.scenario === s.name && x.variant === v);
        if (c === undefined) continue;
        const w = Math.max(1, c.seconds * scale);
        panels.push(
          `<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${rowH - 3}" fill="${COLORS[v]}"><title>${s.name} ${v}: ${c.seconds} s</title></rect>`,
          `<line x1="${(left + c.min * scale).toFixed(1)}" x2="${(left + c.max * scale).toFixed(1)}" y1="${y + (rowH - 3) / 2}" y2="${y + (rowH - 3) / 2}" stroke="#222" stroke-width="1"/>`,
          `<text x="${(left + w + 4).toFixed(1)}" y="${y + rowH - 4}" font-size="10">${c.seconds.toFixed(2)} s</text>`,
        );
        y += rowH;
      }
      panels.push(`<text x="${left - 6}" y="${(top + y) / 2 + 4}" font-size="11" text-anchor="end">${s.name}</text>`);
      y += groupGap;
    }
    y += panelPad - groupGap;
  }
  const legend = VARIANTS.map((v, i) => `<rect x="${10 + i * 125}" y="8" width="10" height="10" fill="${COLORS[v]}"/><text x="${10 + i * 125 + 14}" y="17" font-size="11">${v}</text>`).join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${y}" font-family="sans-serif"><rect width="100%" height="100%" fill="white"/>${legend}${panels.join('')}</svg>\n`;
}

export function writeReport(dir: string, r: HelloResults): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'hello.json'), `${JSON.stringify(r, null, 2)}\n`);
  writeFileSync(join(dir, 'hello.md'), `${markdown(r)}\n![time per scenario and variant](hello.svg)\n`);
  writeFileSync(join(dir, 'hello.svg'), svg(r));
}
