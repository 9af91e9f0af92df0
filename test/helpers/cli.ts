// Runs the built CLI as a person would, capturing stdout (bytes), stderr and the exit code.
import { spawn } from 'node:child_process';
import { cliPath, launcherPath } from './paths.js';

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

/**
 * Through the shell launcher people run (`stargzfs`), or, with `node: true` or node
 * arguments, the bundle under node directly (its own `mount --daemon` launcher).
 */
export function runCli(args: readonly string[], opts: { env?: NodeJS.ProcessEnv; nodeArgs?: readonly string[]; node?: boolean; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const direct = opts.node === true || opts.nodeArgs !== undefined;
    const env = { ...(opts.env ?? process.env), STARGZFS_NODE: process.execPath };
    const child = direct
      ? spawn(process.execPath, [...(opts.nodeArgs ?? []), cliPath, ...args], { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] })
      : spawn(launcherPath, args, { env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString('utf8') }));
  });
}

export async function cliJson<T>(args: readonly string[]): Promise<T> {
  const r = await runCli(args);
  if (r.code !== 0) throw new Error(`stargzfs ${args.join(' ')} exited ${r.code}: ${r.stderr}`);
  return JSON.parse(r.stdout.toString('utf8')) as T;
}
