// How much is worth fetching along with a miss: bytes that arrive within about one round
// trip cost less than the request they may save. Round trip and bandwidth are learned
// from this image's own fetches by fitting `ms = rtt + bytes / bandwidth` over recent
// replies; the first few windows alternate between small and large on purpose, so that
// the fit has replies of different sizes to go on. It fits loopback, a LAN and a slow
// WAN alike, where one fixed window fits one of them.

const SAMPLES = 32;
const PROBES = 6;

export class LinkEstimator {
  private readonly samples: Array<{ bytes: number; ms: number }> = [];
  private asked = 0;

  constructor(
    private readonly min: number,
    private readonly max: number,
  ) {}

  /** One request's reply: `bytes` in `ms` from sending it to its last byte. */
  observe(bytes: number, ms: number): void {
    this.samples.push({ bytes, ms });
    if (this.samples.length > SAMPLES) this.samples.shift();
  }

  /** The window for the next miss: round trip × bandwidth, clamped; probing sizes until the fit has data. */
  windowBytes(): number {
    const fit = this.fit();
    if (fit === undefined || this.samples.length < PROBES) return this.asked++ % 2 === 0 ? this.min : this.max / 4;
    if (fit.msPerByte <= 0) return this.max;
    return Math.round(Math.min(this.max, Math.max(this.min, fit.rttMs / fit.msPerByte)));
  }

  snapshot(): { rttMs: number; bytesPerSecond: number; windowBytes: number } | undefined {
    const fit = this.fit();
    if (fit === undefined) return undefined;
    return { rttMs: fit.rttMs, bytesPerSecond: fit.msPerByte > 0 ? 1000 / fit.msPerByte : Infinity, windowBytes: this.windowBytes() };
  }

  /** Least squares over the samples; undefined while their sizes barely differ. */
  private fit(): { rttMs: number; msPerByte: number } | undefined {
    const n = this.samples.length;
    if (n < 2) return undefined;
    let sx = 0;
    let sy = 0;
    for (const s of this.samples) {
      sx += s.bytes;
      sy += s.ms;
    }
    const mx = sx / n;
    const my = sy / n;
    let cov = 0;
    let varx = 0;
    for (const s of this.samples) {
      cov += (s.bytes - mx) * (s.ms - my);
      varx += (s.bytes - mx) ** 2;
    }
    if (varx <= 0 || Math.sqrt(varx / n) < mx / 4) return undefined;
    const msPerByte = cov / varx;
    return { rttMs: Math.max(0, my - msPerByte * mx), msPerByte };
  }
}
