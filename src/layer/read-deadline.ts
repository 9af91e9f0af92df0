// A read's deadline. Retries, backoff, Retry-After and stalls each have their own bound
// in the registry client, but a read may also queue for a fetch slot, join a fetch that
// is already retrying, or wait for a whole-blob pass: only a bound on the read itself
// promises the user an answer in time. The work goes on after the deadline (what it
// fetches is cached for the next read); only the waiting stops.

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
