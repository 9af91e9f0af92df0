// One fetch scheduler per image: every blob read for chunks (on-demand, prefetch,
// background) waits here for a slot. On-demand work always starts first; one slot is kept
// for it so a burst of prefetch cannot make a read wait behind a queue of large GETs.
// Background work uses only what on-demand reads leave idle: one request at a time, none
// while on-demand work is queued or running nor for a quiet period after it (a program's
// reads come in bursts with short gaps between; a background body started in a gap would
// share the link with the next burst), and it spends from a byte budget when a bandwidth
// limit is set.

import { ClosedError } from '../errors.js';

export const ON_DEMAND = 0;
export const PREFETCH = 1;
export const BACKGROUND = 2;
export type Priority = typeof ON_DEMAND | typeof PREFETCH | typeof BACKGROUND;

export interface SchedulerOptions {
  /** Blob reads running at once (the registry host's connection budget). */
  readonly concurrency: number;
  /** Background bytes per second; 0 = unlimited. */
  readonly backgroundBytesPerSec: number;
  /** Background work waits this long after on-demand work ends, ms. Default BACKGROUND_QUIET_MS. */
  readonly quietMs?: number;
}

/** How long background fetch stays paused after the last on-demand fetch ended, or the last request of a user. */
export const BACKGROUND_QUIET_MS = 300;
/**
 * Paused this long without a break, background fetch sends one request anyway (then at
 * most one a second): a mount kept busy for good by cached reads still fills its cache.
 */
const BACKGROUND_STARVED_MS = 10_000;

export interface Scheduled<T> {
  readonly done: Promise<T>;
  /** Moves the job to the on-demand queue if it has not started. */
  promote(): void;
  /**
   * The job is background work still waiting. A read must not join it: raised, a whole
   * background batch would become the read's (a 61 KB file waited for 1 MiB); the read
   * fetches what it needs on its own.
   */
  waitingBackground(): boolean;
}

interface Job {
  readonly bytes: number;
  /** Whose job it is (a ScopedScheduler): cancelled together when that one closes. */
  readonly owner: object | undefined;
  readonly run: () => void;
  readonly cancel: (err: Error) => void;
}

export interface SchedulerStats {
  readonly running: readonly number[];
  readonly queued: readonly number[];
  /** Jobs started, per priority. */
  readonly started: readonly number[];
}

export class FetchScheduler {
  private readonly queues: [Job[], Job[], Job[]] = [[], [], []];
  private readonly running: [number, number, number] = [0, 0, 0];
  private readonly started: [number, number, number] = [0, 0, 0];
  private tokens: number;
  private lastRefill = Date.now();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /**
   * When on-demand work last ended, or a user last asked for something (performance.now()).
   * A new scheduler counts as just used: an image is opened to be read at once.
   */
  private demandEnded = performance.now();
  /** When background work last started, or was first held back. */
  private backgroundAt = -Infinity;

  constructor(private readonly opts: SchedulerOptions) {
    this.tokens = opts.backgroundBytesPerSec;
  }

  /** Runs `fn` when a slot of this priority is free; `bytes` is what it will fetch. */
  submit<T>(priority: Priority, bytes: number, fn: () => Promise<T>): Promise<T> {
    return this.schedule(priority, bytes, fn).done;
  }

  /**
   * As submit, with a handle to raise the job to on-demand while it still waits (a read
   * joined it). `fn` is told the priority it runs at: on-demand when it was raised.
   */
  schedule<T>(priority: Priority, bytes: number, fn: (runsAs: Priority) => Promise<T>, owner?: object): Scheduled<T> {
    let job!: Job;
    let queue = priority;
    let started = false;
    const done = new Promise<T>((resolve, reject) => {
      job = {
        bytes,
        owner,
        cancel: reject,
        run: () => {
          started = true;
          const p = queue;
          this.running[p]++;
          this.started[p]++;
          fn(p)
            .then(resolve, reject)
            .finally(() => {
              this.running[p]--;
              if (p === ON_DEMAND) this.demandEnded = performance.now();
              this.pump();
            });
        },
      };
    });
    if (this.closed) job.cancel(new ClosedError('the fetch scheduler'));
    else this.queues[priority].push(job);
    this.pump();
    return {
      done,
      waitingBackground: () => !started && queue === BACKGROUND,
      promote: () => {
        if (started || queue === ON_DEMAND) return;
        const q = this.queues[queue] as Job[];
        const i = q.indexOf(job);
        if (i < 0) return;
        q.splice(i, 1);
        queue = ON_DEMAND;
        this.queues[ON_DEMAND].push(job);
        this.pump();
      },
    };
  }

  /**
   * A user of the data asked for something (a lookup, a listing, a read served from the
   * cache): a program is running, and background fetch stays out of its way for the quiet
   * period, as after on-demand work. A program's start is lookups and reads with short
   * gaps; a background body started in one of them shares the link and the CPU with it.
   */
  activity(): void {
    this.demandEnded = performance.now();
  }

  /**
   * Resolves once nothing has been asked for the quiet period (no on-demand work, no
   * activity): background fetch starts its own work (queries to plan it included) only then.
   */
  async quiet(): Promise<void> {
    for (;;) {
      if (this.closed) return;
      const wait = this.onDemand > 0 ? this.quietMs : this.quietLeft(performance.now());
      if (wait <= 0) return;
      await new Promise<void>((resolve) => setTimeout(resolve, Math.ceil(wait)));
    }
  }

