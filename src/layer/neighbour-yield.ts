// How much of what neighbour fetches bring in is read afterwards. The neighbour window
// (link-estimator.ts) says what is cheap to fetch along with a miss; whether it is worth
// it depends on the workload: a tree read in blob order uses nearly all of it, a program
// starting (python3 importing its modules from all over the layer) little, and there the
// unread bytes share the link with the reads that wait. The window is scaled by the share
// that was read, learned as the mount goes.

/** Neighbour chunks remembered until read (the oldest forgotten unread). */
const TRACKED = 8192;
/** Prior: as if this much had been fetched, half of it read. */
const PRIOR_BYTES = 1 << 20;
/** Older observations fade: each new byte weighs this much more than one DECAY_BYTES ago. */
const DECAY_BYTES = 16 << 20;
/** The window is never scaled below this share of itself. */
const MIN_SCALE = 1 / 16;

export class NeighbourYield {
  private readonly pending = new Map<string, number>();
  private fetched = PRIOR_BYTES;
  private used = PRIOR_BYTES / 2;

  /** A chunk fetched as a neighbour (not asked for by a read). */
  fetchedAsNeighbour(digest: Buffer, bytes: number): void {
    const key = digest.toString('latin1');
    if (this.pending.has(key)) return;
    this.pending.set(key, bytes);
    if (this.pending.size > TRACKED) this.pending.delete(this.pending.keys().next().value as string);
    const keep = Math.max(0, 1 - bytes / DECAY_BYTES);
    this.fetched = this.fetched * keep + bytes;
    this.used *= keep;
  }

  /** A read used this chunk (from the cache or a fetch it joined). */
  read(digest: Buffer): void {
    if (this.pending.size === 0) return;
    const key = digest.toString('latin1');
    const bytes = this.pending.get(key);
    if (bytes === undefined) return;
    this.pending.delete(key);
    this.used += bytes;
  }

  /** The share of neighbour bytes that reads used: 0..1. */
  share(): number {
    return Math.min(1, this.used / this.fetched);
  }

  /** `window` scaled: whole when at least half is read, down to MIN_SCALE as the share falls. */
  scale(window: number): number {
    return Math.round(window * Math.max(MIN_SCALE, Math.min(1, this.share() * 2)));
  }
}
