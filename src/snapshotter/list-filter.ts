// containerd's filter strings for List (CD/filters/parser.go), as far as a snapshotter needs
// them: `name`, `parent`, `kind` and `labels.<key>` (a quoted key allowed) with `==`, `!=`
// or presence, comma-separated selectors all of which must match, any filter of the list
// matching. containerd filters again what List sends it, so sending too much is harmless and
// sending too little loses snapshots: whatever this does not understand (`~=` regexps,
// /…/ or |…| quoting, unusual escapes, a malformed filter) matches everything.

export interface Filterable {
  readonly name: string;
  readonly parent: string;
  /** containerd's Kind numbers: VIEW=1, ACTIVE=2, COMMITTED=3. */
  readonly kind: number;
  readonly labels: Readonly<Record<string, string>>;
}

type Predicate = (info: Filterable) => boolean;

interface Selector {
  readonly path: readonly string[];
  readonly op: 'present' | '==' | '!=';
  readonly value: string;
}

const KIND_NAMES: Readonly<Record<number, string>> = { 1: 'view', 2: 'active', 3: 'committed' };
const ALL: Predicate = () => true;

/** One predicate for a List request's filters: any of them may match; none at all matches everything. */
export function listFilter(filters: readonly string[]): Predicate {
  const preds = filters.map(parseFilter);
  if (preds.length === 0 || preds.includes(ALL)) return ALL;
  return (info) => preds.some((p) => p(info));
}

/** The field as containerd's adaptSnapshot (CD/snapshots/storage/bolt.go) gives it: value and presence. */
function field(info: Filterable, path: readonly string[]): { value: string; present: boolean } {
  switch (path[0]) {
    case 'kind': {
      const k = KIND_NAMES[info.kind];
      return k !== undefined ? { value: k, present: true } : { value: '', present: false };
    }
    case 'name':
      return { value: info.name, present: true };
    case 'parent':
      return { value: info.parent, present: true };
    case 'labels': {
      const key = path.slice(1).join('.');
      return Object.hasOwn(info.labels, key) ? { value: info.labels[key] as string, present: true } : { value: '', present: false };
    }
    default:
      return { value: '', present: false };
  }
}

function matches(s: Selector, info: Filterable): boolean {
  const f = field(info, s.path);
  if (s.op === 'present') return f.present;
  if (s.op === '==') return f.present && f.value === s.value;
  return f.value !== s.value;
}

function parseFilter(text: string): Predicate {
  const selectors = parseSelectors(text);
  if (selectors === undefined || selectors.length === 0) return ALL;
  return (info) => selectors.every((s) => matches(s, info));
}

const isSpace = (c: string | undefined): boolean => c !== undefined && /\s/.test(c);
const isFieldChar = (c: string | undefined): boolean => c !== undefined && /[A-Za-z0-9_]/.test(c);
const GO_ESCAPES: Readonly<Record<string, string>> = { a: '\x07', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v', '\\': '\\', '"': '"' };

/** The selectors of one filter, or undefined for anything this parser does not fully understand. */
function parseSelectors(text: string): Selector[] | undefined {
  let i = 0;
  const skipSpace = (): void => {
    while (isSpace(text[i])) i++;
  };
  // A Go double-quoted string with the simple escapes; anything rarer is "not understood".
  const quoted = (): string | undefined => {
    let out = '';
    for (i++; i < text.length; i++) {
      const c = text[i] as string;
      if (c === '"') {
        i++;
        return out;
      }
      if (c === '\n') return undefined;
      if (c === '\\') {
        const e = GO_ESCAPES[text[++i] ?? ''];
        if (e === undefined) return undefined;
        out += e;
      } else out += c;
    }
    return undefined;
  };
  const fieldName = (): string | undefined => {
    skipSpace();
    if (text[i] === '"') return quoted();
    const start = i;
    while (isFieldChar(text[i])) i++;
    return i > start ? text.slice(start, i) : undefined;
  };

  const out: Selector[] = [];
  for (;;) {
    const path: string[] = [];
    for (;;) {
      const name = fieldName();
      if (name === undefined) return undefined;
      path.push(name);
      skipSpace();
      if (text[i] !== '.') break;
      i++;
    }
    skipSpace();
    let op: Selector['op'] = 'present';
    let value = '';
    const two = text.slice(i, i + 2);
    if (two === '==' || two === '!=') {
      op = two;
      i += 2;
      skipSpace();
      const c = text[i];
      if (c === '"') {
        const v = quoted();
        if (v === undefined) return undefined;
        value = v;
      } else {
        // containerd's scanner reads these as quotes, separators or operators, not as a value's start.
        if (c === undefined || '/|.,=!~'.includes(c)) return undefined;
        const start = i;
        while (i < text.length && text[i] !== ',' && !isSpace(text[i])) i++;
        value = text.slice(start, i);
      }
    } else if (i < text.length && text[i] !== ',') {
      return undefined;
    }
    out.push({ path, op, value });
    skipSpace();
    if (i >= text.length) return out;
    if (text[i] !== ',') return undefined;
    i++;
  }
}
