// A server's side of its supervisor (native/supervisor.c): a tiny native process that
// holds the /dev/fuse descriptors of the server's mounts, so that when the server dies
// (kill -9, a crash) the mounts stay, and starts a new server that adopts them; the same
// path replaces a live server with a new binary (an upgrade). A server starts its
// supervisor once it serves; a server the supervisor started finds it through its
// environment and is handed the mounts before it opens anything.
//
// Messages are AF_UNIX SEQPACKET with descriptors as SCM_RIGHTS (native/supervisor_link.cc):
// HOLD/DROP/DONE/READY from the server, ADOPT…END to a new one (native/supervisor.c says more).
import { spawn } from 'node:child_process';
import { setPriority } from 'node:os';
import { closeSync, existsSync, openSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from '../log.js';
import { supervisorCalls, type Handover } from '../fs/fuse-binding.js';
import { SupervisorError } from '../errors.js';

export const SUPERVISOR_FD_ENV = 'STARGZFS_SUPERVISOR_FD';
export const SUPERVISOR_PID_ENV = 'STARGZFS_SUPERVISOR_PID';
/** Set for a standby: loaded, it waits (as long as it takes) for a server's death to hand it the mounts. */
export const SUPERVISOR_STANDBY_ENV = 'STARGZFS_SUPERVISOR_STANDBY';
/** In the supervisor's environment: keep no standby (one Node process less, some 65 MB; a death then costs a Node start-up). */
const SUPERVISOR_NO_STANDBY_ENV = 'STARGZFS_SUPERVISOR_NO_STANDBY';

/** How long the supervisor may take to answer (it answers at once; this only bounds a hung one). */
const ANSWER_MS = 5_000;

/** What a mount hands over besides its descriptors: enough for a new server to serve the same thing. */
export interface HeldState {
  /** Negotiated protocol minor and passthrough (a new server cannot ask the kernel again). */
  readonly minor: number;
  readonly passthrough: boolean;
  /** Anything the owner of the mount needs to open the same image again (the image pinned by digest). */
  readonly owner: Record<string, unknown>;
}

/** A mount handed to this server by the supervisor. */
export interface Adoption {
  readonly key: string;
  readonly state: HeldState;
  readonly handover: Handover;
}

/** native/supervisor.c as node-gyp builds it beside the addon (build/Release), from dist/src/supervisor/ or the bundle's chunks. */
function supervisorBinary(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const rel of ['../../../build/Release', '../../build/Release']) {
    const p = join(here, rel, 'stargzfs-supervisor');
    if (existsSync(p)) return p;
  }
  throw new SupervisorError(`stargzfs-supervisor is missing beside the FUSE addon (build/Release, from ${import.meta.url}): run make build`);
}

function message(...fields: string[]): Buffer {
  return Buffer.from(fields.join('\0'));
}

/** This process's thread ids (/proc/self/task), itself first. */
function threadsOfThisProcess(): number[] {
  try {
    return [process.pid, ...readdirSync('/proc/self/task').map(Number).filter((t) => t !== process.pid)];
  } catch {
    return [process.pid];
  }
}

export class SupervisorLink {
  private ended = false;

  private constructor(
    private readonly fd: number,
    /** The supervisor's pid, for status.json (operators and tests find it there). */
    readonly pid: number,
    private readonly adoptions: Map<string, Adoption>,
    private readonly log: Logger,
  ) {}

  /**
   * Starts a supervisor for this process: `argv` is how to start a replacement (this
   * process's own command line), `env` its environment, its output (and its servers')
   * goes to `logFile`, or to this process's stdout and stderr.
   */
  static start(argv: readonly string[], env: NodeJS.ProcessEnv, logFile: string | 'inherit', log: Logger, opts: { standby: boolean }): SupervisorLink {
    const calls = supervisorCalls();
    const [ours, theirs] = calls.socketPair();
    const out = logFile === 'inherit' ? undefined : openSync(logFile, 'a');
    try {
      // Not detached (setsid): it makes a process group of its own, in this session (native/supervisor.c says why).
      const child = spawn(supervisorBinary(), ['3', '--', ...argv], {
        detached: false,
        stdio: ['ignore', out ?? 'inherit', out ?? 'inherit', theirs],
        env: opts.standby ? env : { ...env, [SUPERVISOR_NO_STANDBY_ENV]: '1' },
      });
      child.unref();
      if (child.pid === undefined) throw new SupervisorError('the supervisor did not start');
      log.info({ supervisorPid: child.pid }, 'supervisor started: it holds the mount across a crash or an upgrade of this server');
      return new SupervisorLink(ours, child.pid, new Map(), log);
    } finally {
      if (out !== undefined) closeSync(out);
      calls.closeFd(theirs);
    }
  }

