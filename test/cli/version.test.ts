// `stargzfs --version` is this package's version from any working directory (yargs alone
// looks for a package.json upwards from the cwd).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, launcherPath, repoRoot } from '../helpers/paths.js';

describe('--version', () => {
  const want = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;
  for (const cwd of [repoRoot, tmpdir()]) {
    it(`is ${want} from ${cwd === repoRoot ? 'the repository' : 'another directory'}`, () => {
      assert.equal(execFileSync(launcherPath, ['--version'], { cwd, env: { ...process.env, STARGZFS_NODE: process.execPath } }).toString().trim(), want);
      assert.equal(execFileSync(process.execPath, [cliPath, '--version'], { cwd }).toString().trim(), want);
    });
  }
});
