// Root filesystems for the start-up benchmark, built on this machine without internet:
// a Debian minbase by debootstrap from the configured apt mirror, one with python3
// installed into it, and one with a large file set. Kept in a cache directory between
// runs (each is rebuilt only when missing).
import { execFileSync } from 'node:child_process';
import { createCipheriv } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The first `URIs:` of the Debian sources apt uses here (deb822 or one-line format). */
export function aptMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    if (!existsSync(file)) continue;
    const text = readFileSync(file, 'utf8');
    const deb822 = /^URIs:\s*(\S+)/m.exec(text)?.[1];
    if (deb822 !== undefined) return deb822;
    const line = /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)/m.exec(text)?.[1];
    if (line !== undefined) return line;
  }
  return 'http://deb.debian.org/debian';
}

const run = (cmd: string, args: string[], log: (s: string) => void): void => {
  log(`$ ${cmd} ${args.join(' ')}`);
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'inherit'] });
};

/** A cached tree: built into DIR.tmp, renamed to DIR when complete. */
function cached(dir: string, build: (tmp: string) => void): string {
  if (existsSync(join(dir, '.stargzfs-bench-complete'))) return dir;
  const tmp = `${dir}.tmp`;
  rmSync(tmp, { recursive: true, force: true });
  build(tmp);
  writeFileSync(join(tmp, '.stargzfs-bench-complete'), '');
  rmSync(dir, { recursive: true, force: true });
  execFileSync('mv', [tmp, dir]);
  return dir;
}

export function debianMinbase(cache: string, log: (s: string) => void): string {
  return cached(join(cache, 'debian'), (tmp) => {
    run('debootstrap', ['--variant=minbase', 'bookworm', tmp, aptMirror()], log);
    // What an image build leaves out: apt's lists and caches.
    rmSync(join(tmp, 'var/cache/apt/archives'), { recursive: true, force: true });
    mkdirSync(join(tmp, 'var/cache/apt/archives/partial'), { recursive: true });
  });
}

/** A cached tree made from the Debian minbase: copied, then changed by `build`. */
function fromMinbase(cache: string, name: string, log: (s: string) => void, build: (tmp: string) => void): string {
  const base = debianMinbase(cache, log);
  return cached(join(cache, name), (tmp) => {
    // cp -a: device nodes and ownership, which fs.cp cannot copy.
    run('cp', ['-a', base, tmp], log);
    rmSync(join(tmp, '.stargzfs-bench-complete'));
    build(tmp);
  });
}

export function debianPython(cache: string, log: (s: string) => void): string {
  return fromMinbase(cache, 'python', log, (tmp) => {
    cpSync('/etc/resolv.conf', join(tmp, 'etc/resolv.conf'));
    writeFileSync(join(tmp, 'etc/apt/sources.list'), `deb ${aptMirror()} bookworm main\n`);
    run('chroot', [tmp, 'apt-get', 'update', '-q'], log);
    run('chroot', [tmp, 'apt-get', 'install', '-y', '-q', '--no-install-recommends', 'python3'], log);
    run('chroot', [tmp, 'apt-get', 'clean'], log);
    rmSync(join(tmp, 'var/lib/apt/lists'), { recursive: true, force: true });
    mkdirSync(join(tmp, 'var/lib/apt/lists/partial'), { recursive: true });
  });
}

/** Debian plus /data: one 192 MiB file and 4,000 files of 4–60 KiB, partly compressible. */
export function debianLarge(cache: string, log: (s: string) => void): string {
  return fromMinbase(cache, 'large', log, (tmp) => {
    // Every 4 MiB different (the chunk cache stores a repeated chunk once, which would
    // make the file look smaller than it is): half AES-CTR keystream of a fixed key (the
    // same bytes every build, incompressible), half text numbered by its offset.
    const keystream = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 0));
    const piece = (i: number): Buffer => {
      let text = '';
      for (let n = 0; text.length < 2 << 20; n++) text += `block ${i} line ${n}: the quick brown fox jumps over the lazy dog\n`;
      return Buffer.concat([Buffer.from(text).subarray(0, 2 << 20), keystream.update(Buffer.alloc(2 << 20))]);
    };
    const block = Buffer.concat([piece(-2), piece(-1)]);
    let seed = 42;
    const rand = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
    mkdirSync(join(tmp, 'data/files'), { recursive: true });
    const big: Buffer[] = [];
    for (let i = 0; i < 48; i++) big.push(piece(i));
    writeFileSync(join(tmp, 'data/large.bin'), Buffer.concat(big));
    for (let i = 0; i < 4000; i++) {
      const size = 4096 + Math.floor(rand() * 56 * 1024);
      const off = Math.floor(rand() * (block.length - size));
      mkdirSync(join(tmp, `data/files/d${i % 40}`), { recursive: true });
      writeFileSync(join(tmp, `data/files/d${i % 40}/f${i}.dat`), block.subarray(off, off + size));
    }
  });
}