  /**
   * The supervisor that started this process, with the mounts it hands over, or
   * undefined when none did. Reads the environment once (and clears it: children of
   * this process are not started by the supervisor).
   */
  static inherited(env: NodeJS.ProcessEnv, log: Logger): SupervisorLink | undefined {
    const fdText = env[SUPERVISOR_FD_ENV];
    if (fdText === undefined) return undefined;
    const pid = Number(env[SUPERVISOR_PID_ENV] ?? 0);
    let standby = env[SUPERVISOR_STANDBY_ENV] === '1';
    delete env[SUPERVISOR_FD_ENV];
    delete env[SUPERVISOR_PID_ENV];
    delete env[SUPERVISOR_STANDBY_ENV];
    const fd = Number(fdText);
    const calls = supervisorCalls();
    const adoptions = new Map<string, Adoption>();
    if (standby) {
      log.debug({ supervisorPid: pid }, 'standing by for the supervisor');
      calls.sendMessage(fd, message('STANDBY'), []);
    }
    for (;;) {
      // A standby waits for the first message as long as it takes (the supervisor's end
      // closing, when it goes, ends the wait).
      const m = calls.receiveMessage(fd, standby ? -1 : ANSWER_MS);
      standby = false;
      if (m === null) throw new SupervisorError('the supervisor closed its socket before handing the mounts over');
      const [verb, key = '', ...rest] = m.data.toString().split('\0');
      if (verb === 'END') break;
      if (verb !== 'ADOPT') {
        for (const f of m.fds) calls.closeFd(f);
        continue;
      }
      const state = JSON.parse(rest.join('\0')) as HeldState;
      const [fuse, table] = m.fds;
      if (fuse === undefined) throw new SupervisorError(`the supervisor handed over ${key} without its /dev/fuse descriptor`);
      adoptions.set(key, { key, state, handover: { fd: fuse, tableFd: table ?? -1, minor: state.minor, passthrough: state.passthrough } });
    }
    // Started beside a live server at a lower priority (native/supervisor.c): serving now,
    // it takes its own back, in every thread (Linux's nice is per thread: setPriority(0)
    // alone left ten of a taken-over server's threads, V8's and libuv's, at nice 10).
    for (const tid of threadsOfThisProcess()) {
      try {
        setPriority(tid, 0);
      } catch {
        // gone meanwhile, or not allowed (not root): that thread stays at the lower priority
      }
    }
    log.info({ supervisorPid: pid, mounts: [...adoptions.keys()] }, 'started by the supervisor: taking over its mounts');
    return new SupervisorLink(fd, pid, adoptions, log);
  }

  /** The mount the supervisor handed over under `key` (taken: asked once). */
  adopt(key: string): Adoption | undefined {
    const a = this.adoptions.get(key);
    this.adoptions.delete(key);
    return a;
  }

  /** A handed-over mount its new server cannot serve: its descriptors closed, and the supervisor lets go of it. */
  abandon(a: Adoption): void {
    const calls = supervisorCalls();
    calls.closeFd(a.handover.fd);
    if (a.handover.tableFd >= 0) calls.closeFd(a.handover.tableFd);
    this.drop(a.key);
  }

  /** Mounts handed over that nobody took. */
  unclaimed(): string[] {
    return [...this.adoptions.keys()];
  }

  /** The supervisor holds this mount's descriptors from now on (again, for an adopted one). */
  hold(key: string, state: HeldState, h: Handover): void {
    const fds = h.tableFd >= 0 ? [h.fd, h.tableFd] : [h.fd];
    this.request(message('HOLD', key, JSON.stringify(state)), fds);
  }

  /** The mount ended cleanly: the supervisor lets go of it. */
  drop(key: string): void {
    this.request(message('DROP', key), []);
  }

  /** This server serves everything it was handed: the supervisor lets the old one go (an upgrade). */
  ready(): void {
    this.send(message('READY'), []);
  }

  /** Replace this server with a new one started from the same command line (which may now be a new binary). */
  upgrade(): void {
    this.request(message('UPGRADE'), []);
  }

  /** This server ends cleanly: the supervisor lets go of everything and exits, and starts nobody. */
  done(): void {
    if (this.ended) return;
    this.ended = true;
    try {
      this.send(message('DONE'), []);
    } catch (err) {
      this.log.warn({ err }, 'the supervisor was not told this server ends; it may start another');
    }
    supervisorCalls().closeFd(this.fd);
  }

  private send(data: Buffer, fds: number[]): void {
    supervisorCalls().sendMessage(this.fd, data, fds);
  }

  private request(data: Buffer, fds: number[]): void {
    this.send(data, fds);
    const answer = supervisorCalls().receiveMessage(this.fd, ANSWER_MS);
    const said = answer?.data.toString().replace(/\0/g, ': ') ?? 'nothing (its socket closed)';
    for (const f of answer?.fds ?? []) supervisorCalls().closeFd(f);
    if (said !== 'OK') throw new SupervisorError(`the supervisor answered ${data.toString().split('\0')[0] ?? ''} with ${said}`);
  }
}
