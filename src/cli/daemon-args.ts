// `mount … --daemon` read without the CLI's parser, for the small entry (bin.ts): only
// its mountpoint and --root are needed to start the server in the background. Anything
// this cannot read plainly is left to the full CLI.

/** Options of `mount` and the global ones that take a value (the rest are flags). */
const VALUED = new Set(['root', 'platform', 'log-level', 'log-format', 'timeout', 'retries', 'mirror', 'cache-size', 'background-bandwidth', 'max-toc-bytes', 'layer', 'metrics']);

/** `mount <src> <mountpoint> … --daemon`, read plainly: its mountpoint and --root; undefined for anything else. */
export function plainDaemonMount(args: readonly string[]): { mountpoint: string; root: string | undefined } | undefined {
  const positional: string[] = [];
  let root: string | undefined;
  let daemon = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string;
    if (a === '--') return undefined;
    if (!a.startsWith('-')) {
      positional.push(a);
      continue;
    }
    const [name, inline] = a.replace(/^--?/, '').split(/=(.*)/s) as [string, string | undefined];
    if (name === 'daemon') daemon = inline === undefined || inline === 'true';
    else if (name === 'help' || name === 'h' || name === 'version') return undefined;
    else if (VALUED.has(name)) {
      const value = inline ?? args[++i];
      if (value === undefined) return undefined;
      if (name === 'root') root = value;
    } else if (!/^(no-)?[a-z][a-z-]*$/.test(name)) return undefined;
  }
  if (!daemon || positional.length !== 3 || positional[0] !== 'mount') return undefined;
  return { mountpoint: positional[2] as string, root };
}
