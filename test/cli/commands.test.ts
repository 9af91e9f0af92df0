// The commands as a person runs them: output, exit codes, error messages.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.js';
import { fixturesDir, repoRoot } from '../helpers/paths.js';
import { tempDir } from '../helpers/tmp.js';

const ref = `oci:${join(fixturesDir(), 'esgz', 'oci')}`;
const expected = (path: string): string => {
  const line = readFileSync(join(fixturesDir(), 'esgz', 'EXPECTED.tsv'), 'utf8').split('\n').find((l) => l.startsWith(`${path}\t`));
  return line?.split('\t')[8] ?? '';
};

describe('stargzfs commands', () => {
  let root: string;
  let cleanup: () => void;
  before(() => ({ dir: root, cleanup } = tempDir()));
  after(() => cleanup());
  const sgz = (...args: string[]) => runCli(['--root', root, ...args]);

  it('cat writes verified bytes, several files in order, following symlinks', async () => {
    const r = await sgz('cat', ref, '/files/size-9MiB+12345');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(createHash('sha256').update(r.stdout).digest('hex'), expected('files/size-9MiB+12345'));
    const two = await sgz('cat', ref, 'files/size-1', 'files/size-511');
    assert.equal(two.stdout.length, 512);
    const viaLink = await sgz('cat', ref, 'hl/big-link');
    assert.equal(createHash('sha256').update(viaLink.stdout).digest('hex'), expected('files/size-9MiB+12345'));
  });

  it('errors name the file and map to documented exit codes', async () => {
    const dir = await sgz('cat', ref, '/files');
    assert.equal(dir.code, 3);
    assert.match(dir.stderr, /file "files": is a directory \(SGZ_IS_A_DIRECTORY\)/);
    const missing = await sgz('stat', ref, '/no/such');
    assert.equal(missing.code, 3);
    assert.match(missing.stderr, /file "no": no such file or directory/);
    const usage = await sgz('ls', ref, '--no-such-option');
    assert.equal(usage.code, 2);
    const image = await sgz('ls', `oci:${root}/none`);
    assert.equal(image.code, 4);
    const registry = await sgz('ls', '--retries', '0', '127.0.0.1:1/nothing/here:tag');
    assert.equal(registry.code, 7);
    assert.match(registry.stderr, /127\.0\.0\.1:1: GET \/v2\/nothing\/here\/manifests\/tag failed/);
    const malformed = await sgz('ls', 'UPPER/case');
    assert.equal(malformed.code, 4);
    assert.match(malformed.stderr, /invalid image reference "UPPER\/case"/);
  });

  it('ls -l and stat print what a person expects', async () => {
    const ls = (await sgz('ls', '-l', ref, '/special')).stdout.toString();
    assert.match(ls, /^c\S+ +1 +0 +0 +1, 3 .* char-1-3$/m);
    assert.match(ls, /^p\S+ .* fifo$/m);
    const st = (await sgz('stat', ref, '/modes')).stdout.toString();
    assert.match(st, /Access: \(\d{4}\/d[rwx-]{9}\)/);
    const layered = (await sgz('ls', '--layer', '1', '--overlay', 'trusted', ref, '/wh')).stdout.toString();
    assert.ok(layered.split('\n').includes('delfile'), layered);
    assert.ok(!layered.includes('.wh.'), layered);
  });

  it('`npx stargzfs --help` works from the repository root', () => {
    const help = execFileSync('npx', ['--no-install', 'stargzfs', '--help'], { cwd: repoRoot, encoding: 'utf8' });
    assert.match(help, /stargzfs inspect <src>/);
    assert.match(help, /--allow-unverified/);
  });
});
