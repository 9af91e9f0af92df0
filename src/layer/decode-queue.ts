// Work that may wait, run in short slices between I/O. A neighbour window or a prefetch
// region brings dozens of small members in one answer; decoding, verifying and caching
// them all in one go held the main thread for 50 ms (20 ms at best) while the answer to
// the read's own request sat unread in its socket. Reads' own members do not queue here.
export class DecodeQueue {
  private readonly tasks: Array<() => void> = [];
  private scheduled = false;

  constructor(private readonly sliceMs = 3) {}

  /** Runs `task` soon, after pending I/O has been looked at. */
  readonly defer = (task: () => void): void => {
    this.tasks.push(task);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  };

  private readonly run = (): void => {
    const until = performance.now() + this.sliceMs;
    let done = 0;
    while (done < this.tasks.length && (done === 0 || performance.now() < until)) (this.tasks[done++] as () => void)();
    this.tasks.splice(0, done);
    if (this.tasks.length > 0) setImmediate(this.run);
    else this.scheduled = false;
  };
}
