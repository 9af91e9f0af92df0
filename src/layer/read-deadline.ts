// A read's deadline, and the context its errors carry. Retries, backoff, Retry-After and stalls each have their own bound
// in the registry client, but a read may also queue for a fetch slot, join a fetch that
// is already retrying, or wait for a whole-blob pass: only a bound on the read itself
// promises the user an answer in time. The work goes on after the deadline (what it
// fetches is cached for the next read); only the waiting stops.
import { RegistryError, StargzfsError, type ErrorContext } from '../errors.js';

/** `work`, or `onTimeout()`'s error once `ms` have passed (0 or less: no deadline). */
export function withDeadline<T>(work: Promise<T>, ms: number, onTimeout: () => Error): Promise<T> {
  if (!(ms > 0)) return work;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(onTimeout()), ms);
  });
  // A failure after the deadline has nobody to go to.
  work.catch(() => undefined);
  return Promise.race([work, late]).finally(() => clearTimeout(timer));
}

/**
 * A fetch is shared by the reads that wait for it, so its error names no file; each read
 * passes it on naming its own layer, file and offset (the one line an operator gets).
 */
export function inRead(err: unknown, ctx: ErrorContext): unknown {
  if (!(err instanceof StargzfsError) || err.path !== undefined) return err;
  const message = `${err.layer !== undefined ? err.message.replace(/^layer [^,:]+: /, '') : err.message} (reading at file offset ${ctx.offset ?? 0})`;
  if (err instanceof RegistryError) return new RegistryError(message, err.status, ctx, { cause: err });
  return new StargzfsError(err.code, message, ctx, { cause: err });
}
