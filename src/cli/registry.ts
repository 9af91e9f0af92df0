// The registry client as every command and the service make it: credentials from the
// containers auth files and the docker config, and sockets that ACK at once.
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { ackPromptly } from '../fs/fuse-binding.js';
import { DockerConfigCredentials } from '../http/credentials.js';
import { RegistryClient } from '../http/registry-client.js';

export function registryClient(http: Config['http'], log: Logger): RegistryClient {
  return new RegistryClient(http, new DockerConfigCredentials(http.dockerConfigDir, log, http.authFiles), log, { onSocket: ackPromptly });
}
