// Registry credentials from the containers auth files (podman's `auth.json`: the same
// `auths` shape, tried first) and the docker CLI's config: `auths` (auth, username/password,
// identitytoken), `credHelpers` and `credsStore` (docker-credential-<name> get). The files
// are re-read when asked (after a refusal), so rotated credentials work without restart.
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../log.js';

export interface Credentials {
  readonly username: string;
  readonly password: string;
  /** An OAuth2 refresh token (docker login with an identity provider). */
  readonly identityToken?: string | undefined;
}

export interface CredentialSource {
  get(registry: string, reload?: boolean): Promise<Credentials | undefined>;
}

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string; identitytoken?: string }>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
}

const HUB_KEYS = ['docker.io', 'index.docker.io', 'registry-1.docker.io', 'https://index.docker.io/v1/'];

export class DockerConfigCredentials implements CredentialSource {
  private config: Promise<DockerConfig> | undefined;
  private readonly log: Logger;

  /**
   * `dir`: $DOCKER_CONFIG or ~/.docker, resolved by the CLI; undefined = none. `authFiles`:
   * containers auth files ($REGISTRY_AUTH_FILE, $XDG_RUNTIME_DIR/containers/auth.json), before it.
   */
  constructor(private readonly dir: string | undefined, log: Logger, private readonly authFiles: readonly string[] = []) {
    this.log = log.child({ mod: 'credentials' });
  }

  async get(registry: string, reload = false): Promise<Credentials | undefined> {
    if (this.dir === undefined && this.authFiles.length === 0) return undefined;
    if (reload || this.config === undefined) this.config = this.loadAll();
    const cfg = await this.config;
    const keys = registry === 'docker.io' ? HUB_KEYS : [registry, `https://${registry}`, `http://${registry}`];
    const helper = keys.map((k) => cfg.credHelpers?.[k]).find((h) => h !== undefined) ?? cfg.credsStore;
    for (const k of keys) {
      const a = cfg.auths?.[k];
      if (a === undefined) continue;
      if (a.auth !== undefined && a.auth !== '') {
        const decoded = Buffer.from(a.auth, 'base64').toString('utf8');
        const i = decoded.indexOf(':');
        if (i > 0) return { username: decoded.slice(0, i), password: decoded.slice(i + 1), identityToken: a.identitytoken };
      }
      if (a.username !== undefined) return { username: a.username, password: a.password ?? '', identityToken: a.identitytoken };
    }
    if (helper !== undefined) return this.fromHelper(helper, registry === 'docker.io' ? 'https://index.docker.io/v1/' : registry);
    return undefined;
  }

  /** The files merged, the first to name a registry winning. */
  private async loadAll(): Promise<DockerConfig> {
    const files = [...this.authFiles, ...(this.dir !== undefined ? [join(this.dir, 'config.json')] : [])];
    const all = await Promise.all(files.map((f) => this.load(f)));
    const merged: DockerConfig = { auths: {}, credHelpers: {} };
    for (const c of all.reverse()) {
      Object.assign(merged.auths as object, c.auths ?? {});
      Object.assign(merged.credHelpers as object, c.credHelpers ?? {});
      merged.credsStore = c.credsStore ?? merged.credsStore;
    }
    return merged;
  }

  private async load(file: string): Promise<DockerConfig> {
    try {
      return JSON.parse(await readFile(file, 'utf8')) as DockerConfig;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ file }, `cannot read registry credentials: ${(err as Error).message}`);
      return {};
    }
  }

  private fromHelper(helper: string, server: string): Promise<Credentials | undefined> {
    return new Promise((resolve) => {
      const child = execFile(`docker-credential-${helper}`, ['get'], { timeout: 10_000 }, (err, stdout) => {
        if (err) {
          // Never log the helper's output: it may hold the secret.
          this.log.warn({ helper }, `credential helper failed: ${err.message.split('\n')[0]}`);
          resolve(undefined);
          return;
        }
        try {
          const r = JSON.parse(stdout) as { Username?: string; Secret?: string };
          if (r.Secret === undefined) resolve(undefined);
          else if (r.Username === '<token>') resolve({ username: '', password: '', identityToken: r.Secret });
          else resolve({ username: r.Username ?? '', password: r.Secret });
        } catch {
          resolve(undefined);
        }
      });
      child.stdin?.end(server);
    });
  }
}
