// `mount <src> <mountpoint> …` read without the CLI's parser, for the small entry
// (bin.ts): enough to start a --daemon server, or a mount's first requests, before the
// CLI's modules load. Anything this cannot read plainly is left to the full CLI.

/** Options of `mount` and the global ones that take a value (the rest are flags). */
const VALUED = new Set(['root', 'platform', 'log-level', 'log-format', 'timeout', 'retries', 'read-timeout', 'stall-timeout', 'mirror', 'cache-size', 'cache-memory', 'background-bandwidth', 'max-toc-bytes', 'layer', 'metrics']);

export interface PlainMount {
  readonly src: string;
  readonly mountpoint: string;
  readonly root: string | undefined;
  readonly daemon: boolean;
  /** Every option given, by name, with its value (true for a flag; false for --no-X or X=false). */
  readonly options: ReadonlyMap<string, string | boolean>;
}

/** `mount <src> <mountpoint> …` read plainly; undefined for anything else. */
export function plainMount(args: readonly string[]): PlainMount | undefined {
  const positional: string[] = [];
  const options = new Map<string, string | boolean>();
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return undefined;
    if (!a.startsWith('-')) {
      positional.push(a);
      continue;
    }
    const [name, inline] = a.replace(/^--?/, '').split(/=(.*)/s) as [string, string | undefined];
    if (name === 'help' || name === 'h' || name === 'version') return undefined;
    if (VALUED.has(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) return undefined;
      options.set(name, value);
    } else if (/^no-[a-z][a-z-]*$/.test(name) && inline === undefined) {
      options.set(name.slice(3), false);
    } else if (/^[a-z][a-z-]*$/.test(name) && (inline === undefined || inline === 'true' || inline === 'false')) {
      options.set(name, inline !== 'false');
    } else {
      return undefined;
    }
  }
  if (positional.length !== 3 || positional[0] !== 'mount') return undefined;
  const root = options.get('root');
  return { src: positional[1] as string, mountpoint: positional[2] as string, root: typeof root === 'string' ? root : undefined, daemon: options.get('daemon') === true, options };
}

/** `mount … --daemon` read plainly: its mountpoint and --root; undefined for anything else. */
export function plainDaemonMount(args: readonly string[]): { mountpoint: string; root: string | undefined } | undefined {
  const m = plainMount(args);
  return m?.daemon === true ? { mountpoint: m.mountpoint, root: m.root } : undefined;
}

/** Options that change where or how a mount's first requests go: with any of them, no early fetch. */
const CHANGES_FIRST_REQUESTS = ['mirror', 'insecure', 'max-toc-bytes', 'tail-bytes'];

/** A registry mount whose first requests can go out before the CLI loads: its reference, scheme, and which prefetch it runs. */
export function earlyFetchable(m: PlainMount): { ref: string; plainHttp: boolean; prefetch: boolean; learned: boolean } | undefined {
  if (/^(oci|oci-archive|docker-archive|dir):/.test(m.src)) return undefined;
  if (CHANGES_FIRST_REQUESTS.some((o) => m.options.has(o))) return undefined;
  return { ref: m.src, plainHttp: m.options.get('plain-http') === true, prefetch: m.options.get('prefetch') !== false, learned: m.options.get('learned-prefetch') !== false };
}
