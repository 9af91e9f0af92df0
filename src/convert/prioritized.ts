// The prioritized-file list `convert --prioritize` takes, in any of the forms people
// have: one path per line (`stargzfs profile export`), our JSON export
// (`profile export --json`: { entries: [{ path }] }), or JSON lines with a "path" field
// (ctr-remote's --estargz-record-in records). Paths become layer paths (no leading
// slash, cleaned); order is kept and repeats dropped.
import { ConfigError } from '../errors.js';
import { cleanName } from '../toc/names.js';

export function parsePrioritized(text: string, what: string): string[] {
  const trimmed = text.trim();
  let raw: unknown[];
  if (trimmed.startsWith('{') && !trimmed.includes('\n{')) {
    const doc = parse(trimmed, what) as { entries?: unknown };
    if (!Array.isArray(doc.entries)) throw new ConfigError('prioritize', `${what}: a JSON profile needs an "entries" list`);
    raw = doc.entries.map((e) => (e as { path?: unknown }).path);
  } else if (trimmed.startsWith('{')) {
    raw = trimmed.split('\n').filter((l) => l.trim() !== '').map((l, i) => (parse(l, `${what} line ${i + 1}`) as { path?: unknown }).path);
  } else {
    raw = text.split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  }
  const out: string[] = [];
  const seen = new Set<string>();
  for (const [i, p] of raw.entries()) {
    if (typeof p !== 'string') throw new ConfigError('prioritize', `${what}: entry ${i + 1} has no path`);
    const clean = cleanName(p);
    if (clean === '' || seen.has(clean)) continue;
    seen.add(clean);
    out.push(clean);
  }
  return out;
}

function parse(text: string, what: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError('prioritize', `${what} is not valid JSON: ${(err as Error).message}`);
  }
}
