// The fixtures' TSV format (shared/fixtures/README.md, tools/treetsv.py), written from
// what stargzfs reports so the two can be compared line by line.
import { readFileSync } from 'node:fs';
import type { EntryInfo } from '../../src/cli/entry-info.js';

/** Escapes a value as treetsv.py does; `extra` bytes are also written as \xHH. */
export function escapeField(value: string, extra = ''): string {
  if (value === '-') return '\\x2d';
  let out = '';
  for (const ch of value) {
    const c = ch.codePointAt(0) as number;
    if (ch === '\\') out += '\\\\';
    else if (ch === '\t') out += '\\t';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (c < 0x20 || c === 0x7f || extra.includes(ch)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out;
}

export interface TreeRow {
  info: EntryInfo;
  sha256: string | null;
}

/** TSV lines for a walked tree; the inode column is derived from shared inode numbers. */
export function toTsvLines(rows: readonly TreeRow[], layer?: number): string[] {
  const byIno = new Map<number, string[]>();
  for (const r of rows) {
    if (r.info.type === 'dir') continue;
    const list = byIno.get(r.info.ino) ?? [];
    list.push(r.info.path);
    byIno.set(r.info.ino, list);
  }
  const firstPath = (ino: number): string => {
    const paths = byIno.get(ino) ?? [];
    if (paths.length < 2) return '-';
    return escapeField([...paths].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))[0] as string);
  };
  return rows.map(({ info: e, sha256 }) => {
    const xattrs = Object.keys(e.xattrs)
      .sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)))
      .map((k) => `${escapeField(k, ',=')}=${e.xattrs[k]}`)
      .join(',');
    const cols = [
      escapeField(e.path),
      e.type,
      e.mode,
      String(e.uid),
      String(e.gid),
      e.size === null ? '-' : String(e.size),
      e.mtime === null ? '-' : String(e.mtime),
      e.link === null ? '-' : escapeField(e.link),
      sha256 ?? '-',
      String(e.nlink),
      e.rdev ?? '-',
      xattrs === '' ? '-' : xattrs,
      e.type === 'dir' ? '-' : firstPath(e.ino),
    ];
    return (layer !== undefined ? [String(layer), ...cols] : cols).join('\t');
  });
}

/** Data lines of a TSV file (comments and the header dropped). */
export function readTsv(file: string, layer?: number): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '' && !l.startsWith('#'))
    .filter((l) => layer === undefined || l.startsWith(`${layer}\t`));
}

/** A readable diff of two line sets; empty when equal. */
export function diffLines(actual: readonly string[], expected: readonly string[]): string {
  const a = new Set(actual);
  const e = new Set(expected);
  const missing = expected.filter((l) => !a.has(l));
  const extra = actual.filter((l) => !e.has(l));
  if (missing.length === 0 && extra.length === 0) return '';
  return [...missing.map((l) => `- ${l}`), ...extra.map((l) => `+ ${l}`)].join('\n');
}
