// Crash consistency of the state root (issue 22): `stargzfs fetch` is killed with SIGKILL
// at random points of its TOC imports and chunk writes, over and over on one root. After
// every kill the database passes SQLite's integrity check, every chunk file in place holds
// the bytes its name says, and no layer is half there; at the end, and every few kills, a
// new process lists and reads the whole image right. KILLS sets the number of kills
// (`make soak` runs more).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { buildEstargzImage } from '../../src/layer/build-image.js';
import { withImage } from '../../src/cli/context.js';
import { resolvePath } from '../../src/toc/view.js';
import { entries, type Spec } from '../helpers/entries.js';
import { bytes, int, rng } from '../helpers/random.js';
import { testConfig } from '../helpers/config.js';
import { tempDir } from '../helpers/tmp.js';
import { launcherPath } from '../helpers/paths.js';
import { runCli } from '../helpers/cli.js';

const KILLS = Number(process.env.KILLS ?? 10);
const SEED = Number(process.env.SEED ?? Date.now() % 100000);

/** Runs `stargzfs fetch`, SIGKILLed after `killMs` (if still running); resolves with how it ended. */
function fetchKilledAfter(root: string, ref: string, killMs: number): Promise<{ killed: boolean; code: number | null; ms: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(launcherPath, ['fetch', '--root', root, '--log-level', 'silent', ref], {
      stdio: 'ignore', env: { ...process.env, STARGZFS_NODE: process.execPath },
    });
    let killed = false;
    const timer = setTimeout(() => {
      killed = child.kill('SIGKILL');
    }, killMs);
    child.on('error', reject);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ killed, code, ms: performance.now() - t0 });
    });
  });
}

/** What a killed process may leave, checked without trusting any of it. */
function checkRoot(root: string): { chunks: number; layers: number } {
  // Killed before it made anything: nothing to check.
  if (!existsSync(join(root, 'meta.db'))) return { chunks: 0, layers: 0 };
  const db = new Database(join(root, 'meta.db'), { readonly: true, fileMustExist: true });
  try {
    assert.equal(db.pragma('integrity_check', { simple: true }), 'ok');
    // Killed between creating the file and its schema: an empty database, which is fine.
    if (db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'layers'").get() === undefined) return { chunks: 0, layers: 0 };
    // A layer row exists only with its whole tree: its root node and every chunk row's node.
    const layers = db.prepare('SELECT id, root_id FROM layers').all() as Array<{ id: number; root_id: number }>;
    for (const l of layers) {
      assert.ok(db.prepare('SELECT 1 FROM nodes WHERE id = ?').get(l.root_id) !== undefined, `layer ${l.id} has its root node`);
    }
    const orphans = db.prepare('SELECT count(*) FROM chunks WHERE node_id NOT IN (SELECT id FROM nodes)').pluck().get() as number;
    assert.equal(orphans, 0, 'no chunk rows without their node');
    let chunks = 0;
    const dir = join(root, 'chunks');
    const subs = existsSync(dir) ? readdirSync(dir, { withFileTypes: true }) : [];
    for (const sub of subs.filter((d) => d.isDirectory())) {
      for (const name of readdirSync(join(dir, sub.name))) {
        const data = readFileSync(join(dir, sub.name, name));
        assert.equal(createHash('sha256').update(data).digest('hex'), name, `chunk file ${name} is whole`);
        chunks++;
      }
    }
    return { chunks, layers: layers.length };
  } finally {
    db.close();
  }
}

describe('crash consistency', () => {
  it(`SIGKILL at random points of TOC imports and chunk writes (${KILLS} kills): nothing torn or half-imported is ever trusted`, async () => {
    const { dir, cleanup } = tempDir();
    try {
      const r = rng(SEED);
      const small: Spec[] = [{ name: 'etc/', type: 'dir' }];
      for (let i = 0; i < 1500; i++) small.push({ name: `etc/f${i}`, body: bytes(r, int(r, 0, 2000)) });
      const large: Spec[] = [{ name: 'data/', type: 'dir' }];
      for (let i = 0; i < 40; i++) large.push({ name: `data/blob${i}`, body: bytes(r, int(r, 64 << 10, 1 << 20)) });
      await buildEstargzImage(join(dir, 'img'), [entries(small), entries(large)], { chunkSize: 128 << 10, compressionLevel: 1 });
      const ref = `oci:${join(dir, 'img')}`;
      const expected = new Map<string, Buffer>();
      for (const s of [...small, ...large]) if (s.body !== undefined) expected.set(s.name, s.body as Buffer);

      const full = await fetchKilledAfter(join(dir, 'probe'), ref, 120_000);
      assert.equal(full.code, 0, 'an uninterrupted fetch succeeds');
      const span = full.ms;

      const root = join(dir, 'root');
      const verifyReads = async (): Promise<void> => {
        await withImage(testConfig(root), ref, async ({ image }) => {
          const merged = image.merged();
          assert.equal(merged.readdir(resolvePath(merged, 'etc')).length, 1500);
          for (const [name, body] of expected) {
            const node = resolvePath(merged, name);
            const got = await image.reader.read(node, name, 0, body.length + 1);
            assert.ok(got.equals(body), `${name} reads back right (seed ${SEED})`);
          }
        });
      };
      let killed = 0;
      let finished = 0;
      for (let i = 0; i < KILLS; i++) {
        // Every run has chunks to write, and every third a TOC to import, or a warm root
        // would let it finish before the kill. (The reads below are what the next run finds.)
        if (i > 0 && i % 3 === 0) {
          for (const f of ['meta.db', 'meta.db-wal', 'meta.db-shm']) rmSync(join(root, f), { force: true });
          rmSync(join(root, 'chunks'), { recursive: true, force: true });
        } else if (i > 0) {
          await withImage(testConfig(root), ref, async ({ cache }) => void (await cache.clear()));
        }
        // The first ~250 ms are Node starting: kill across the rest of a full run's time.
        const at = 200 + r() * span * 0.7;
        const res = await fetchKilledAfter(root, ref, at);
        if (res.killed) killed++;
        else {
          assert.equal(res.code, 0);
          finished++;
        }
        checkRoot(root);
        if (i % 8 === 7) await verifyReads();
        // Some kills land on a cleared cache again, so chunk writes keep being interrupted.
      }
      await verifyReads();
      const leftovers = existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')).length : 0;
      // What the killed writers left in tmp/ is theirs alone: `cache gc` removes it.
      const gc = await runCli(['cache', 'gc', '--json', '--root', root]);
      assert.equal(gc.code, 0, gc.stderr);
      assert.deepEqual(existsSync(join(root, 'tmp')) ? readdirSync(join(root, 'tmp')) : [], [], 'no temporary file of a dead writer is left');
      const end = checkRoot(root);
      console.log(`# seed ${SEED}: ${killed} killed, ${finished} finished of ${KILLS}; a full fetch ${span.toFixed(0)} ms; ${end.chunks} chunk files, ${end.layers} layers at the end; ${leftovers} temporary files left by killed writers, removed by gc`);
      assert.ok(killed >= KILLS / 3, `runs were killed mid-way (${killed} of ${KILLS})`);
    } finally {
      cleanup();
    }
  });
});
