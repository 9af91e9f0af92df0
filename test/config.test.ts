import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { resolveConfig } from '../src/config.js';

const env = { uid: 1000, home: '/home/u', xdgCacheHome: undefined, arch: 'x64' };

describe('config', () => {
  it('defaults: state root per user, this machine’s platform, frozen', () => {
    const c = resolveConfig({}, env);
    assert.equal(c.state.root, '/home/u/.cache/stargzfs');
    assert.equal(resolveConfig({}, { ...env, uid: 0 }).state.root, '/var/lib/stargzfs');
    assert.equal(c.image.platform, 'linux/amd64');
    assert.equal(c.toc.maxTocBytes, 150 << 20);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.toc));
  });
  it('rejects misspelled keys and bad values by name', () => {
    assert.throws(() => resolveConfig({ roots: '/x' } as never, env), /--roots: unknown option/);
    assert.throws(() => resolveConfig({ platform: 'linux' }, env), /--platform/);
    assert.throws(() => resolveConfig({ logLevel: 'loud' }, env), /--log-level/);
    assert.throws(() => resolveConfig({ maxTocBytes: -1 }, env), /--max-toc-bytes/);
    assert.throws(() => resolveConfig({ logFormat: 'xml' }, env), /--log-format/);
  });
  it('bounded waits: a read deadline of 30 s that also bounds one request\'s retries, stalls cut after 5 s', () => {
    const c = resolveConfig({}, env);
    assert.equal(c.fetch.readTimeoutMs, 30_000);
    assert.equal(c.http.retryBudgetMs, 30_500);
    assert.equal(c.http.stallTimeoutMs, 5000);
    const d = resolveConfig({ readTimeoutMs: 10_000, stallTimeoutMs: 2000 }, env);
    assert.equal(d.http.retryBudgetMs, 10_500);
    assert.equal(d.http.stallTimeoutMs, 2000);
    assert.throws(() => resolveConfig({ readTimeoutMs: 0 }, env), /--read-timeout/);
    assert.throws(() => resolveConfig({ stallTimeoutMs: -1 }, env), /--stall-timeout/);
  });
  it('logs for people on a terminal, JSON elsewhere, unless told', () => {
    assert.equal(resolveConfig({}, { ...env, stderrIsTTY: true }).log.pretty, true);
    assert.equal(resolveConfig({}, { ...env, stderrIsTTY: false }).log.pretty, false);
    assert.equal(resolveConfig({ logFormat: 'json' }, { ...env, stderrIsTTY: true }).log.pretty, false);
    assert.equal(resolveConfig({ logFormat: 'pretty' }, env).log.pretty, true);
  });
});
