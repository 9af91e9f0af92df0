// stdout with backpressure; a closed pipe (`| head`) ends the command quietly.
export async function write(chunk: string | Buffer): Promise<void> {
  if (!process.stdout.write(chunk)) {
    await new Promise<void>((resolve, reject) => {
      const onDrain = (): void => { process.stdout.off('error', onError); resolve(); };
      const onError = (err: Error): void => { process.stdout.off('drain', onDrain); reject(err); };
      process.stdout.once('drain', onDrain);
      process.stdout.once('error', onError);
    });
  }
}

/** Bytes as MiB with one decimal (`12.3`). */
export const mib = (n: number): string => (n / 2 ** 20).toFixed(1);

export async function writeJson(value: unknown): Promise<void> {
  await write(`${JSON.stringify(value, null, 2)}\n`);
}
