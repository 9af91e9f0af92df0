// Streaming reader of the TOC JSON: walks `{"version":…, "entries":[…]}` without
// building the whole document, and hands each entry object to JSON.parse on its own
// slice. Memory stays at one entry however large the TOC is (ESTARGZ.md §4.1, §11.16).
import { TocFormatError, type ErrorContext } from '../errors.js';

const WS = new Uint8Array(256);
for (const c of [0x20, 0x09, 0x0a, 0x0d]) WS[c] = 1;

export interface TocHeader {
  version: number | undefined;
  sawEntries: boolean;
}

/**
 * Calls `onEntry` with each raw entry object, in order. Returns the top-level
 * fields it saw. Unknown top-level keys are skipped; `entries: null` is an empty layer.
 */
export function forEachTocEntry(json: Buffer, onEntry: (raw: unknown, index: number) => void, ctx: ErrorContext = {}): TocHeader {
  const fail = (msg: string, at: number): never => {
    throw new TocFormatError(`malformed TOC JSON at byte ${at}: ${msg}`, ctx);
  };
  const len = json.length;
  let p = 0;
  const ws = (): void => {
    while (p < len && WS[json[p] as number]) p++;
  };
  const expect = (c: number, what: string): void => {
    ws();
    if (json[p] !== c) fail(`expected ${what}`, p);
    p++;
  };
  // Returns the index just past the closing quote of the string starting at `start`.
  const stringEnd = (start: number): number => {
    let q = start + 1;
    for (;;) {
      q = json.indexOf(0x22, q);
      if (q < 0) fail('unterminated string', start);
      let bs = 0;
      while (json[q - 1 - bs] === 0x5c) bs++;
      if (bs % 2 === 0) return q + 1;
      q++;
    }
  };
  // Skips one JSON value starting at p (after whitespace); returns its end.
  const skipValue = (): number => {
    ws();
    const c = json[p];
    if (c === 0x22) return (p = stringEnd(p));
    if (c === 0x7b || c === 0x5b) {
      let depth = 0;
      while (p < len) {
        const d = json[p] as number;
        if (d === 0x22) {
          p = stringEnd(p);
          continue;
        }
        if (d === 0x7b || d === 0x5b) depth++;
        else if (d === 0x7d || d === 0x5d) {
          depth--;
          if (depth === 0) return ++p;
        }
        p++;
      }
      return fail('unterminated object or array', p);
    }
    const start = p;
    while (p < len && !WS[json[p] as number] && json[p] !== 0x2c && json[p] !== 0x7d && json[p] !== 0x5d) p++;
    if (p === start) fail('expected a value', p);
    return p;
  };
  const parseSlice = (start: number, end: number): unknown => {
    try {
      return JSON.parse(json.toString('utf8', start, end));
    } catch (err) {
      return fail((err as Error).message, start);
    }
  };

  const header: TocHeader = { version: undefined, sawEntries: false };
  let sawEntries = false;
  expect(0x7b, '{');
  ws();
  if (json[p] === 0x7d) p++;
  else for (;;) {
    ws();
    if (json[p] !== 0x22) fail('expected a key', p);
    const keyEnd = stringEnd(p);
    const key = parseSlice(p, keyEnd) as string;
    p = keyEnd;
    expect(0x3a, ':');
    ws();
    if (key === 'entries') {
      sawEntries = true;
      if (json[p] === 0x6e) {
        const s = p;
        if (parseSlice(s, skipValue()) !== null) fail('"entries" must be an array or null', s);
      } else {
        expect(0x5b, '[');
        ws();
        let index = 0;
        if (json[p] === 0x5d) p++;
        else {
          for (;;) {
            ws();
            if (json[p] !== 0x7b) fail('each entry must be an object', p);
            const s = p;
            const e = skipValue();
            onEntry(parseSlice(s, e), index++);
            ws();
            if (json[p] === 0x2c) {
              p++;
              continue;
            }
            if (json[p] === 0x5d) {
              p++;
              break;
            }
            fail('expected , or ] in "entries"', p);
          }
        }
      }
    } else {
      const s = p;
      const v = parseSlice(s, skipValue());
      if (key === 'version') {
        if (typeof v !== 'number') fail('"version" must be a number', s);
        header.version = v as number;
      }
    }
    ws();
    if (json[p] === 0x2c) {
      p++;
      continue;
    }
    if (json[p] === 0x7d) {
      p++;
      break;
    }
    fail('expected , or } after a top-level value', p);
  }
  ws();
  if (p !== len) fail('trailing data after the TOC object', p);
  // Go decodes a missing "entries" as a nil slice: an empty layer, like `null`.
  header.sawEntries = sawEntries;
  return header;
}
