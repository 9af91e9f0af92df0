// Image references, the docker grammar (distribution/reference):
//   [domain[:port]/]path[:tag][@sha256:hex]
// A first component with a dot or a colon, `localhost`, or an [IPv6] literal is the
// registry; otherwise the registry is docker.io (served at registry-1.docker.io), and a
// one-component path there is an official image under library/.
import { ImageReferenceError } from '../errors.js';

export interface ImageRef {
  /** Registry as named (`docker.io`, `ghcr.io`, `localhost:5000`, `[::1]:5000`). */
  readonly registry: string;
  /** Host[:port] to connect to (docker.io → registry-1.docker.io). */
  readonly endpoint: string;
  readonly repository: string;
  readonly tag: string | undefined;
  readonly digest: string | undefined;
}

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^sha256:[0-9a-f]{64}$/;
const HOSTNAME = /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)(?:\.(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?))*$/;
const IPV6 = /^\[[0-9a-fA-F:.]+\]$/;

export const DOCKER_HUB = 'docker.io';
const DOCKER_HUB_ENDPOINT = 'registry-1.docker.io';

export function parseImageRef(input: string): ImageRef {
  const bad = (why: string): never => {
    throw new ImageReferenceError(`invalid image reference ${JSON.stringify(input)}: ${why}`);
  };
  if (input === '' || input.length > 4096) bad('empty or too long');
  let rest = input;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) bad('the digest must be sha256: followed by 64 lowercase hex digits');
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`tag ${JSON.stringify(tag)} is not valid`);
  }
  const first = rest.indexOf('/');
  let registry = DOCKER_HUB;
  let path = rest;
  if (first >= 0) {
    const head = rest.slice(0, first);
    if (head.includes('.') || head.includes(':') || head === 'localhost' || head.startsWith('[')) {
      registry = head;
      path = rest.slice(first + 1);
      checkHost(registry, bad);
    }
  }
  if (path === '') bad('no repository name');
  if (path.length > 255) bad('the repository name is longer than 255 characters');
  for (const c of path.split('/')) {
    if (!COMPONENT.test(c)) bad(`repository component ${JSON.stringify(c)} must be lowercase letters, digits and separators`);
  }
  if (registry === DOCKER_HUB && !path.includes('/')) path = `library/${path}`;
  if (tag === undefined && digest === undefined) tag = 'latest';
  return { registry, endpoint: registry === DOCKER_HUB ? DOCKER_HUB_ENDPOINT : registry, repository: path, tag, digest };
}

function checkHost(registry: string, bad: (why: string) => never): void {
  let host = registry;
  let port: string | undefined;
  if (registry.startsWith('[')) {
    const close = registry.indexOf(']');
    host = registry.slice(0, close + 1);
    const after = registry.slice(close + 1);
    if (after !== '' && !after.startsWith(':')) bad('malformed IPv6 registry address');
    port = after === '' ? undefined : after.slice(1);
    if (!IPV6.test(host)) bad(`registry host ${JSON.stringify(host)} is not a valid IPv6 literal`);
  } else {
    const c = registry.lastIndexOf(':');
    if (c >= 0) {
      host = registry.slice(0, c);
      port = registry.slice(c + 1);
    }
    if (!HOSTNAME.test(host)) bad(`registry host ${JSON.stringify(host)} is not valid`);
  }
  if (port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) > 65535)) bad(`registry port ${JSON.stringify(port)} is not valid`);
}

export function formatImageRef(r: ImageRef): string {
  return `${r.registry}/${r.repository}${r.tag !== undefined ? `:${r.tag}` : ''}${r.digest !== undefined ? `@${r.digest}` : ''}`;
}

/** Loopback registries may be spoken to over plain HTTP without being asked. */
export function isLoopback(endpoint: string): boolean {
  const host = endpoint.startsWith('[') ? endpoint.slice(0, endpoint.indexOf(']') + 1) : endpoint.replace(/:\d+$/, '');
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
