// Name normalization (ESTARGZ.md §4.5 step 1): clean(name) = path.Clean("/" + name)
// without the leading slash. `./`, `/` and `` become the root (""); `..` cannot escape.

export function cleanName(name: string): string {
  // Fast path for names that are already clean but for a trailing slash (almost all).
  if (name !== '' && name[0] !== '/' && name[0] !== '.' && !name.includes('//') && !name.includes('/.')) {
    return name.endsWith('/') ? name.slice(0, -1) : name;
  }
  const out: string[] = [];
  for (const part of name.split('/')) {
    if (part === '' || part === '.') continue;
    if (part === '..') out.pop();
    else out.push(part);
  }
  return out.join('/');
}

export function dirname(clean: string): string {
  const i = clean.lastIndexOf('/');
  return i < 0 ? '' : clean.slice(0, i);
}

export function basename(clean: string): string {
  return clean.slice(clean.lastIndexOf('/') + 1);
}

export const TOC_TAR_NAME = 'stargz.index.json';
export const PREFETCH_LANDMARK = '.prefetch.landmark';
export const NO_PREFETCH_LANDMARK = '.no.prefetch.landmark';

/** Names that only mean something at a layer's root and are never shown there. */
export const HIDDEN_ROOT_NAMES: ReadonlySet<string> = new Set([TOC_TAR_NAME, PREFETCH_LANDMARK, NO_PREFETCH_LANDMARK]);

export const WHITEOUT_PREFIX = '.wh.';
export const OPAQUE_MARKER = '.wh..wh..opq';