  /** On-demand work queued or running: background fetch is paused while this is > 0. */
  get onDemand(): number {
    return this.running[ON_DEMAND] + this.queues[ON_DEMAND].length;
  }

  stats(): SchedulerStats {
    return { running: [...this.running], queued: this.queues.map((q) => q.length), started: [...this.started] };
  }

  /** Queued jobs of `owner` reject with SGZ_CLOSED; its running ones finish. */
  cancelOwned(owner: object): void {
    const err = new ClosedError('the fetch scheduler');
    for (const q of this.queues) {
      for (let i = q.length - 1; i >= 0; i--) {
        const job = q[i] as Job;
        if (job.owner !== owner) continue;
        q.splice(i, 1);
        job.cancel(err);
      }
    }
  }

  /** Stops starting jobs: queued ones reject with SGZ_CLOSED, running ones finish. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    const err = new ClosedError('the fetch scheduler');
    for (const q of this.queues) for (const job of q.splice(0)) job.cancel(err);
  }

  private total(): number {
    return this.running[0] + this.running[1] + this.running[2];
  }

  private pump(): void {
    if (this.closed) return;
    const max = this.opts.concurrency;
    const demand = this.queues[ON_DEMAND];
    while (demand.length > 0 && this.total() < max) (demand.shift() as Job).run();
    // Keep one slot for on-demand work that may arrive while prefetch runs.
    const lowMax = Math.max(1, max - 1);
    const prefetch = this.queues[PREFETCH];
    while (prefetch.length > 0 && this.total() < lowMax && demand.length === 0) (prefetch.shift() as Job).run();
    const background = this.queues[BACKGROUND];
    if (background.length === 0 || this.running[BACKGROUND] > 0 || this.total() >= lowMax || this.onDemand > 0 || prefetch.length > 0) return;
    const now = performance.now();
    const quietFor = this.quietLeft(now);
    if (this.backgroundAt === -Infinity) this.backgroundAt = now;
    if (quietFor > 0 && now - this.backgroundAt < BACKGROUND_STARVED_MS) return this.wake(Math.min(quietFor, BACKGROUND_STARVED_MS - (now - this.backgroundAt)));
    if (quietFor > 0) this.backgroundAt = now - BACKGROUND_STARVED_MS + 1000; // starved: one now, the next a second later
    else this.backgroundAt = now;
    const job = background[0] as Job;
    if (!this.take(job.bytes)) return this.wake();
    background.shift();
    job.run();
  }

  /** Token bucket for background bytes; a job larger than one second's budget waits for a full bucket. */
  private take(bytes: number): boolean {
    const rate = this.opts.backgroundBytesPerSec;
    if (rate <= 0) return true;
    const now = Date.now();
    this.tokens = Math.min(rate, this.tokens + ((now - this.lastRefill) * rate) / 1000);
    this.lastRefill = now;
    const need = Math.min(bytes, rate);
    if (this.tokens < need) return false;
    this.tokens -= bytes;
    return true;
  }

  private get quietMs(): number {
    return this.opts.quietMs ?? BACKGROUND_QUIET_MS;
  }

  /** Milliseconds until the quiet period after the last on-demand work or activity is over (≤ 0: over). */
  private quietLeft(now: number): number {
    return this.demandEnded + this.quietMs - now;
  }

  /** Pumps again after `ms`, or once the byte budget holds the next background job. */
  private wake(ms?: number): void {
    if (this.timer !== undefined) return;
    const rate = this.opts.backgroundBytesPerSec;
    const job = this.queues[BACKGROUND][0];
    const need = Math.min(job?.bytes ?? 0, rate) - this.tokens;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.pump();
    }, Math.max(5, Math.ceil(ms ?? (need * 1000) / rate)));
  }
}

/** What an image's readers and prefetch need of a scheduler: its own, or its share of one. */
export type Scheduler = Pick<FetchScheduler, 'submit' | 'schedule' | 'activity' | 'quiet' | 'onDemand' | 'stats' | 'close'>;

/**
 * One image's share of a scheduler that several images use (the service: one per
 * registry host, so that the concurrency cap and the background budget hold for all the
 * images read from it, and one image's background fetch waits for another's reads).
 * Closing it cancels this image's queued jobs only.
 */
export class ScopedScheduler implements Scheduler {
  private closed = false;

  constructor(private readonly shared: FetchScheduler) {}

  submit<T>(priority: Priority, bytes: number, fn: () => Promise<T>): Promise<T> {
    return this.schedule(priority, bytes, fn).done;
  }

  schedule<T>(priority: Priority, bytes: number, fn: (runsAs: Priority) => Promise<T>): Scheduled<T> {
    if (this.closed) {
      const done = Promise.reject(new ClosedError('the fetch scheduler'));
      return { done, waitingBackground: () => false, promote: () => {} };
    }
    return this.shared.schedule(priority, bytes, fn, this);
  }

  activity(): void {
    this.shared.activity();
  }

  async quiet(): Promise<void> {
    if (!this.closed) await this.shared.quiet();
  }

  get onDemand(): number {
    return this.shared.onDemand;
  }

  stats(): SchedulerStats {
    return this.shared.stats();
  }

  close(): void {
    this.closed = true;
    this.shared.cancelOwned(this);
  }
}
